// What this machine keeps about a lab's dispatcher once the dispatcher-container step has brought
// it up: LABRIG_HOME/labs/<lab>/{admin-token, join-token, dispatcher.json} (0600). The agents of
// the lab's other hosts join with it, and the CLI and dashboard find the lab through it, so no
// token is ever copied by hand.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { labrigHome } from "../core/config.js";

/** Where this machine keeps what it learned about the lab's dispatcher. */
export function savedDispatcherDir(lab: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(labrigHome(env), "labs", lab);
}

export interface SavedDispatcher {
  host: string;
  url: string;
  adminTokenFile: string;
  joinTokenFile: string;
}

/** dispatcher.json as the step wrote it, or undefined when no dispatcher of this lab was deployed from here. */
export function readSavedDispatcher(lab: string, env: NodeJS.ProcessEnv = process.env): SavedDispatcher | undefined {
  const file = join(savedDispatcherDir(lab, env), "dispatcher.json");
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, "utf8")) as SavedDispatcher;
}
