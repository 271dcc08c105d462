// CVLab-Kit experiment YAMLs: parsed without loss, grid axes found as CVLab-Kit's Config.expand
// finds them (cvlabkit/core/config.py: list values are a grid, tuples are not), values written
// back into the text without moving anything else.
import { describe, expect, it } from "vitest";
import {
  configProject,
  CvlabYamlError,
  deviceForVisibleGpus,
  expandGrid,
  gpusForDevice,
  gridAxes,
  parseCvlabConfig,
  pointLabel,
  writeConfigValues,
} from "../../core/cvlab-config.js";

// In the style of CVLab-Kit's config/*.yaml: components with arguments, a tuple, nested roles,
// list values (a grid), a string that only looks like a list (data, not a grid), comments.
const experiment = `# SSL on CIFAR-10
project: ssl_cifar
agent: fixmatch
run_name: fixmatch_{{date}}
log_dir: ./logs/ssl

model:
  student: resnet18(num_classes=10)
  teacher: resnet18(num_classes=10, pretrained=true)
dataset:
  labeled: cifar10(split=train, n=250)
  unlabeled: cifar10(split=train)
transform:
  weak: "compose(flip, crop(32, padding=4))"
  strong: compose(flip, randaugment(n=2, m=10))
mean: !!python/tuple [0.4914, 0.4822, 0.4465]
std: !!python/tuple [0.247, 0.243, 0.261]
optimizer: sgd(momentum=0.9, nesterov=true)
lr: [0.03, 0.01]          # grid
threshold:
  value: [0.9, 0.95, 0.99] # grid, nested
hidden: "[64, 128]"        # a data list, not a grid
epochs: 100
device: [0, 1]
empty: []
`;

describe("parseCvlabConfig", () => {
  it("reads a CVLab-Kit config without loss: tuples, nested roles, components, lists", () => {
    const cfg = parseCvlabConfig(experiment);
    expect(cfg.text).toBe(experiment);
    expect(cfg.data).toEqual({
      project: "ssl_cifar",
      agent: "fixmatch",
      run_name: "fixmatch_{{date}}",
      log_dir: "./logs/ssl",
      model: { student: "resnet18(num_classes=10)", teacher: "resnet18(num_classes=10, pretrained=true)" },
      dataset: { labeled: "cifar10(split=train, n=250)", unlabeled: "cifar10(split=train)" },
      transform: { weak: "compose(flip, crop(32, padding=4))", strong: "compose(flip, randaugment(n=2, m=10))" },
      mean: [0.4914, 0.4822, 0.4465],
      std: [0.247, 0.243, 0.261],
      optimizer: "sgd(momentum=0.9, nesterov=true)",
      lr: [0.03, 0.01],
      threshold: { value: [0.9, 0.95, 0.99] },
      hidden: "[64, 128]",
      epochs: 100,
      device: [0, 1],
      empty: [],
    });
    expect(cfg.doc.get("mean", true)).toMatchObject({ tag: "tag:yaml.org,2002:python/tuple" });
    expect(configProject(cfg)).toBe("ssl_cifar");
  });

  it("names the line and column of a YAML mistake, and refuses Python tags other than tuple", () => {
    const err = (text: string) => {
      try {
        parseCvlabConfig(text, "exp.yaml");
      } catch (e) {
        return e as CvlabYamlError;
      }
      throw new Error("parsed");
    };
    expect(err("a: 1\nb: [1, 2\nc: 3\n")).toMatchObject({ line: 3, column: 1 });
    expect(err("a: 1\nb: [1, 2\nc: 3\n").message).toMatch(/^exp\.yaml:3:1: invalid YAML: /);
    expect(err("a: 1\nb: !!python/object/apply:os.system [ls]\n")).toMatchObject({ line: 2, column: 4 });
    expect(err("a: 1\na: 2\n")).toMatchObject({ line: 2, column: 1 });
    expect(err("just text\n").message).toMatch(/a CVLab-Kit config is a mapping/);
  });
});

describe("device and GPUs", () => {
  it("counts the GPUs a device asks for", () => {
    expect([undefined, 0, 3, "cuda:1", "2", [0, 1], [4, 5, 6], "0,1", "cpu", -1, "-1"].map(gpusForDevice)).toEqual([1, 1, 1, 1, 1, 2, 3, 2, 0, 0, 0]);
  });
  it("renames the device to the GPUs CUDA_VISIBLE_DEVICES shows", () => {
    expect(deviceForVisibleGpus(3, 1)).toBe(0);
    expect(deviceForVisibleGpus([2, 3], 2)).toEqual([0, 1]);
    expect(deviceForVisibleGpus("cuda:5", 1)).toBe("cuda:0");
    expect(deviceForVisibleGpus("2,3", 2)).toBe("0,1");
    expect(deviceForVisibleGpus("cpu", 0)).toBeUndefined();
  });
});

describe("grids", () => {
  it("finds the list values CVLab-Kit expands, tuples and string lists left alone, in key order", () => {
    const axes = gridAxes(parseCvlabConfig(experiment));
    expect(axes.map((a) => [a.key, a.values])).toEqual([
      ["lr", [0.03, 0.01]],
      ["threshold.value", [0.9, 0.95, 0.99]],
      ["device", [0, 1]],
    ]);
  });

  it("expands the first axis slowest, as itertools.product does", () => {
    const points = expandGrid([
      { key: "lr", values: [0.1, 0.01] },
      { key: "bs", values: [32, 64, 128] },
    ]);
    expect(points).toEqual([
      { lr: 0.1, bs: 32 },
      { lr: 0.1, bs: 64 },
      { lr: 0.1, bs: 128 },
      { lr: 0.01, bs: 32 },
      { lr: 0.01, bs: 64 },
      { lr: 0.01, bs: 128 },
    ]);
    expect(pointLabel({ lr: 0.1, "threshold.value": 0.9 })).toBe("lr=0.1,value=0.9");
  });

  it("writes a point into the text, changing nothing but the values", () => {
    const cfg = parseCvlabConfig(experiment);
    const out = writeConfigValues(cfg, [
      { path: ["lr"], value: 0.01 },
      { path: ["threshold", "value"], value: 0.95 },
      { path: ["seed"], value: 7 },
    ]);
    expect(out).toBe(
      experiment
        .replace("lr: [0.03, 0.01]          # grid", "lr: 0.01          # grid")
        .replace("  value: [0.9, 0.95, 0.99] # grid, nested", "  value: 0.95 # grid, nested")
        .concat("seed: 7\n"),
    );
    const again = parseCvlabConfig(out);
    expect(again.data).toMatchObject({ lr: 0.01, threshold: { value: 0.95 }, seed: 7, mean: [0.4914, 0.4822, 0.4465] });
    expect(again.doc.get("mean", true)).toMatchObject({ tag: "tag:yaml.org,2002:python/tuple" });
    expect(() => writeConfigValues(cfg, [{ path: ["nothere", "x"], value: 1 }])).toThrow(/nothere\.x: no such key/);
  });

  it("replaces a block list and a tagged value whole", () => {
    const cfg = parseCvlabConfig("lr:\n  - 0.1\n  - 0.2\nmean: !!python/tuple [1, 2]\nname: a\n");
    const out = writeConfigValues(cfg, [
      { path: ["lr"], value: 0.2 },
      { path: ["mean"], value: "x y" },
    ]);
    expect(parseCvlabConfig(out).data).toEqual({ lr: 0.2, mean: "x y", name: "a" });
  });
});
