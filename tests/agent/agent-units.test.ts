// Pure parts of the agent: secret redaction, the container spec, the job env, end states, options.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildContainerSpec, containerName } from "../../agent/container-spec.js";
import { withLogDirIn } from "../../agent/job-config.js";
import { parseLabels, parseListen, resolveAgentOptions } from "../../agent/options.js";
import { wrappedArgv } from "../../agent/process-job.js";
import { REDACTED, redactEnv } from "../../agent/redact.js";
import { endStateOf, processJobEnv } from "../../agent/running-job.js";
import { InputError } from "../../core/errors.js";

describe("redactEnv", () => {
  it("hides secrets by value too: passwords in URLs and token-shaped strings, whatever the name (finding: DB_URL kept)", () => {
    const env = {
      DB_URL: "postgres://u:pw-secret@db.lab:5432/runs",
      MIRROR: "https://mirror.lab/debian",
      HUB: "hf_abcdefghijklmnop",
      OPAQUE: "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg",
      LABRIG_OUTPUT_DIR: "/home/lab/jobs/0c4h2m9qx7/attempt-1",
      CUDA_VISIBLE_DEVICES: "0,1",
      RUN_NAME: "resnet50-imagenet-lr0.1",
    };
    expect(redactEnv(env)).toEqual({
      DB_URL: `postgres://u:${REDACTED}@db.lab:5432/runs`,
      MIRROR: "https://mirror.lab/debian",
      HUB: REDACTED,
      OPAQUE: REDACTED,
      LABRIG_OUTPUT_DIR: "/home/lab/jobs/0c4h2m9qx7/attempt-1",
      CUDA_VISIBLE_DEVICES: "0,1",
      RUN_NAME: "resnet50-imagenet-lr0.1",
    });
  });

  it("hides values of names that look secret and keeps the rest", () => {
    const env = {
      WANDB_API_KEY: "k1",
      HF_TOKEN: "t1",
      db_password: "p1",
      AWS_SECRET_ACCESS_KEY: "s1",
      GOOGLE_APPLICATION_CREDENTIALS: "/c.json",
      SSH_PRIVATE_KEY: "x",
      LR: "0.001",
      CUDA_VISIBLE_DEVICES: "0,1",
      MONKEY: "banana",
    };
    expect(redactEnv(env)).toEqual({
      WANDB_API_KEY: REDACTED,
      HF_TOKEN: REDACTED,
      db_password: REDACTED,
      AWS_SECRET_ACCESS_KEY: REDACTED,
      GOOGLE_APPLICATION_CREDENTIALS: REDACTED,
      SSH_PRIVATE_KEY: REDACTED,
      LR: "0.001",
      CUDA_VISIBLE_DEVICES: "0,1",
      // "KEY" inside a word still matches: a false positive is the safe side.
      MONKEY: REDACTED,
    });
  });
});

describe("buildContainerSpec", () => {
  const base = { jobId: "0abc123def", attempt: 2, hostId: "gpu-a100", image: "pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime", env: { LR: "0.1", LABRIG_JOB_ID: "0abc123def" }, outputDir: "/var/lib/labrig/jobs/0abc123def/attempt-2" };

  it("asks for exactly the job's GPUs and renumbers them inside", () => {
    const spec = buildContainerSpec({ ...base, command: ["python", "train.py"], gpuIndices: [2, 3] });
    expect(spec.HostConfig?.DeviceRequests).toEqual([{ Driver: "nvidia", DeviceIDs: ["2", "3"], Capabilities: [["gpu"]] }]);
    expect(spec.Env).toContain("NVIDIA_VISIBLE_DEVICES=2,3");
    expect(spec.Env).toContain("CUDA_VISIBLE_DEVICES=0,1");
    expect(spec.Cmd).toEqual(["sh", "-c", 'exec "$@" 2>&1', "labrig-job", "python", "train.py"]);
  });

  it("gives a 0-GPU job no device request and hides every GPU; stderr joins stdout inside so job.log keeps their order", () => {
    const spec = buildContainerSpec({ ...base, command: "echo hi", gpuIndices: [] });
    expect(spec.HostConfig?.DeviceRequests).toEqual([]);
    expect(spec.Env).toContain("NVIDIA_VISIBLE_DEVICES=void");
    expect(spec.Cmd).toEqual(["sh", "-c", 'exec "$@" 2>&1', "labrig-job", "sh", "-c", "echo hi"]);
  });

  it("mounts the output dir at /output, points LABRIG_OUTPUT_DIR there and labels the container", () => {
    const spec = buildContainerSpec({ ...base, command: "true", gpuIndices: [0] });
    expect(spec.HostConfig?.Binds).toEqual([`${base.outputDir}:/output`]);
    expect(spec.Env).toContain("LABRIG_OUTPUT_DIR=/output");
    expect(spec.Env).toContain("LR=0.1");
    expect(spec.WorkingDir).toBe("/output");
    expect(spec.Labels).toEqual({ "labrig.job": "0abc123def", "labrig.attempt": "2", "labrig.host": "gpu-a100" });
    expect(spec.name).toBe(containerName("0abc123def", 2));
    expect(spec.name).toBe("labrig-0abc123def-a2");
  });

  it("mounts a code snapshot at /code and starts there, in the workdir inside it", () => {
    const spec = buildContainerSpec({ ...base, command: "python train.py", gpuIndices: [0], codeDir: "/var/lib/labrig/jobs/0abc123def/attempt-2.code", workdir: "experiments" });
    expect(spec.HostConfig?.Binds).toEqual([`${base.outputDir}:/output`, "/var/lib/labrig/jobs/0abc123def/attempt-2.code:/code"]);
    expect(spec.WorkingDir).toBe("/code/experiments");
    expect(buildContainerSpec({ ...base, command: "true", gpuIndices: [], codeDir: "/c" }).WorkingDir).toBe("/code");
  });

  it("uses the job's workdir when it names one", () => {
    expect(buildContainerSpec({ ...base, command: "true", gpuIndices: [], workdir: "/workspace" }).WorkingDir).toBe("/workspace");
  });
});

describe("job processes", () => {
  it("runs a string command through sh -c and an array directly, inside the exit-code wrapper", () => {
    const [file, args] = wrappedArgv("echo hi && false", "/x/exit");
    expect(file).toBe("sh");
    expect(args.slice(3)).toEqual(["/x/exit", "sh", "-c", "echo hi && false"]);
    expect(wrappedArgv(["python", "train.py", "--lr", "0.1"], "/x/exit")[1].slice(4)).toEqual(["python", "train.py", "--lr", "0.1"]);
  });

  it("keeps the agent's LABRIG_ settings (its join token) out of a job's env and lets labrig's variables win", () => {
    const env = processJobEnv(
      { PATH: "/usr/bin", HOME: "/home/lab", LABRIG_JOIN_TOKEN: "secret", LABRIG_URL: "http://nas:8000" },
      { LR: "0.1", CUDA_VISIBLE_DEVICES: "7" },
      { CUDA_VISIBLE_DEVICES: "0,1", LABRIG_JOB_ID: "j1" },
    );
    expect(env).toEqual({ PATH: "/usr/bin", HOME: "/home/lab", LR: "0.1", CUDA_VISIBLE_DEVICES: "0,1", LABRIG_JOB_ID: "j1" });
  });

  it("maps exits and stop reasons to end states", () => {
    expect(endStateOf({ exitCode: 0 }, undefined, null)).toEqual({ state: "succeeded", exitCode: 0 });
    expect(endStateOf({ exitCode: 3 }, undefined, null)).toEqual({ state: "failed", exitCode: 3 });
    expect(endStateOf({ exitCode: null, signal: "SIGKILL" }, undefined, null)).toMatchObject({ state: "failed", message: "killed by SIGKILL" });
    expect(endStateOf({ exitCode: 143 }, "timeout", 5)).toEqual({ state: "timed_out", exitCode: 143, message: "timed out after 5 s" });
    expect(endStateOf({ exitCode: 143 }, "cancel", null)).toMatchObject({ state: "cancelled" });
    expect(endStateOf({ exitCode: 143 }, "agent-stop", null)).toEqual({ state: "failed", exitCode: 143, message: "agent stopped" });
  });
});

describe("agent options", () => {
  const env = { LABRIG_URL: "http://nas:8000/", LABRIG_HOST_ID: "gpu-a100", LABRIG_JOIN_TOKEN: "jt", LABRIG_WORKDIR: "/var/lib/labrig", LABRIG_LISTEN: "0.0.0.0:9400", LABRIG_LABELS: "room=b12, rack=2" };

  it("reads everything from systemd's env file", () => {
    const o = resolveAgentOptions({}, env);
    expect(o).toMatchObject({ url: "http://nas:8000", hostId: "gpu-a100", joinToken: "jt", workdir: "/var/lib/labrig", listen: { host: "0.0.0.0", port: 9400 }, labels: { room: "b12", rack: "2" }, keepJobs: false, killGraceMs: 10_000 });
  });

  it("prefers flags to the environment and reads the join token from a file", () => {
    const dir = mkdtempSync(join(tmpdir(), "labrig-opt-"));
    try {
      writeFileSync(join(dir, "jt"), "from-file\n");
      const o = resolveAgentOptions({ url: "http://other:9000", joinTokenFile: join(dir, "jt"), listen: "0", keepJobs: true, killGrace: "2" }, env);
      expect(o).toMatchObject({ url: "http://other:9000", joinToken: "from-file", listen: { host: "127.0.0.1", port: 0 }, keepJobs: true, killGraceMs: 2_000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names the flag and the variable of what is missing or wrong", () => {
    expect(() => resolveAgentOptions({}, { ...env, LABRIG_URL: undefined })).toThrow(/--url: .*LABRIG_URL/);
    expect(() => resolveAgentOptions({}, { ...env, LABRIG_JOIN_TOKEN: undefined })).toThrow(/--join-token: .*LABRIG_JOIN_TOKEN/);
    expect(() => resolveAgentOptions({}, { ...env, LABRIG_WORKDIR: undefined })).toThrow(/--workdir: .*LABRIG_WORKDIR/);
    expect(() => resolveAgentOptions({ hostId: "bad host" }, env)).toThrow(InputError);
    expect(() => resolveAgentOptions({}, { ...env, LABRIG_LISTEN: "nas:port" })).toThrow(/^LABRIG_LISTEN: /);
  });

  it("parses listen addresses and labels", () => {
    expect(parseListen("9400")).toEqual({ host: "127.0.0.1", port: 9400 });
    expect(parseListen("[::1]:0")).toEqual({ host: "::1", port: 0 });
    expect(parseListen("off")).toBeNull();
    expect(() => parseListen("127.0.0.1:70000")).toThrow(InputError);
    expect(parseLabels("a=1,b=x=y")).toEqual({ a: "1", b: "x=y" });
    expect(() => parseLabels("a")).toThrow(/KEY=VALUE/);
  });
});

describe("CVLab-Kit configs on the host", () => {
  it("points a relative log_dir, or none (./logs), into the output folder and leaves an absolute or climbing one", () => {
    expect(withLogDirIn("lr: 0.1\n", "/w/jobs/j/attempt-1")).toBe("lr: 0.1\nlog_dir: /w/jobs/j/attempt-1/logs\n");
    expect(withLogDirIn("log_dir: ./runs/a  # here\nlr: 0.1\n", "/output")).toBe("log_dir: /output/runs/a  # here\nlr: 0.1\n");
    expect(withLogDirIn("log_dir: /data/logs\n", "/output")).toBe("log_dir: /data/logs\n");
    expect(withLogDirIn("log_dir: ../shared\n", "/output")).toBe("log_dir: ../shared\n");
  });
});
