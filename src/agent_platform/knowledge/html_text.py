"""The readable text of an HTML page: no scripts, styles or menus; headings as Markdown
headings, so chunking knows the section each passage sits under."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

# Never text a reader sees. Menus (nav) are left out too: repeated on every page, they would
# match every query.
_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "canvas", "nav"})
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "ol", "p",
        "pre", "section", "summary", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class PageText:
    title: str | None
    text: str


def html_to_text(html: str) -> PageText:
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return collector.result()


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._title: list[str] = []
        self._skipping: list[str] = []  # the open skipped elements, innermost last
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping.append(tag)
        elif self._skipping:
            return
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADINGS:
            self._parts.append("\n\n" + "#" * _HEADINGS[tag] + " ")
        elif tag in _BLOCKS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._skipping:
            # Closes it and whatever skipped element was left open inside it.
            while self._skipping.pop() != tag:
                pass
        elif self._skipping:
            return
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADINGS or tag == "p":
            self._parts.append("\n\n")
        elif tag in _BLOCKS:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_title:
            self._title.append(data)
        else:
            self._parts.append(_SPACES.sub(" ", data.replace("\n", " ")))

    def result(self) -> PageText:
        lines = (line.strip() for line in "".join(self._parts).split("\n"))
        text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
        title = _SPACES.sub(" ", "".join(self._title)).strip()
        return PageText(title=title or None, text=text)
