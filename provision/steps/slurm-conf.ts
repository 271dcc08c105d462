// The Slurm cluster's configuration as pure functions: the inventory and every Slurm host's facts
// in, the text of /etc/slurm/slurm.conf, gres.conf and cgroup.conf out. The same three files go to
// every host of the cluster (slurmd warns when its slurm.conf differs from the controller's), so
// nothing here depends on which host the file is for.
//
//   const spec = slurmClusterSpec(inventory, facts);   // facts: slurmClusterFacts(...).facts()
//   slurmConfigFiles(spec)  // [{path: "/etc/slurm/slurm.conf", content, mode: 0o644}, gres.conf, cgroup.conf]
import { LabrigError } from "../../core/errors.js";
import type { SlurmHostFacts } from "../facts/slurm-host.js";
import { type HostConfig, type Inventory, labelsMatch } from "../inventory.js";
import type { DesiredFile } from "../ops.js";
import { slurmHosts } from "../slurm-cluster.js";

export const slurmctldPort = 6817;
export const slurmdPort = 6818;
/** slurmdbd's port, on the controller; only slurmctld and the controller's own sacctmgr/sacct reach it. */
export const slurmdbdPort = 6819;
export const slurmAccountingDatabase = "slurm_acct_db";
/** Where srun listens for the nodes' slurmd to call back; the controller's firewall opens it (ufw spells it 60001:60100). */
export const srunPortRange = { from: 60001, to: 60100 };
export const slurmConfDir = "/etc/slurm";

export interface SlurmNodeSpec {
  name: string;
  address: string;
  cpus: number;
  /** Left out when lscpu's sockets × cores × threads is not the CPU count (a cpuset-limited host). */
  layout?: { sockets: number; coresPerSocket: number; threadsPerCore: number };
  realMemoryMiB: number;
  gpus?: { type?: string; files: string[] };
}

export interface SlurmPartitionSpec {
  name: string;
  nodes: string[];
  default: boolean;
  maxTime: string;
}

export interface SlurmClusterSpec {
  clusterName: string;
  /** The host slurmctld runs on: its short hostname (slurmctld checks it) and the address nodes reach it at. */
  controller: { name: string; hostname: string; address: string };
  nodes: SlurmNodeSpec[];
  partitions: SlurmPartitionSpec[];
  /** slurmdbd on the controller: accounts, fair share (lab.slurm.accounting). */
  accounting: boolean;
}

/** Slurm's ClusterName: lab.slurm.clusterName, else the lab's name lower-cased with other characters as '-'. */
export function slurmClusterName(inv: Inventory): string {
  return inv.lab.slurm?.clusterName ?? (inv.lab.name.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+/, "").slice(0, 40) || "lab");
}

/**
 * The Gres type of a node's GPUs: its `gpu` label (as labrig's constraints use it), else a short
 * name from nvidia-smi's ("NVIDIA A100-SXM4-80GB" → a100, "NVIDIA GeForce RTX 3090" → rtx3090),
 * else none (then `Gres=gpu:N`).
 */
export function gresType(host: Pick<HostConfig, "labels">, gpuNames: string[]): string | undefined {
  const label = host.labels.gpu;
  if (label && label !== "none") return label.toLowerCase().replace(/[^a-z0-9_]/g, "");
  const name = gpuNames[0];
  if (!name) return undefined;
  const words = name.toLowerCase().split(/\s+/).filter((w) => !["nvidia", "geforce", "tesla", "quadro"].includes(w));
  const short = words.join("").split("-")[0]!.replace(/[^a-z0-9_]/g, "");
  return short || undefined;
}

/** The cluster as slurm.conf describes it; a Slurm host without facts is an error naming it. */
export function slurmClusterSpec(inv: Inventory, facts: Map<string, SlurmHostFacts>): SlurmClusterSpec {
  if (inv.lab.scheduler !== "slurm") throw new LabrigError(`${inv.file}: lab.scheduler is ${inv.lab.scheduler}, not slurm`);
  const factsOf = (h: HostConfig) => {
    const f = facts.get(h.name);
    if (!f) throw new LabrigError(`no facts read from ${h.name}; slurm.conf lists every Slurm host of ${inv.file}`);
    return f;
  };
  const hosts = slurmHosts(inv);
  const controllerHost = hosts.find((h) => h.roles.includes("slurm-controller"))!;
  const computeHosts = hosts.filter((h) => h.roles.includes("gpu"));
  const nodes = computeHosts.map((h): SlurmNodeSpec => {
    const f = factsOf(h);
    const node: SlurmNodeSpec = { name: h.name, address: h.address, cpus: f.cpus, realMemoryMiB: f.realMemoryMiB };
    if (f.sockets * f.coresPerSocket * f.threadsPerCore === f.cpus) node.layout = { sockets: f.sockets, coresPerSocket: f.coresPerSocket, threadsPerCore: f.threadsPerCore };
    if (f.gpuFiles.length) {
      const type = gresType(h, f.gpuNames);
      node.gpus = { ...(type ? { type } : {}), files: f.gpuFiles };
    }
    return node;
  });
  const configured = Object.entries(inv.lab.slurm?.partitions ?? { gpu: { labels: {}, default: true, maxTime: "INFINITE" } });
  const anyDefault = configured.some(([, p]) => p.default);
  const partitions = configured.map(([name, p], i) => ({
    name,
    nodes: computeHosts.filter((h) => labelsMatch(h, p.labels)).map((h) => h.name),
    default: anyDefault ? p.default : i === 0,
    maxTime: p.maxTime,
  }));
  return {
    clusterName: slurmClusterName(inv),
    controller: { name: controllerHost.name, hostname: factsOf(controllerHost).hostname || controllerHost.name, address: controllerHost.address },
    nodes,
    partitions,
    accounting: inv.lab.slurm?.accounting ?? false,
  };
}

const header = "# Written by labrig provision from the inventory and each host's facts; the same on every host of the cluster.\n# Edits here are replaced on the next run: change the inventory (lab.slurm, roles, labels) instead.\n";

export function renderSlurmConf(spec: SlurmClusterSpec): string {
  const anyGpus = spec.nodes.some((n) => n.gpus);
  // Jobs that ask no memory get an even share of the smallest node's per CPU, not the whole node.
  const defMemPerCpu = Math.max(1, Math.min(...spec.nodes.map((n) => Math.floor(n.realMemoryMiB / n.cpus))));
  const lines = [
    `ClusterName=${spec.clusterName}`,
    `SlurmctldHost=${spec.controller.hostname}(${spec.controller.address})`,
    "SlurmUser=slurm",
    "AuthType=auth/munge",
    "CredType=cred/munge",
    "MpiDefault=none",
    "ProctrackType=proctrack/cgroup",
    "TaskPlugin=task/cgroup",
    "SelectType=select/cons_tres",
    "SelectTypeParameters=CR_Core_Memory",
    ...(anyGpus ? ["GresTypes=gpu"] : []),
    `SlurmctldPort=${slurmctldPort}`,
    `SlurmdPort=${slurmdPort}`,
    `SrunPortRange=${srunPortRange.from}-${srunPortRange.to}`,
    "StateSaveLocation=/var/lib/slurm/slurmctld",
    "SlurmdSpoolDir=/var/lib/slurm/slurmd",
    "SlurmctldPidFile=/run/slurmctld.pid",
    "SlurmdPidFile=/run/slurmd.pid",
    "SlurmctldLogFile=/var/log/slurm/slurmctld.log",
    "SlurmdLogFile=/var/log/slurm/slurmd.log",
    // A node that was down comes back by itself once its slurmd registers with a valid configuration.
    "ReturnToService=2",
    ...(spec.accounting
      ? [
          // Jobs run only under an account slurmdbd knows (the dispatcher makes one per person), and
          // wait by fair share between accounts, then age; labrig's priorities lower it by --nice.
          "AccountingStorageType=accounting_storage/slurmdbd",
          `AccountingStorageHost=${spec.controller.address}`,
          `AccountingStoragePort=${slurmdbdPort}`,
          "AccountingStorageEnforce=associations",
          "JobAcctGatherType=jobacct_gather/linux",
          "PriorityType=priority/multifactor",
          "PriorityWeightFairshare=10000",
          "PriorityWeightAge=1000",
          "PriorityDecayHalfLife=7-0",
        ]
      : ["AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none"]),
    `DefMemPerCPU=${defMemPerCpu}`,
    "",
    ...spec.nodes.map((n) =>
      [
        `NodeName=${n.name}`,
        `NodeAddr=${n.address}`,
        `CPUs=${n.cpus}`,
        ...(n.layout ? [`Sockets=${n.layout.sockets}`, `CoresPerSocket=${n.layout.coresPerSocket}`, `ThreadsPerCore=${n.layout.threadsPerCore}`] : []),
        `RealMemory=${n.realMemoryMiB}`,
        ...(n.gpus ? [`Gres=gpu:${n.gpus.type ? `${n.gpus.type}:` : ""}${n.gpus.files.length}`] : []),
        "State=UNKNOWN",
      ].join(" "),
    ),
    "",
    ...spec.partitions.map((p) => `PartitionName=${p.name} Nodes=${p.nodes.join(",")} Default=${p.default ? "YES" : "NO"} MaxTime=${p.maxTime} State=UP`),
  ];
  return `${header}${lines.join("\n")}\n`;
}

/** One line a GPU device file, each naming its node, so the one file serves every node. */
export function renderGresConf(spec: SlurmClusterSpec): string {
  const lines = spec.nodes.flatMap((n) => (n.gpus ? n.gpus.files.map((f) => `NodeName=${n.name} Name=gpu${n.gpus!.type ? ` Type=${n.gpus!.type}` : ""} File=${f}`) : []));
  return `${header}${lines.length ? lines.join("\n") + "\n" : "# No node has GPUs.\n"}`;
}

/** A job sees only its own cores, memory and GPU device files (cgroup v1 or v2, whichever the host runs). */
export function renderCgroupConf(): string {
  return `${header}CgroupPlugin=autodetect\nConstrainCores=yes\nConstrainDevices=yes\nConstrainRAMSpace=yes\n`;
}

/**
 * slurmdbd.conf, on the controller only (0600 slurm:slurm: it holds the database password). The
 * password is the caller's (slurm-accounting.ts derives it from the cluster's munge key).
 */
export function renderSlurmdbdConf(spec: SlurmClusterSpec, databasePassword: string): string {
  return `${header}${[
    "AuthType=auth/munge",
    `DbdHost=${spec.controller.hostname}`,
    `DbdPort=${slurmdbdPort}`,
    "SlurmUser=slurm",
    "StorageType=accounting_storage/mysql",
    "StorageHost=localhost",
    "StorageUser=slurm",
    `StoragePass=${databasePassword}`,
    `StorageLoc=${slurmAccountingDatabase}`,
    "LogFile=/var/log/slurm/slurmdbd.log",
    "PidFile=/run/slurmdbd.pid",
  ].join("\n")}\n`;
}

export function slurmConfigFiles(spec: SlurmClusterSpec): DesiredFile[] {
  return [
    { path: `${slurmConfDir}/slurm.conf`, content: renderSlurmConf(spec), mode: 0o644 },
    { path: `${slurmConfDir}/gres.conf`, content: renderGresConf(spec), mode: 0o644 },
    { path: `${slurmConfDir}/cgroup.conf`, content: renderCgroupConf(), mode: 0o644 },
  ];
}
