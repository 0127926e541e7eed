// One live stream per signed-in tab: the shipments updates every page may listen to.

import { session, urlOf } from "./api.js";
import { announce } from "./dom.js";
import { t } from "./i18n.js";
import { openStream } from "./sse.js";

const subscribers = new Set();
let stream = null;
let state = "off";

export function showLive() {
  const el = document.getElementById("live");
  if (!el) return;
  el.dataset.state = state;
  el.textContent = t(`live.${state}`);
}

export function liveState() {
  return state;
}

export function startLive() {
  stopLive();
  stream = openStream({
    url: `${urlOf("shipments")}/v1/tracking/updates`,
    key: session.key,
    onEvent(event) {
      // the log is behind what this page saw (a restore from an older backup): reload it all
      if (event.type === "reset") {
        for (const listener of subscribers) listener({ resync: true });
        return;
      }
      if (event.type !== "convoy-update") return;
      let update;
      try {
        update = JSON.parse(event.data);
      } catch {
        return;
      }
      for (const listener of subscribers) listener(update);
    },
    onState(next, info) {
      const was = state;
      state = next;
      showLive();
      if (next === "reconnecting" && was === "live") announce(t("live.interrupted"));
      if (next === "live" && was === "reconnecting") {
        announce(t("live.back"));
        // nothing seen before the drop: what happened meanwhile was not replayed
        if (!info?.resumed) for (const listener of subscribers) listener({ resync: true });
      }
    },
  });
}

export function stopLive() {
  if (stream) stream.close();
  stream = null;
  state = "off";
  showLive();
}

/** listener(update) for each convoy update, or ({resync: true}) when the page should reload
 * what it shows; returns the unsubscribe function. */
export function subscribe(listener) {
  subscribers.add(listener);
  return () => subscribers.delete(listener);
}
