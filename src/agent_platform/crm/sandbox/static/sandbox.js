// Refreshes the lead's conversation every 2 seconds, so the agent's replies show up on
// their own. The server renders the timeline (escaped by Jinja2); this only swaps it in.
"use strict";

const REFRESH_MILLISECONDS = 2000;
const timeline = document.getElementById("timeline");
let shownHtml = null;

async function refreshTimeline() {
  try {
    const response = await fetch(timeline.dataset.refreshUrl, { cache: "no-store" });
    if (!response.ok) {
      return;
    }
    const html = await response.text();
    // Replacing an unchanged timeline would only lose the reader's text selection.
    if (html !== shownHtml) {
      shownHtml = html;
      timeline.innerHTML = html;
    }
  } catch {
    // The sandbox is restarting or the network blinked: the next tick tries again.
  }
}

if (timeline) {
  setInterval(refreshTimeline, REFRESH_MILLISECONDS);
}
