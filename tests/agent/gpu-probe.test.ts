// The nvidia-smi parser on recorded-format outputs of several GPU models and failure modes (no GPU
// here, so these fixtures stand in for the driver), and probeGpus running a script as nvidia-smi.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NVIDIA_SMI_ARGS, parseNvidiaSmiCsv, probeGpus } from "../../agent/gpu-probe.js";

const fixtures = resolve(import.meta.dirname, "../fixtures/nvidia-smi");
const fixture = (name: string) => readFileSync(join(fixtures, name), "utf8");

describe("parseNvidiaSmiCsv (recorded-format fixtures stand in for real GPUs)", () => {
  it("reads four A100 80GB with every figure", () => {
    const p = parseNvidiaSmiCsv(fixture("a100-80gb-x4.txt"));
    expect(p.problem).toBeUndefined();
    expect(p.gpus.map((g) => g.index)).toEqual([0, 1, 2, 3]);
    expect(p.gpus[1]).toEqual({
      index: 1,
      uuid: "GPU-a7c0d2e9-5f13-4b8e-8d26-0e9b4c3a7f12",
      name: "NVIDIA A100-SXM4-80GB",
      memoryTotalMiB: 81920,
      memoryUsedMiB: 71243,
      utilizationPct: 97,
      temperatureC: 58,
      powerW: 318.27,
    });
  });

  it.each([
    ["rtx-4090-x2.txt", 2, "NVIDIA GeForce RTX 4090", 24564],
    ["rtx-3090-x1.txt", 1, "NVIDIA GeForce RTX 3090", 24576],
    ["v100-16gb-x2.txt", 2, "Tesla V100-SXM2-16GB", 16160],
    ["h100-80gb-x1.txt", 1, "NVIDIA H100 80GB HBM3", 81559],
  ])("reads %s: %i GPU(s) named and sized as the driver reports", (file, count, name, mem) => {
    const p = parseNvidiaSmiCsv(fixture(file));
    expect(p.problem).toBeUndefined();
    expect(p.gpus).toHaveLength(count);
    for (const g of p.gpus) {
      expect(g.name).toBe(name);
      expect(g.memoryTotalMiB).toBe(mem);
      expect(g.uuid).toMatch(/^GPU-[0-9a-f-]{36}$/);
      expect(typeof g.temperatureC).toBe("number");
    }
  });

  it("turns [N/A] into a missing figure and keeps the GPU (A100 in MIG mode, 3090 power)", () => {
    const mig = parseNvidiaSmiCsv(fixture("a100-80gb-mig.txt"));
    expect(mig.problem).toBeUndefined();
    expect(mig.gpus[0]).toMatchObject({ index: 0, utilizationPct: null, memoryUsedMiB: 13, powerW: 44.51 });
    expect(parseNvidiaSmiCsv(fixture("rtx-3090-x1.txt")).gpus[0]).toMatchObject({ powerW: null, utilizationPct: 0 });
  });

  it("turns [Not Supported] into a missing figure and keeps the GPU", () => {
    const p = parseNvidiaSmiCsv(fixture("gtx-1080-not-supported.txt"));
    expect(p.problem).toBeUndefined();
    expect(p.gpus[0]).toMatchObject({ name: "NVIDIA GeForce GTX 1080", memoryTotalMiB: 8192, memoryUsedMiB: 2051, utilizationPct: null, temperatureC: 52, powerW: null });
  });

  it("reports no GPUs and the driver's message when the driver is not loaded", () => {
    const p = parseNvidiaSmiCsv(fixture("no-driver.txt"));
    expect(p.gpus).toEqual([]);
    expect(p.problem).toMatch(/^no NVIDIA driver: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/);
  });

  it("keeps the healthy GPUs and names the one that fell off the bus", () => {
    const p = parseNvidiaSmiCsv(fixture("fallen-off-bus.txt"));
    expect(p.gpus.map((g) => g.index)).toEqual([0, 2]);
    expect(p.problem).toBe("Unable to determine the device handle for GPU0000:41:00.0: Unknown Error");
    const lost = parseNvidiaSmiCsv(fixture("gpu-lost.txt"));
    expect(lost.gpus.map((g) => g.index)).toEqual([0]);
    expect(lost.problem).toMatch(/GPU is lost/);
  });

  it("leaves out a GPU that answers [GPU requires reset] and says which", () => {
    const p = parseNvidiaSmiCsv(fixture("requires-reset.txt"));
    expect(p.gpus.map((g) => g.index)).toEqual([0]);
    expect(p.problem).toBe("GPU 1: [GPU requires reset]");
  });

  it("reads empty output as no GPUs and no problem", () => {
    expect(parseNvidiaSmiCsv("\n")).toEqual({ gpus: [] });
  });
});

describe("probeGpus", () => {
  const dir = mkdtempSync(join(tmpdir(), "labrig-smi-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const script = (name: string, body: string) => {
    const p = join(dir, name);
    writeFileSync(p, `#!/bin/sh\n${body}\n`);
    chmodSync(p, 0o755);
    return p;
  };

  it("runs nvidia-smi with the CSV query and parses what it prints", async () => {
    const argsFile = join(dir, "args");
    const smi = script("smi-ok", `printf '%s\\n' "$@" > ${argsFile}; cat ${join(fixtures, "rtx-4090-x2.txt")}`);
    const p = await probeGpus(smi);
    expect(p.gpus.map((g) => g.name)).toEqual(["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"]);
    expect(readFileSync(argsFile, "utf8").trim().split("\n")).toEqual(NVIDIA_SMI_ARGS);
  });

  it("parses the output of a failing nvidia-smi (exit 9 without a driver)", async () => {
    const smi = script("smi-nodriver", `cat ${join(fixtures, "no-driver.txt")}; exit 9`);
    const p = await probeGpus(smi);
    expect(p.gpus).toEqual([]);
    expect(p.problem).toMatch(/no NVIDIA driver/);
  });

  it("reports a missing nvidia-smi as zero GPUs with a reason", async () => {
    const p = await probeGpus(join(dir, "does-not-exist"));
    expect(p).toEqual({ gpus: [], problem: expect.stringMatching(/not found: no NVIDIA driver/) });
  });
});
