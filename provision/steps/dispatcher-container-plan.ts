// The dispatcher-container step's plan, a pure function of the facts and the settings: facts as
// data in, typed changes out (no host, no Docker), in the order apply carries them out. Each
// change carries what apply needs (the data folder, the container it replaces), so apply acts on
// the facts the plan was made from rather than reading them again.
//
//   planDispatcherContainer(facts, settings, false, "lab")
//     // { changes: [{kind: "dispatcher-image", action: "send", …}, {kind: "dispatcher-container", action: "replace", previousId, …}, …] }
import type { DispatcherChange } from "../change.js";
import { type DispatcherSettings, desiredContainer } from "./dispatcher-container-settings.js";

/** The container by its name, as the host's engine has it. */
export interface ContainerFact {
  id: string;
  running: boolean;
  imageId: string;
  hash?: string;
  health?: string;
}

/** What the plan is made from (readDispatcherFacts; tests build them by hand). */
export interface DispatcherFacts {
  dataDir: string;
  /** The container's own backup schedule (containerBackupEnv); none when absent. */
  backupEnv?: Record<string, string>;
  foldersOk: boolean;
  imageHere?: string;
  imageThere?: string;
  container?: ContainerFact;
  tokensThere: { admin?: string; join?: string };
  tokensSaved: boolean;
}

/** The plan: what differs between the facts and the settings, in the order it must be done. */
export function planDispatcherContainer(facts: DispatcherFacts, s: DispatcherSettings, pull: boolean, lab: string): { changes: DispatcherChange[]; fail?: string } {
  const changes: DispatcherChange[] = [];
  const { dataDir } = facts;
  if (!facts.foldersOk) changes.push({ kind: "dispatcher-folders", dataDir, owner: `${s.uid}:${s.gid}`, reason: `state, runs, config and backup owned by ${s.uid}:${s.gid}` });

  let wantImageId: string | undefined;
  if (pull) {
    if (!facts.imageThere) changes.push({ kind: "dispatcher-image", action: "pull", image: s.image, reason: "not on the host" });
    wantImageId = facts.imageThere; // unknown until pulled
  } else {
    if (!facts.imageHere) {
      return {
        changes: [],
        fail: `image ${s.image} is not on this machine's Docker engine, and the host does not pull it: build it here with \`labrig image build --tag ${s.image}\` (--base IMAGE for an air-gapped lab), or set dispatcher.pull: true for an image in a registry`,
      };
    }
    wantImageId = facts.imageHere;
    if (facts.imageThere !== facts.imageHere) {
      changes.push({ kind: "dispatcher-image", action: "send", image: s.image, reason: facts.imageThere ? "the host has another build" : "not on the host" });
    }
  }

  const c = facts.container;
  const want = wantImageId ? desiredContainer(s, dataDir, s.image, wantImageId, lab, facts.backupEnv).hash : undefined;
  const container = { kind: "dispatcher-container", container: s.containerName, dataDir, ...(facts.backupEnv && Object.keys(facts.backupEnv).length ? { backupEnv: facts.backupEnv } : {}) } as const;
  if (!c) changes.push({ ...container, action: "create", reason: "missing" });
  else if (!want || c.hash !== want) {
    const why = !want ? "a new image is pulled" : wantImageId !== c.imageId ? "its image changed" : "its settings changed";
    changes.push({ ...container, action: "replace", previousId: c.id, reason: why });
  } else if (!c.running) changes.push({ kind: "dispatcher-container", action: "start", container: s.containerName, dataDir, reason: "stopped" });

  // A new container may bring tokens from changed settings; otherwise only unsaved or changed tokens need saving.
  const containerChanges = changes.some((ch) => ch.kind === "dispatcher-container");
  if (!facts.tokensSaved || containerChanges) {
    changes.push({ kind: "dispatcher-tokens", lab, dataDir, reason: facts.tokensSaved ? "the container changes" : "not saved on this machine yet, or changed" });
  }
  return { changes };
}
