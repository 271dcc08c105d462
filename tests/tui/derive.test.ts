// The Devices view's host order: by host id, kept while heartbeats replace device objects, sorted
// again whenever a host joins or leaves (also when one leaves as another joins).
import { describe, expect, it } from "vitest";
import { visibleDevices } from "../../tui/derive.js";
import { device, labState } from "./fixtures.js";

const ids = (s: ReturnType<typeof labState>) => visibleDevices(s).map((d) => d.hostId);

describe("visibleDevices", () => {
  it("orders hosts by id, as localeCompare does", () => {
    expect(ids(labState([device("gpu-b"), device("GPU-c"), device("gpu-a")], []))).toEqual(["gpu-a", "gpu-b", "GPU-c"]);
  });

  it("keeps the order through updates and sorts again when a host joins, leaves, or one is swapped for another", () => {
    let s = labState([device("gpu-b"), device("gpu-a")], []);
    expect(ids(s)).toEqual(["gpu-a", "gpu-b"]);
    // A heartbeat: a new object for a host already there.
    s = { ...s, devices: { ...s.devices, "gpu-a": device("gpu-a", { lastSeenAt: new Date().toISOString() }) } };
    expect(ids(s)).toEqual(["gpu-a", "gpu-b"]);
    s = { ...s, devices: { ...s.devices, "gpu-aa": device("gpu-aa") } };
    expect(ids(s)).toEqual(["gpu-a", "gpu-aa", "gpu-b"]);
    // As many hosts as before, but another set of them.
    const { "gpu-a": _gone, ...rest } = s.devices;
    s = { ...s, devices: { ...rest, "gpu-0": device("gpu-0") } };
    expect(ids(s)).toEqual(["gpu-0", "gpu-aa", "gpu-b"]);
  });

  it("applies the filter to the ordered hosts", () => {
    const s = labState([device("lab-b"), device("gpu-a"), device("lab-a")], [], { filter: "lab" });
    expect(ids(s)).toEqual(["lab-a", "lab-b"]);
  });
});
