// A timer for the dashboard's polls: calls `tick` every `everyMs` while the operator looks at
// `view`, and not while another view is open. Returns what stops it.
import type { ViewName } from "./state.js";
import type { TuiStore } from "./store.js";

export function everyWhileViewing(store: TuiStore, view: ViewName, everyMs: number, tick: () => void): () => void {
  const timer = setInterval(() => {
    if (store.get().view === view) tick();
  }, everyMs);
  return () => clearInterval(timer);
}
