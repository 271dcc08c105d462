// Slurm provisioning as data, no host: the inventory's scheduler and slurm section, the facts
// parser, slurm.conf / gres.conf / cgroup.conf rendered from inventory + facts, and the plans of
// the munge and Slurm daemon steps (facts in, changes out).
import { describe, expect, it } from "vitest";
import { describeChange } from "../../provision/change.js";
import { parseSlurmHostFacts, type SlurmHostFacts } from "../../provision/facts/slurm-host.js";
import { parseInventory } from "../../provision/inventory.js";
import { desiredSha256, sha256 } from "../../provision/ops.js";
import { provisionWaves } from "../../provision/runner.js";
import { slurmClusterFacts, slurmHosts } from "../../provision/slurm-cluster.js";
import { desiredUfwRules } from "../../provision/steps/firewall.js";
import { planMunge } from "../../provision/steps/munge.js";
import { gresType, renderCgroupConf, renderGresConf, renderSlurmConf, slurmClusterSpec, slurmConfigFiles } from "../../provision/steps/slurm-conf.js";
import { planSlurmDaemon } from "../../provision/steps/slurm-daemon.js";
import { databasePassword, operatorsOf, planSlurmAccounting, type SlurmAccountingFacts } from "../../provision/steps/slurm-accounting.js";
import { renderSlurmdbdConf } from "../../provision/steps/slurm-conf.js";

const lab = (slurm = "", hosts = "") =>
  `lab:
  name: Vision Lab
  scheduler: slurm
${slurm}
hosts:
  ctl: {address: 10.0.0.2, roles: [slurm-controller], firewall: {allowFrom: [10.0.0.0/24]}}
  gpu-a: {address: 10.0.0.21, roles: [gpu], labels: {gpu: a100}, firewall: {allowFrom: [10.0.0.0/24]}}
  gpu-b: {address: 10.0.0.22, roles: [gpu], labels: {gpu: rtx3090}}
${hosts}`;

const facts = (over: Partial<SlurmHostFacts> = {}): SlurmHostFacts => ({
  hostname: "x", cpus: 16, sockets: 1, coresPerSocket: 8, threadsPerCore: 2, realMemoryMiB: 64_000, gpuFiles: [], gpuNames: [], ...over,
});

const clusterFacts = new Map([
  ["ctl", facts({ hostname: "ctl-box", cpus: 4, sockets: 1, coresPerSocket: 4, threadsPerCore: 1, realMemoryMiB: 8000 })],
  ["gpu-a", facts({ hostname: "gpu-a", gpuFiles: ["/dev/nvidia0", "/dev/nvidia1"], gpuNames: ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"] })],
  ["gpu-b", facts({ hostname: "gpu-b", cpus: 12, sockets: 1, coresPerSocket: 8, threadsPerCore: 2, realMemoryMiB: 32_000, gpuFiles: ["/dev/nvidia0"] })],
]);

describe("inventory: lab.scheduler and lab.slurm", () => {
  it("defaults to labrig's own queue, with no slurm section", () => {
    const inv = parseInventory("hosts:\n  g: {address: h, roles: [gpu]}\n", "i.yaml", {});
    expect(inv.lab.scheduler).toBe("labrig");
    expect(inv.lab.slurm).toBeUndefined();
  });

  it("fills slurm defaults: one default partition of every compute node, no accounting", () => {
    const inv = parseInventory(lab(), "i.yaml", {});
    expect(inv.lab.slurm).toEqual({ partitions: { gpu: { labels: {}, default: true, maxTime: "INFINITE" } }, accounting: false });
    expect(slurmHosts(inv).map((h) => h.name)).toEqual(["ctl", "gpu-a", "gpu-b"]);
  });

  it("takes accounting: true, and refuses a value that is not a boolean naming the file, line and field", () => {
    expect(parseInventory(lab("  slurm:\n    accounting: true"), "lab.yaml", {}).lab.slurm?.accounting).toBe(true);
    expect(() => parseInventory(lab("  slurm:\n    accounting: yes please"), "lab.yaml", {})).toThrow(/^lab\.yaml:5:17: field 'lab\.slurm\.accounting'/);
  });

  it("refuses role slurm-controller under labrig's own queue, naming the host's roles", () => {
    expect(() => parseInventory("hosts:\n  c: {address: h, roles: [slurm-controller]}\n", "i.yaml", {})).toThrow(
      "i.yaml:2:26: host 'c', field 'roles': role slurm-controller needs lab.scheduler: slurm (lab.scheduler is labrig)",
    );
  });

  it("refuses a slurm section under labrig's own queue", () => {
    expect(() => parseInventory("lab:\n  slurm: {clusterName: x}\nhosts:\n  g: {address: h}\n", "i.yaml", {})).toThrow("i.yaml:2:10: field 'lab.slurm': set lab.scheduler: slurm to use it");
  });

  it("refuses slurm without exactly one controller, and without compute nodes", () => {
    expect(() => parseInventory("lab: {scheduler: slurm}\nhosts:\n  g: {address: h, roles: [gpu]}\n", "i.yaml", {})).toThrow("slurm needs exactly one host with role slurm-controller (none has it)");
    expect(() => parseInventory(lab("", "  ctl2: {address: 10.0.0.3, roles: [slurm-controller]}\n"), "i.yaml", {})).toThrow(
      "host 'ctl2', field 'roles': ctl is the slurm-controller already; labrig provisions one controller",
    );
    expect(() => parseInventory("lab: {scheduler: slurm}\nhosts:\n  c: {address: h, roles: [slurm-controller]}\n", "i.yaml", {})).toThrow("slurm needs compute nodes: give the GPU hosts role gpu");
  });

  it("refuses a partition whose labels match no compute node, and a host name Slurm cannot take", () => {
    expect(() => parseInventory(lab("  slurm:\n    partitions:\n      h100: {labels: {gpu: h100}}"), "i.yaml", {})).toThrow(
      `i.yaml:6:22: field 'lab.slurm.partitions.h100.labels': no compute node (role gpu) has labels {"gpu":"h100"}`,
    );
    expect(() => parseInventory(lab("", "  gpu.c: {address: 10.0.0.23, roles: [gpu]}\n"), "i.yaml", {})).toThrow("host 'gpu.c': a Slurm host's name is letters, digits and -");
  });

  it("brings the controller up after the dispatcher and before the nodes", () => {
    const inv = parseInventory(lab("", "  nas: {address: 10.0.0.1, roles: [dispatcher]}\n"), "i.yaml", {});
    expect(provisionWaves(inv.hosts).map((w) => w.map((h) => h.name))).toEqual([["nas"], ["ctl"], ["gpu-a", "gpu-b"]]);
  });

  it("opens slurmctld and srun's ports on the controller and slurmd's on nodes, from allowFrom", () => {
    const inv = parseInventory(lab(), "i.yaml", {});
    const [ctl, gpuA] = inv.hosts;
    expect(desiredUfwRules(ctl!, inv.lab)).toEqual(["allow 22/tcp", "allow from 10.0.0.0/24 to any port 6817 proto tcp", "allow from 10.0.0.0/24 to any port 60001:60100 proto tcp"]);
    expect(desiredUfwRules(gpuA!, inv.lab)).toEqual(["allow 22/tcp", "allow from 10.0.0.0/24 to any port 8020 proto tcp", "allow from 10.0.0.0/24 to any port 6818 proto tcp"]);
    expect(desiredUfwRules(gpuA!, { ...inv.lab, scheduler: "labrig" })).toEqual(["allow 22/tcp", "allow from 10.0.0.0/24 to any port 8020 proto tcp"]);
  });
});

describe("a host's facts for slurm.conf", () => {
  const lscpu = "Architecture:            x86_64\nCPU(s):                  32\nOn-line CPU(s) list:     0-31\nThread(s) per core:      2\nCore(s) per socket:      8\nSocket(s):               2\n";
  it("reads hostname, CPU layout, MemTotal in MiB, device nodes by number and nvidia-smi's names", () => {
    const text = `gpu-a\n--labrig-section--\n${lscpu}--labrig-section--\nMemTotal:       131891232 kB\n--labrig-section--\nnvidia10\nnvidia2\nnvidia0\n--labrig-section--\nNVIDIA A100-SXM4-80GB\nNVIDIA A100-SXM4-80GB\n`;
    expect(parseSlurmHostFacts(text, "gpu-a")).toEqual({
      hostname: "gpu-a", cpus: 32, sockets: 2, coresPerSocket: 8, threadsPerCore: 2, realMemoryMiB: 128800,
      gpuFiles: ["/dev/nvidia0", "/dev/nvidia2", "/dev/nvidia10"], gpuNames: ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"],
    });
  });

  it("fails naming the host when lscpu says nothing of CPUs", () => {
    expect(() => parseSlurmHostFacts("h\n--labrig-section--\n\n--labrig-section--\nMemTotal: 1 kB\n", "gpu-z")).toThrow("on gpu-z: lscpu printed no 'CPU\\(s\\):' line");
  });

  it("gathers every Slurm host's facts once per run, whichever steps ask", async () => {
    const inv = parseInventory(lab(), "i.yaml", {});
    const connected: string[] = [];
    const cluster = slurmClusterFacts({
      inventory: inv,
      connect: (host) => {
        connected.push(host.name);
        const out = `${host.name}\n--labrig-section--\n${lscpu}--labrig-section--\nMemTotal: 2048000 kB\n--labrig-section--\n--labrig-section--\n`;
        return { host: host.name, exec: async () => ({ stdout: out, stderr: "", exitCode: 0 }), close: async () => undefined } as never;
      },
    });
    const [a, b] = await Promise.all([cluster.facts(), cluster.facts()]);
    expect(a).toBe(b);
    expect(connected).toEqual(["ctl", "gpu-a", "gpu-b"]);
    expect(a.get("gpu-b")).toMatchObject({ cpus: 32, realMemoryMiB: 2000, gpuFiles: [] });
  });
});

describe("slurm.conf, gres.conf and cgroup.conf", () => {
  it("names GPU types by the gpu label, else by nvidia-smi's name, else none", () => {
    expect(gresType({ labels: { gpu: "A100" } }, [])).toBe("a100");
    expect(gresType({ labels: { gpu: "none" } }, ["NVIDIA GeForce RTX 3090"])).toBe("rtx3090");
    expect(gresType({ labels: {} }, ["NVIDIA A100-SXM4-80GB"])).toBe("a100");
    expect(gresType({ labels: {} }, [])).toBeUndefined();
  });

  it("renders the cluster from the inventory and every host's facts", () => {
    const inv = parseInventory(lab("  slurm:\n    partitions:\n      big: {labels: {gpu: a100}, maxTime: 2-00:00:00}\n      all: {default: true}"), "i.yaml", {});
    const spec = slurmClusterSpec(inv, clusterFacts);
    expect(renderSlurmConf(spec)).toBe(`# Written by labrig provision from the inventory and each host's facts; the same on every host of the cluster.
# Edits here are replaced on the next run: change the inventory (lab.slurm, roles, labels) instead.
ClusterName=vision-lab
SlurmctldHost=ctl-box(10.0.0.2)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
SlurmctldPort=6817
SlurmdPort=6818
SrunPortRange=60001-60100
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
DefMemPerCPU=2666

NodeName=gpu-a NodeAddr=10.0.0.21 CPUs=16 Sockets=1 CoresPerSocket=8 ThreadsPerCore=2 RealMemory=64000 Gres=gpu:a100:2 State=UNKNOWN
NodeName=gpu-b NodeAddr=10.0.0.22 CPUs=12 RealMemory=32000 Gres=gpu:rtx3090:1 State=UNKNOWN

PartitionName=big Nodes=gpu-a Default=NO MaxTime=2-00:00:00 State=UP
PartitionName=all Nodes=gpu-a,gpu-b Default=YES MaxTime=INFINITE State=UP
`);
    expect(renderGresConf(spec).split("\n").filter((l) => !l.startsWith("#"))).toEqual([
      "NodeName=gpu-a Name=gpu Type=a100 File=/dev/nvidia0",
      "NodeName=gpu-a Name=gpu Type=a100 File=/dev/nvidia1",
      "NodeName=gpu-b Name=gpu Type=rtx3090 File=/dev/nvidia0",
      "",
    ]);
    expect(renderCgroupConf()).toMatch(/^CgroupPlugin=autodetect\nConstrainCores=yes\nConstrainDevices=yes\nConstrainRAMSpace=yes\n$/m);
  });

  it("makes the first partition the default when none is marked, and leaves Gres out for a node without GPUs", () => {
    const inv = parseInventory(lab("  slurm:\n    clusterName: vis\n    partitions:\n      a: {}\n      b: {labels: {gpu: rtx3090}}"), "i.yaml", {});
    const spec = slurmClusterSpec(inv, new Map([...clusterFacts, ["gpu-b", facts({ gpuFiles: [] })]]));
    const conf = renderSlurmConf(spec);
    expect(conf).toContain("ClusterName=vis\n");
    expect(conf).toContain("PartitionName=a Nodes=gpu-a,gpu-b Default=YES");
    expect(conf).toContain("PartitionName=b Nodes=gpu-b Default=NO");
    expect(conf).toMatch(/^NodeName=gpu-b NodeAddr=10\.0\.0\.22 CPUs=16 Sockets=1 CoresPerSocket=8 ThreadsPerCore=2 RealMemory=64000 State=UNKNOWN$/m);
  });

  it("fails naming a Slurm host whose facts are missing", () => {
    const inv = parseInventory(lab(), "i.yaml", {});
    expect(() => slurmClusterSpec(inv, new Map([...clusterFacts].filter(([h]) => h !== "gpu-b")))).toThrow("no facts read from gpu-b; slurm.conf lists every Slurm host of i.yaml");
  });
});

describe("the Slurm daemons' plan", () => {
  const inv = parseInventory(lab(), "i.yaml", {});
  const files = slurmConfigFiles(slurmClusterSpec(inv, clusterFacts));
  const written = new Map(files.map((f) => [f.path, { exists: true, mode: "0644", owner: "root", group: "root", sha256: desiredSha256(f) }]));
  const running = { enabled: "enabled", active: "active" };

  it("on a bare host: install, write the three files, enable and start", () => {
    const changes = planSlurmDaemon({ unit: "slurmd.service", missing: ["slurmd"], unitState: { enabled: "not-found", active: "inactive" }, files, states: new Map() });
    expect(changes.map(describeChange)).toEqual([
      "install slurmd (not installed)",
      `write /etc/slurm/slurm.conf (0644 root:root) (slurm.conf missing)`,
      `write /etc/slurm/gres.conf (0644 root:root) (gres.conf missing)`,
      `write /etc/slurm/cgroup.conf (0644 root:root) (cgroup.conf missing)`,
      "enable slurmd.service (after install)",
      "start slurmd.service (after install)",
    ]);
  });

  it("converged: nothing; a changed slurm.conf under a running daemon: write it and restart", () => {
    expect(planSlurmDaemon({ unit: "slurmctld.service", missing: [], unitState: running, files, states: written })).toEqual([]);
    const stale = new Map(written);
    stale.set("/etc/slurm/slurm.conf", { ...written.get("/etc/slurm/slurm.conf")!, sha256: "0".repeat(64) });
    expect(planSlurmDaemon({ unit: "slurmctld.service", missing: [], unitState: running, files, states: stale }).map(describeChange)).toEqual([
      "write /etc/slurm/slurm.conf (0644 root:root) (slurm.conf differs)",
      "restart slurmctld.service (its configuration changed)",
    ]);
  });

  it("a controller that is a node too restarts its running slurmd with slurmctld", () => {
    const stale = new Map(written);
    stale.set("/etc/slurm/gres.conf", { ...written.get("/etc/slurm/gres.conf")!, sha256: "0".repeat(64) });
    const plan = (active: string) => planSlurmDaemon({ unit: "slurmctld.service", missing: [], unitState: running, files, states: stale, sharing: [{ unit: "slurmd.service", state: { enabled: "enabled", active } }] });
    expect(plan("active").map(describeChange)).toEqual([
      "write /etc/slurm/gres.conf (0644 root:root) (gres.conf differs)",
      "restart slurmctld.service (its configuration changed)",
      "restart slurmd.service (it reads the same configuration)",
    ]);
    expect(plan("inactive").map((c) => c.kind)).toEqual(["write-file", "restart-unit"]);
  });

  it("a mode change alone restarts nothing", () => {
    const loose = new Map(written);
    loose.set("/etc/slurm/gres.conf", { ...written.get("/etc/slurm/gres.conf")!, mode: "0666" });
    expect(planSlurmDaemon({ unit: "slurmd.service", missing: [], unitState: running, files, states: loose }).map((c) => c.kind)).toEqual(["set-mode"]);
  });
});

describe("Slurm accounting", () => {
  const inv = parseInventory(lab("  slurm:\n    accounting: true"), "i.yaml", {});
  const spec = slurmClusterSpec(inv, clusterFacts);
  const key = Buffer.alloc(128, 7);
  const conf = { path: "/etc/slurm/slurmdbd.conf", content: renderSlurmdbdConf(spec, databasePassword(key)), mode: 0o600, owner: "slurm", group: "slurm" };
  const running = { enabled: "enabled", active: "active" };
  const converged: SlurmAccountingFacts = {
    clusterName: "vision-lab",
    user: "deploy",
    missing: [],
    mariadb: running,
    slurmdbd: running,
    conf: { exists: true, mode: "0600", owner: "slurm", group: "slurm", sha256: desiredSha256(conf) },
    desiredConf: conf,
    databaseUser: true,
    clusters: ["vision-lab"],
    operators: ["deploy"],
  };

  it("stores jobs in slurmdbd on the controller and ranks them by fair share, then age", () => {
    const lines = renderSlurmConf(spec).split("\n");
    expect(lines).toEqual(expect.arrayContaining([
      "AccountingStorageType=accounting_storage/slurmdbd",
      "AccountingStorageHost=10.0.0.2",
      "AccountingStoragePort=6819",
      "AccountingStorageEnforce=associations",
      "PriorityType=priority/multifactor",
      "PriorityWeightFairshare=10000",
      "PriorityWeightAge=1000",
    ]));
    expect(lines).not.toContain("AccountingStorageType=accounting_storage/none");
    expect(renderSlurmConf(slurmClusterSpec(parseInventory(lab(), "i.yaml", {}), clusterFacts))).toContain("AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none\n");
  });

  it("renders slurmdbd.conf for the controller's hostname, with a password made from the munge key", () => {
    const text = renderSlurmdbdConf(spec, databasePassword(key));
    expect(text).toContain("DbdHost=ctl-box\nDbdPort=6819\nSlurmUser=slurm\nStorageType=accounting_storage/mysql\nStorageHost=localhost\nStorageUser=slurm\n");
    expect(text).toContain(`StoragePass=${databasePassword(key)}\nStorageLoc=slurm_acct_db\n`);
    expect(databasePassword(key)).toBe(databasePassword(Buffer.alloc(128, 7)));
    expect(databasePassword(key)).not.toBe(databasePassword(Buffer.alloc(128, 8)));
    expect(databasePassword(key)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("on a bare controller: install, MariaDB up, the database, slurmdbd.conf, slurmdbd up, the cluster, the operator; no password in the plan", () => {
    const changes = planSlurmAccounting({ ...converged, missing: ["mariadb-server", "slurmdbd", "slurm-client"], mariadb: { enabled: "not-found", active: "inactive" }, slurmdbd: { enabled: "not-found", active: "inactive" }, conf: { exists: false }, databaseUser: false, clusters: undefined, operators: undefined });
    expect(changes.map(describeChange)).toEqual([
      "install mariadb-server, slurmdbd, slurm-client (not installed)",
      "enable mariadb.service (after install)",
      "start mariadb.service (after install)",
      "create the accounting database and its slurm user in MariaDB (with the password slurmdbd.conf holds) (no slurm user in MariaDB yet)",
      "write /etc/slurm/slurmdbd.conf (0600 slurm:slurm) (slurmdbd.conf missing)",
      "enable slurmdbd.service (after install)",
      "start slurmdbd.service (after install)",
      "register cluster vision-lab in the accounting database (slurmdbd is not running yet)",
      "make deploy a Slurm operator (the dispatcher adds each person's account as this user) (slurmdbd is not running yet)",
    ]);
    expect(JSON.stringify(changes)).not.toContain(databasePassword(key));
  });

  it("converged: nothing; a new munge key: the password set again, the file written, slurmdbd restarted", () => {
    expect(planSlurmAccounting(converged)).toEqual([]);
    const newKey = { ...converged, conf: { ...converged.conf, sha256: "0".repeat(64) } };
    expect(planSlurmAccounting(newKey).map((c) => c.kind === "run" ? c.what.split(" (")[0] : c.kind)).toEqual(["create the accounting database and its slurm user in MariaDB", "write-file", "restart-unit"]);
  });

  it("before the munge key is read back (a dry run of a bare lab) says so instead of a file", () => {
    const { desiredConf: _none, ...noKey } = converged;
    expect(planSlurmAccounting({ ...noKey, conf: { exists: false } }).map(describeChange)[1]).toMatch(/^write slurmdbd.conf once the cluster's munge key is read back/);
  });

  it("reads operators from sacctmgr's user|adminlevel lines", () => {
    expect(operatorsOf(["root|Administrator", "deploy|Operator", "ana|None"])).toEqual(["root", "deploy"]);
    expect(operatorsOf(undefined)).toBeUndefined();
  });
});

describe("the munge step's plan", () => {
  const key = Buffer.alloc(128, 7);
  const keyState = { exists: true, mode: "0400", owner: "munge", group: "munge", sha256: sha256(key) };
  const running = { enabled: "enabled", active: "active" };
  const base = { controller: "ctl", localFile: "/home/me/.labrig/labs/lab/munge.key" };

  it("on a bare controller: install, secure the key, read it back, enable and start", () => {
    const changes = planMunge({ ...base, isController: true, missing: ["munge"], key: { exists: false }, unit: { enabled: "not-found", active: "inactive" } });
    expect(changes.map(describeChange)).toEqual([
      "install munge (not installed (its package makes a key))",
      "make the munge key 0400 munge:munge, creating it with mungekey if missing (no key yet)",
      "read the munge key back to /home/me/.labrig/labs/lab/munge.key (0600) (not read back yet)",
      "enable munge.service (after install)",
      "start munge.service (after install)",
    ]);
  });

  it("on a converged controller and node: nothing", () => {
    expect(planMunge({ ...base, isController: true, missing: [], key: keyState, unit: running, localKey: key })).toEqual([]);
    expect(planMunge({ ...base, isController: false, missing: [], key: keyState, unit: running, localKey: key })).toEqual([]);
  });

  it("on a node with the package's own key: write the cluster's 0400 munge:munge and restart munged, the key's bytes in no change", () => {
    const changes = planMunge({ ...base, isController: false, missing: [], key: { ...keyState, mode: "0600", sha256: "f".repeat(64) }, unit: running, localKey: key });
    expect(changes.map(describeChange)).toEqual(["write /etc/munge/munge.key (0400 munge:munge) (differs from the controller's)", "restart munge.service (to use the cluster's key)"]);
    expect(JSON.stringify(changes)).not.toContain(key.toString("base64"));
    expect(changes[0]).toMatchObject({ kind: "write-file", path: "/etc/munge/munge.key", mode: "0400", owner: "munge:munge", sha256: sha256(key) });
  });

  it("on a node before the controller's key was read back: says so first, before installing anything", () => {
    const changes = planMunge({ ...base, isController: false, missing: ["munge"], key: { exists: false }, unit: { enabled: "not-found", active: "inactive" } });
    expect(describeChange(changes[0]!)).toBe("write the munge key read back from the controller (not read back yet from ctl (/home/me/.labrig/labs/lab/munge.key))");
    expect(changes.map((c) => c.kind)).toEqual(["run", "install-packages", "enable-unit", "restart-unit"]);
  });

  it("a controller whose key differs from this machine's copy: read it back again", () => {
    expect(planMunge({ ...base, isController: true, missing: [], key: keyState, unit: running, localKey: Buffer.from("old") }).map(describeChange)).toEqual([
      "read the munge key back to /home/me/.labrig/labs/lab/munge.key (0600) (this machine's copy differs from the controller's)",
    ]);
  });
});
