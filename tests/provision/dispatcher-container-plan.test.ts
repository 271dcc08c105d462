// The dispatcher-container step's plan as pyinfra tests its operations: facts as data in, typed
// changes out, no host and no Docker. Each case is a state a NAS can be in.
import { describe, expect, it } from "vitest";
import { describeChange } from "../../provision/change.js";
import { type DispatcherFacts, planDispatcherContainer } from "../../provision/steps/dispatcher-container-plan.js";
import { desiredContainer, dispatcherSettingsSchema } from "../../provision/steps/dispatcher-container-settings.js";

const s = dispatcherSettingsSchema.parse({});
const lab = "lab";
const dataDir = "/srv/labrig";
const built = "sha256:1111";
const older = "sha256:0000";

/** A NAS where everything is as the settings want it, the image from this machine. */
function converged(extra: Partial<DispatcherFacts> = {}): DispatcherFacts {
  const backupEnv = extra.backupEnv;
  const hash = desiredContainer(s, dataDir, s.image, built, lab, backupEnv).hash;
  return {
    dataDir,
    foldersOk: true,
    imageHere: built,
    imageThere: built,
    container: { id: "c1", running: true, imageId: built, hash, health: "healthy" },
    tokensThere: { admin: "lra_x", join: "lrj_y" },
    tokensSaved: true,
    ...extra,
  };
}

const lines = (facts: DispatcherFacts, pull = false) => planDispatcherContainer(facts, s, pull, lab).changes.map(describeChange);

describe("planDispatcherContainer", () => {
  it("plans nothing for a converged NAS", () => {
    expect(planDispatcherContainer(converged(), s, false, lab)).toEqual({ changes: [] });
  });

  it("plans everything, in order, for a bare host, each change carrying what apply needs", () => {
    const bare: DispatcherFacts = { dataDir, foldersOk: false, imageHere: built, tokensThere: {}, tokensSaved: false };
    expect(planDispatcherContainer(bare, s, false, lab).changes).toEqual([
      { kind: "dispatcher-folders", dataDir, owner: "10001:10001", reason: "state, runs, config and backup owned by 10001:10001" },
      { kind: "dispatcher-image", action: "send", image: "labrig/dispatcher:latest", reason: "not on the host" },
      { kind: "dispatcher-container", action: "create", container: "labrig-dispatcher", dataDir, reason: "missing" },
      { kind: "dispatcher-tokens", lab, dataDir, reason: "not saved on this machine yet, or changed" },
    ]);
    expect(lines(bare)).toEqual([
      "create folders under /srv/labrig (state, runs, config and backup owned by 10001:10001)",
      "send image labrig/dispatcher:latest from this machine (not on the host)",
      "create container labrig-dispatcher (missing)",
      "save the dispatcher's tokens for lab lab (not saved on this machine yet, or changed)",
    ]);
  });

  it("sends a new build and replaces the container, naming the one it keeps aside", () => {
    const facts = converged({ imageHere: built, imageThere: older, container: { ...converged().container!, imageId: older, hash: "old" } });
    const changes = planDispatcherContainer(facts, s, false, lab).changes;
    expect(changes).toContainEqual({ kind: "dispatcher-container", action: "replace", container: "labrig-dispatcher", dataDir, previousId: "c1", reason: "its image changed" });
    expect(changes.map(describeChange)).toEqual([
      "send image labrig/dispatcher:latest from this machine (the host has another build)",
      "replace container labrig-dispatcher (its image changed)",
      "save the dispatcher's tokens for lab lab (the container changes)",
    ]);
  });

  it("replaces the container when only its settings changed (same image)", () => {
    expect(lines(converged({ container: { ...converged().container!, hash: "from-other-settings" } }))).toEqual([
      "replace container labrig-dispatcher (its settings changed)",
      "save the dispatcher's tokens for lab lab (the container changes)",
    ]);
  });

  it("starts a stopped container that is otherwise as wanted", () => {
    expect(lines(converged({ container: { ...converged().container!, running: false } }))).toEqual([
      "start container labrig-dispatcher (stopped)",
      "save the dispatcher's tokens for lab lab (the container changes)",
    ]);
  });

  it("saves the tokens alone when only this machine's copy is missing or stale", () => {
    expect(lines(converged({ tokensSaved: false }))).toEqual(["save the dispatcher's tokens for lab lab (not saved on this machine yet, or changed)"]);
  });

  it("pulls on the host when the image names a registry, and replaces a container whose image it cannot know yet", () => {
    const pulled = dispatcherSettingsSchema.parse({ image: "registry.lab:5000/labrig/dispatcher:1" });
    const facts = converged({ imageHere: undefined, imageThere: undefined });
    expect(planDispatcherContainer(facts, pulled, true, lab).changes.map(describeChange)).toEqual([
      "pull image registry.lab:5000/labrig/dispatcher:1 (not on the host)",
      "replace container labrig-dispatcher (a new image is pulled)",
      "save the dispatcher's tokens for lab lab (the container changes)",
    ]);
  });

  it("carries a Synology's own backup schedule into the container it creates", () => {
    const backupEnv = { LABRIG_BACKUP_SCHEDULE: "*-*-* 04:30:00", LABRIG_BACKUP_ENV_FILE: "/etc/labrig/backup.env", LABRIG_BACKUP_HOST: "nas" };
    const facts = converged({ backupEnv, container: undefined });
    expect(planDispatcherContainer(facts, s, false, lab).changes[0]).toEqual({ kind: "dispatcher-container", action: "create", container: "labrig-dispatcher", dataDir, backupEnv, reason: "missing" });
    // And a container made without it is replaced, since the schedule is part of its settings.
    const without = converged();
    expect(lines({ ...without, backupEnv })).toContain("replace container labrig-dispatcher (its settings changed)");
  });

  it("fails, changing nothing, when the image is on neither engine and the host does not pull", () => {
    const plan = planDispatcherContainer(converged({ imageHere: undefined }), s, false, lab);
    expect(plan.changes).toEqual([]);
    expect(plan.fail).toMatch(/^image labrig\/dispatcher:latest is not on this machine's Docker engine, .*`labrig image build --tag labrig\/dispatcher:latest`/);
  });
});
