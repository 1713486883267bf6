"""Small bar charts drawn on the server as SVG geometry: the template writes the rectangles,
the stylesheet colours them, and the page needs no script (and no inline style) to show them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 280
HEIGHT = 96
PLOT_HEIGHT = 70  # bars grow up from here; the day labels sit below
LABEL_Y = 88
BAR_GAP = 8


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label_x: float  # the centre of the bar, where its label is written
    label: str  # under the bar: the day
    title: str  # on hover and for screen readers: the day and its count


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    baseline_y: int
    label_y: int
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class ChartPoint:
    label: str
    title: str
    value: int


def bar_chart(points: Sequence[ChartPoint]) -> BarChart:
    """One bar per point, scaled so the highest fills the plot; a zero is a bar of no height."""
    slot = WIDTH / max(len(points), 1)
    highest = max((point.value for point in points), default=0)
    bars = []
    for index, point in enumerate(points):
        height = 0.0 if highest == 0 else PLOT_HEIGHT * point.value / highest
        x = index * slot + BAR_GAP / 2
        bars.append(
            Bar(
                x=round(x, 1),
                y=round(PLOT_HEIGHT - height, 1),
                width=round(slot - BAR_GAP, 1),
                height=round(height, 1),
                label_x=round(x + (slot - BAR_GAP) / 2, 1),
                label=point.label,
                title=point.title,
            )
        )
    return BarChart(
        width=WIDTH, height=HEIGHT, baseline_y=PLOT_HEIGHT, label_y=LABEL_Y, bars=tuple(bars)
    )
