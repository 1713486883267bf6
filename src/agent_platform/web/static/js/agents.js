// The agent playground: a message posted with fetch(), the agent's reply read as it streams
// in (server-sent events over a ReadableStream: `delta`, then `done` or `error`).
// An external file: the Content-Security-Policy allows no inline script.

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function addEntry(log, speaker, text, kind) {
  const entry = document.createElement("li");
  entry.className = kind;
  const who = document.createElement("span");
  who.className = "speaker";
  who.textContent = speaker;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  entry.append(who, body);
  log.append(entry);
  log.scrollTop = log.scrollHeight;
  return entry;
}

// Yields {event, data} for each complete event in the stream.
async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    buffered += decoder.decode(value, { stream: true });
    let end = buffered.indexOf("\n\n");
    while (end !== -1) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const fields = {};
      for (const line of block.split("\n")) {
        const colon = line.indexOf(": ");
        if (colon > 0) {
          fields[line.slice(0, colon)] = line.slice(colon + 2);
        }
      }
      if (fields.event && fields.data) {
        yield { event: fields.event, data: JSON.parse(fields.data) };
      }
      end = buffered.indexOf("\n\n");
    }
  }
}

async function send(form, log) {
  const field = form.elements.message;
  const message = field.value.trim();
  if (!message) {
    return;
  }
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  addEntry(log, form.dataset.you, message, "from-user");
  const reply = addEntry(log, form.dataset.agent, "", "from-agent is-streaming");
  reply.dataset.testid = "playground-reply";
  const text = reply.querySelector(".text");
  const fail = () => {
    reply.classList.add("is-failed");
    text.textContent = form.dataset.failed;
  };
  const body = new URLSearchParams({ message });
  if (form.dataset.conversationId) {
    body.set("conversation_id", form.dataset.conversationId);
  }
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrfToken(), Accept: "text/event-stream" },
    });
    if (!response.ok || !response.body) {
      fail();
      return;
    }
    field.value = "";
    for await (const { event, data } of serverSentEvents(response)) {
      if (event === "delta") {
        text.textContent += data.text;
        log.scrollTop = log.scrollHeight;
      } else if (event === "done") {
        form.dataset.conversationId = data.conversation_id;
        text.textContent = data.reply === null ? form.dataset.handoff : data.reply;
        reply.dataset.done = "true";
      } else if (event === "error") {
        fail();
      }
    }
  } catch {
    fail();
  } finally {
    reply.classList.remove("is-streaming");
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector(".playground-form");
  if (!form) {
    return;
  }
  const log = document.querySelector(".playground-log");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(form, log);
  });
  form.querySelector('button[type="submit"]').disabled = false;
  // A new conversation: the log is cleared and the next message starts afresh.
  form.addEventListener("reset", () => {
    delete form.dataset.conversationId;
    log.replaceChildren();
  });
});
