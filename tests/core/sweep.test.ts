// Sweeps as data: grids from a CVLab-Kit config and from --sweep axes, points written into each
// job's YAML or a plain command's {key} placeholders; and `labrig submit`'s reading of --cvlab and
// a job file's `cvlab:` key.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseCvlabConfig } from "../../core/cvlab-config.js";
import { buildSweep, parseSweepAxis } from "../../core/sweep.js";
import { buildSubmission } from "../../cli/cvlab-submit.js";

const dir = mkdtempSync(join(tmpdir(), "labrig-sweep-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("--sweep axes", () => {
  it("reads KEY=V1,V2 with YAML scalars and refuses what is not one", () => {
    expect(parseSweepAxis("lr=0.1,1e-3")).toEqual({ key: "lr", values: [0.1, 0.001] });
    expect(parseSweepAxis("optimizer.name=adam, sgd")).toEqual({ key: "optimizer.name", values: ["adam", "sgd"] });
    expect(() => parseSweepAxis("lr")).toThrow(/--sweep: expected KEY=V1,V2/);
    expect(() => parseSweepAxis("lr=0.1,,0.2")).toThrow(/lr: expected values separated by commas/);
  });
});

describe("buildSweep", () => {
  it("fills a plain command's placeholders, quoted for a shell string and as words in a list", () => {
    const s = buildSweep({ base: { name: "train", command: "python train.py --seed {seed} --tag {tag}" }, fromConfig: false, axes: [parseSweepAxis("seed=1,2"), parseSweepAxis("tag=a b,c")] });
    expect(s.jobs.map((j) => [j.name, j.command])).toEqual([
      ["train [seed=1,tag=a b]", "python train.py --seed 1 --tag 'a b'"],
      ["train [seed=1,tag=c]", "python train.py --seed 1 --tag c"],
      ["train [seed=2,tag=a b]", "python train.py --seed 2 --tag 'a b'"],
      ["train [seed=2,tag=c]", "python train.py --seed 2 --tag c"],
    ]);
    const argv = buildSweep({ base: { command: ["python", "t.py", "--lr={lr}"] }, fromConfig: false, axes: [parseSweepAxis("lr=0.1,0.2")] });
    expect(argv.jobs.map((j) => j.command)).toEqual([["python", "t.py", "--lr=0.1"], ["python", "t.py", "--lr=0.2"]]);
    expect(() => buildSweep({ base: { command: "python t.py" }, fromConfig: false, axes: [parseSweepAxis("lr=1,2")] })).toThrow(/lr: the command has no \{lr\}/);
    expect(() => buildSweep({ base: { command: "python t.py" }, fromConfig: true, axes: [] })).toThrow(/a plain command has no grid/);
  });

  it("writes each point into the config, an explicit axis overriding the config's own list, device never an axis", () => {
    const config = "lr: [0.1, 0.01]\nwd: [0, 1]\nopt:\n  name: adam\ndevice: [0, 1]\n";
    const s = buildSweep({ base: { name: "exp", config }, fromConfig: true, axes: [parseSweepAxis("wd=5"), parseSweepAxis("opt.name=adam,sgd")] });
    expect(s.axes.map((a) => a.key)).toEqual(["lr", "wd", "opt.name"]);
    expect(s.jobs).toHaveLength(4);
    expect(s.jobs.map((j) => parseCvlabConfig(j.config!).data)).toEqual([
      { lr: 0.1, wd: 5, opt: { name: "adam" }, device: [0, 1] },
      { lr: 0.1, wd: 5, opt: { name: "sgd" }, device: [0, 1] },
      { lr: 0.01, wd: 5, opt: { name: "adam" }, device: [0, 1] },
      { lr: 0.01, wd: 5, opt: { name: "sgd" }, device: [0, 1] },
    ]);
    expect(s.jobs.every((j) => j.gpus === 2)).toBe(true);
    expect(() => buildSweep({ base: { config: "a: 1\n" }, fromConfig: true, axes: [] })).toThrow(/has no list values to sweep over/);
    expect(() => buildSweep({ base: { command: "x {a} {b}" }, fromConfig: false, axes: [{ key: "a", values: Array.from({ length: 100 }, (_, i) => i) }, { key: "b", values: Array.from({ length: 11 }, (_, i) => i) }] })).toThrow(/1100 points/);
  });
});

describe("labrig submit --cvlab", () => {
  const exp = join(dir, "exp.yaml");
  writeFileSync(exp, "project: seg\nmodel: unet\nlr: [0.1, 0.2]\ndevice: [0, 1, 2]\n");

  it("takes the YAML's text, GPUs from its device, project from its project key, name from the file", () => {
    const s = buildSubmission({ flags: {}, command: [], cvlab: exp });
    expect(s).toEqual({ kind: "job", request: { config: "project: seg\nmodel: unet\nlr: [0.1, 0.2]\ndevice: [0, 1, 2]\n", gpus: 3, project: "seg", name: "exp" } });
    const flagged = buildSubmission({ flags: { gpus: 1, project: "other", priority: "high" }, command: [], cvlab: exp });
    expect(flagged.kind === "job" && flagged.request).toMatchObject({ gpus: 1, project: "other", priority: "high" });
  });

  it("reads a job file's cvlab: key relative to the job file", () => {
    writeFileSync(join(dir, "job.yaml"), "cvlab: exp.yaml\npriority: low\nretries: 2\n");
    const s = buildSubmission({ file: { file: join(dir, "job.yaml"), text: "cvlab: exp.yaml\npriority: low\nretries: 2\n" }, flags: {}, command: [], sweep: [""] });
    expect(s.kind).toBe("sweep");
    if (s.kind !== "sweep") return;
    expect(s.sweep.jobs.map((j) => [j.name, j.priority, j.maxRetries, j.gpus])).toEqual([
      ["exp [lr=0.1]", "low", 2, 3],
      ["exp [lr=0.2]", "low", 2, 3],
    ]);
  });

  it("names the file, line and column of a broken YAML", () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "model: a\nlr: [0.1\n");
    expect(() => buildSubmission({ flags: {}, command: [], cvlab: bad })).toThrow(new RegExp(`^${bad.replaceAll("/", "\\/")}:3:1: invalid YAML`));
  });
});
