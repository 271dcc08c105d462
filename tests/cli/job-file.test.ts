import { describe, expect, it } from "vitest";
import { buildSubmitRequest, jobFileCode, JobSpecError } from "../../cli/job-file.js";

const file = (text: string) => ({ file: "jobs/train.yaml", text });

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof JobSpecError) return err.message.split("\n");
    throw err;
  }
  throw new Error("expected a JobSpecError, but nothing was thrown");
}

describe("job file → SubmitJobRequest", () => {
  it("maps every file key to its API field", () => {
    const req = buildSubmitRequest({
      file: file(
        [
          "name: resnet50-baseline",
          "project: vision",
          "command: [python, train.py, --lr, 0.10]",
          "gpus: 2",
          "image: pytorch/pytorch:2.3.0",
          "env:",
          "  SEED: 42",
          "  WANDB_MODE: offline",
          "timeout: 3600",
          "priority: high",
          "retries: 2",
          "workdir: /data/exp",
          "constraints:",
          "  hostId: gpu-a100",
          "  labels: {site: lab1}",
          "  gpuName: A100",
          "  minMemoryMiB: 40000",
        ].join("\n"),
      ),
    });
    expect(req).toEqual({
      name: "resnet50-baseline",
      project: "vision",
      // YAML would read 0.10 as the number 0.1; a command word keeps the text as written.
      command: ["python", "train.py", "--lr", "0.10"],
      gpus: 2,
      image: "pytorch/pytorch:2.3.0",
      env: { SEED: "42", WANDB_MODE: "offline" },
      timeoutS: 3600,
      priority: "high",
      maxRetries: 2,
      workdir: "/data/exp",
      constraints: { hostId: "gpu-a100", labels: { site: "lab1" }, gpuName: "A100", minMemoryMiB: 40000 },
    });
  });

  it("accepts a command given as one string", () => {
    expect(buildSubmitRequest({ file: file("command: python train.py --epochs 3\n") }).command).toBe("python train.py --epochs 3");
  });

  it("leaves out what neither file nor flags give, so the API defaults apply", () => {
    expect(buildSubmitRequest({ command: ["echo", "hi"] })).toEqual({ command: ["echo", "hi"] });
  });

  it("reports a YAML syntax error with its line and column", () => {
    const lines = problemsOf(() => buildSubmitRequest({ file: file("name: a\ncommand: [python, train.py\ngpus: 1\n") }));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^jobs\/train\.yaml:\d+:\d+: YAML syntax: /);
    const [, line] = /^jobs\/train\.yaml:(\d+):/.exec(lines[0])!;
    expect(Number(line)).toBeGreaterThanOrEqual(2);
  });

  it("names the line, column and field of a value the schema refuses", () => {
    const text = "name: x\ncommand: python train.py\nenv:\n  A: b\ngpus: 1.5\n";
    expect(problemsOf(() => buildSubmitRequest({ file: file(text) }))).toEqual([
      'jobs/train.yaml:5:7: gpus: expected a whole number from 0 to 64, got 1.5',
    ]);
  });

  it("lists every refused field at once, using the file's key names", () => {
    const text = ["command: echo hi", "timeout: soon", "priority: asap", "retries: -1", "constraints:", "  minMemoryMiB: -5"].join("\n");
    expect(problemsOf(() => buildSubmitRequest({ file: file(text) }))).toEqual([
      'jobs/train.yaml:2:10: timeout: expected a whole number of seconds from 1 to 2592000 (30 days), got "soon"',
      'jobs/train.yaml:3:11: priority: expected one of low, normal, high, urgent, got "asap"',
      "jobs/train.yaml:4:10: retries: expected a whole number from 0 to 100, got -1",
      "jobs/train.yaml:6:17: constraints.minMemoryMiB: expected a whole number of MiB >= 0, got -5",
    ]);
  });

  it("points at the key of an env name the API refuses", () => {
    expect(problemsOf(() => buildSubmitRequest({ file: file("command: echo\nenv:\n  OK: 1\n  bad-name: x\n") }))).toEqual([
      "jobs/train.yaml:4:3: env.bad-name: 'bad-name' is not a valid name (env names: letters, digits and '_')",
    ]);
  });

  it("refuses unknown keys, naming them and hinting the right one", () => {
    const lines = problemsOf(() => buildSubmitRequest({ file: file("command: echo\ntimeoutS: 10\nfoo: 1\nconstraints:\n  host: a\n") }));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^jobs\/train\.yaml:2:1: timeoutS: unknown key \(did you mean 'timeout'\?\); known keys: name, project, command/);
    expect(lines[1]).toMatch(/^jobs\/train\.yaml:3:1: foo: unknown key; known keys: /);
    expect(lines[2]).toMatch(/^jobs\/train\.yaml:5:3: constraints\.host: unknown key; known keys: hostId, labels, gpuName, minMemoryMiB$/);
  });

  it("reports unknown keys and bad values in one round, in the file's order", () => {
    const text = ["command: python train.py", "retrys: 1", "gpus: two", "timeout: soon", "constraints:", "  host: a", "  minMemoryMiB: -5", "priority: asap"].join("\n");
    expect(problemsOf(() => buildSubmitRequest({ file: file(text) }))).toEqual([
      "jobs/train.yaml:2:1: retrys: unknown key (did you mean 'retries'?); known keys: name, project, command, gpus, cpus, memory, image, env, workdir, timeout, priority, retries, constraints, cvlab, code",
      'jobs/train.yaml:3:7: gpus: expected a whole number from 0 to 64, got "two"',
      'jobs/train.yaml:4:10: timeout: expected a whole number of seconds from 1 to 2592000 (30 days), got "soon"',
      "jobs/train.yaml:6:3: constraints.host: unknown key; known keys: hostId, labels, gpuName, minMemoryMiB",
      "jobs/train.yaml:7:17: constraints.minMemoryMiB: expected a whole number of MiB >= 0, got -5",
      'jobs/train.yaml:8:11: priority: expected one of low, normal, high, urgent, got "asap"',
    ]);
    expect(problemsOf(() => buildSubmitRequest({ file: file("name: x\nseed: 1\n") }))).toEqual([
      "jobs/train.yaml:1:1: command: missing: give `command:` in the file or the command after --",
      "jobs/train.yaml:2:1: seed: unknown key; known keys: name, project, command, gpus, cpus, memory, image, env, workdir, timeout, priority, retries, constraints, cvlab, code",
    ]);
  });

  it("refuses a file that is not a mapping", () => {
    expect(problemsOf(() => buildSubmitRequest({ file: file("- echo\n- hi\n") }))[0]).toMatch(/^jobs\/train\.yaml:1:1: expected a mapping of job fields/);
  });

  it("says where the command is missing", () => {
    expect(problemsOf(() => buildSubmitRequest({ file: file("name: x\n") }))[0]).toMatch(/^jobs\/train\.yaml:1:1: command: missing/);
    expect(problemsOf(() => buildSubmitRequest({}))[0]).toMatch(/^command line: command: missing: give the command after --/);
  });

  it("lets flags and the command after -- override the file, merging env and labels", () => {
    const req = buildSubmitRequest({
      file: file("name: from-file\nproject: p1\ncommand: python a.py\ngpus: 4\nenv: {A: '1', B: '2'}\nconstraints: {labels: {site: x}, gpuName: A100}\n"),
      flags: { gpus: 1, project: "p2", env: { B: "3" }, hostId: "h1", labels: { rack: "r2" } },
      command: ["python", "b.py"],
    });
    expect(req).toEqual({
      name: "from-file",
      project: "p2",
      command: ["python", "b.py"],
      gpus: 1,
      env: { A: "1", B: "3" },
      constraints: { labels: { site: "x", rack: "r2" }, gpuName: "A100", hostId: "h1" },
    });
  });

  it("blames the flag, not the file, for a bad value that came from a flag", () => {
    const lines = problemsOf(() => buildSubmitRequest({ file: file("command: echo\nproject: ok\n"), flags: { project: "has space", env: { "1BAD": "x" } } }));
    expect(lines).toEqual([
      `--project: project: expected letters, digits, '.', '_' or '-' (1 to 100 characters), got "has space"`,
      "--env: env.1BAD: '1BAD' is not a valid name (env names: letters, digits and '_')",
    ]);
  });

  it("reads code: as what to send (true, false or a folder), keeps it out of the request, and names a bad value", () => {
    expect(jobFileCode(file("command: python train.py\ncode: true\n"))).toBe(true);
    expect(jobFileCode(file("command: python train.py\ncode: false\n"))).toBe(false);
    expect(jobFileCode(file("command: python train.py\ncode: ../src\n"))).toBe("../src");
    expect(jobFileCode(file("command: python train.py\n"))).toBeUndefined();
    // The request carries the snapshot's id, which only the CLI knows once it has sent the tree.
    expect(buildSubmitRequest({ file: file("command: python train.py\ncode: true\n") })).toEqual({ command: "python train.py" });
    expect(problemsOf(() => buildSubmitRequest({ file: file("command: python train.py\ncode: 5\ngpus: x\n") }))).toEqual([
      "jobs/train.yaml:2:7: code: expected true, false or a folder to send with the job (relative to the job file), got 5",
      'jobs/train.yaml:3:7: gpus: expected a whole number from 0 to 64, got "x"',
    ]);
  });

  it("reads cpus and memory (GiB) from the file and from --cpus and --memory-gib, flags winning, and names a bad value", () => {
    expect(buildSubmitRequest({ file: file("command: python prep.py\ngpus: 0\ncpus: 8\nmemory: 12.5\n") })).toEqual({ command: "python prep.py", gpus: 0, cpus: 8, memoryGiB: 12.5 });
    expect(buildSubmitRequest({ file: file("command: x\ncpus: 8\n"), flags: { cpus: 2, memoryGiB: 4 } })).toMatchObject({ cpus: 2, memoryGiB: 4 });
    expect(problemsOf(() => buildSubmitRequest({ file: file("command: x\ncpus: lots\n") }))).toEqual(['jobs/train.yaml:2:7: cpus: expected a number of CPU cores from 0.1 to 1024, got "lots"']);
  });
});
