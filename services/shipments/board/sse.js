// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, and the
// shipments stream takes the key only there. Resumes with Last-Event-ID after a drop, as a
// browser's EventSource would, waiting the `retry:` the server asked for.

/** Parses "field: value" blocks separated by blank lines; calls `dispatch` per event. */
export class EventParser {
  constructor(dispatch) {
    this.dispatch = dispatch;
    this.buffer = "";
    this.reset();
    this.lastEventId = null;
    this.retry = null;
  }

  reset() {
    this.data = [];
    this.type = "";
  }

  push(text) {
    let whole = this.buffer + text;
    // a trailing "\r" may be half of a "\r\n" split across chunks: keep it for the next push
    const held = whole.endsWith("\r") ? "\r" : "";
    if (held) whole = whole.slice(0, -1);
    const lines = whole.split(/\r\n|\r|\n/);
    this.buffer = lines.pop() + held;
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) {
        this.dispatch({
          type: this.type || "message",
          data: this.data.join("\n"),
          lastEventId: this.lastEventId,
        });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/**
 * Opens `url` with the key, calls onEvent({type, data, lastEventId}) per event and
 * onState("connecting" | "live" | "reconnecting" | "refused", info) as the link changes; on
 * "live", info.resumed says whether the stream resumed after the last event seen (else what
 * happened while it was down was not sent: the page should reload what it shows).
 * Returns {close()}.
 */
export function openStream({ url, key, onEvent, onState }) {
  let stopped = false;
  let controller = null;
  let lastEventId = null;
  let retry = 2000;

  async function once() {
    controller = new AbortController();
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${key}` };
    if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
    const response = await fetch(url, { headers, cache: "no-store", signal: controller.signal });
    if (!response.ok) {
      let problem = {};
      try {
        problem = await response.json();
      } catch {
        /* not JSON */
      }
      const error = Object.assign(new Error(problem.title || `HTTP ${response.status}`), {
        status: response.status,
        problem,
      });
      throw error;
    }
    onState("live", { resumed: lastEventId !== null });
    let closed = null;
    const parser = new EventParser((event) => {
      // the server ends the stream of a key it no longer accepts (revoked), saying why
      if (event.type === "closed") {
        try {
          closed = JSON.parse(event.data);
        } catch {
          closed = { status: 401 };
        }
        return;
      }
      lastEventId = event.lastEventId;
      onEvent(event);
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
      if (parser.retry !== null) retry = parser.retry;
    }
    if (closed) {
      throw Object.assign(new Error(closed.detail || "the stream was closed"), {
        status: closed.status || 401,
        problem: closed,
      });
    }
  }

  (async () => {
    onState("connecting");
    while (!stopped) {
      try {
        await once();
      } catch (error) {
        if (stopped) return;
        if (error.status === 401 || error.status === 403) {
          onState("refused", error);
          return;
        }
      }
      if (stopped) return;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, retry));
    }
  })();

  return {
    close() {
      stopped = true;
      if (controller) controller.abort();
    },
  };
}
