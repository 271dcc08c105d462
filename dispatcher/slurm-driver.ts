// Drives Slurm when it is the lab's scheduler: every queued attempt becomes an `sbatch` on the
// controller (over the project's one SSH Remote), and every Slurm job whose labrig job was
// cancelled or moved on to a newer attempt is `scancel`ed. What to do comes from the database
// (SlurmJobs' two queries), so a failed sbatch, a missed event or a restart is made good by the
// next pass; job events and a timer only start passes, one at a time.
import { shq } from "../core/shell.js";
import type { Device, SlurmView } from "../core/api.js";
import { errorMessage } from "../core/errors.js";
import type { Remote } from "../provision/remote.js";
import type { DispatcherService } from "./service.js";
import type { SlurmJobRow } from "./slurm-jobs.js";
import { accountingIsOn, batchScript, ensureAccountCommand, excludedNodes, parseSbatchParsable, slurmAccount } from "./slurm-script.js";

export interface SlurmDriverOptions {
  /** The Slurm controller (or any host with sbatch/scancel and the cluster's munge key). */
  remote: Pick<Remote, "host" | "run" | "close">;
  /** The dispatcher's URL as the compute nodes reach it. */
  claimUrl: string;
  /**
   * Slurm's last good view (sinfo's nodes, squeue's jobs) and when its read began; undefined before
   * one was read. Absent: the agents' hosts stand for the nodes, and attempts whose Slurm job ended
   * unclaimed are not noticed.
   */
  slurmView?: () => Promise<{ readStartedAtMs: number; view: SlurmView } | undefined>;
  /** A pass also runs this often, to retry what failed (default 15 s). */
  passEveryMs?: number;
  log?: (line: string) => void;
}

export class SlurmDriver {
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** Whether Slurm keeps accounts (read once from `scontrol show config`); undefined until read. */
  private accounting: boolean | undefined;
  /** Accounts known to exist for the SSH user. */
  private readonly accounts = new Set<string>();
  /** Jobs already logged as fitting no Slurm node, so a pass every 15 s does not say it again. */
  private readonly unplaceable = new Set<string>();

  constructor(
    private readonly service: DispatcherService,
    private readonly opts: SlurmDriverOptions,
  ) {}

  start(): void {
    this.unsubscribe = this.service.events.subscribe((ev) => {
      if (ev.type === "job") this.requestPass();
    });
    this.timer = setInterval(() => this.requestPass(), this.opts.passEveryMs ?? 15_000);
    this.timer.unref();
    this.requestPass();
  }

  /**
   * Stops starting passes and waits a little for the one under way (a pass stops between commands;
   * the dispatcher must exit within its shutdown budget), then closes the SSH connection. An sbatch
   * cut off here leaves its row; the Slurm job, if it was made, claims as usual after the restart.
   */
  async stop(waitMs = 3000): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.running, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    await this.opts.remote.close();
  }

  /** Resolves when no pass is running or asked for (tests wait on it). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private requestPass(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.stopped);
    })().finally(() => (this.running = undefined));
  }

  /** One pass: submit what is queued and not in Slurm, cancel what Slurm still holds for nothing. */
  async pass(): Promise<void> {
    const slurm = this.service.slurmJobs;
    const toSubmit = slurm.attemptsToSubmit();
    const awaiting = slurm.attemptsAwaitingClaim();
    const seen = (toSubmit.length || awaiting.length) && this.opts.slurmView ? await this.opts.slurmView() : undefined;
    this.noticeUnclaimedEnds(awaiting, seen);
    // Where jobs may go is read once a pass: the agents' devices and the nodes Slurm lists.
    const devices = this.service.listDevices();
    const nodes = seen?.view.nodes.map((n) => n.name);
    for (const { jobId, attempt } of slurm.attemptsToSubmit()) {
      if (this.stopped) return;
      await this.submit(jobId, attempt, devices, nodes);
    }
    for (const row of slurm.attemptsToCancel()) {
      if (this.stopped) return;
      try {
        await this.opts.remote.run(`scancel ${shq(row.slurmJobId!)}`, { timeoutMs: 60_000 });
        slurm.markCancelled(row.jobId, row.attempt);
        this.log(`scancel ${row.slurmJobId} (job ${row.jobId} attempt ${row.attempt})`);
      } catch (err) {
        this.log(`scancel ${row.slurmJobId} for job ${row.jobId} failed, trying again later: ${errorMessage(err)}`);
      }
    }
  }

  /**
   * Attempts whose Slurm job is no longer in Slurm's queue, read after sbatch answered, and never
   * claimed: the batch script ended without handing the job to an agent. Each gets a new attempt
   * (or fails when no retries remain), so the job is neither stuck queued nor lost.
   */
  private noticeUnclaimedEnds(awaiting: SlurmJobRow[], seen: { readStartedAtMs: number; view: SlurmView } | undefined): void {
    if (!seen) return;
    const inQueue = new Set(seen.view.queue.map((j) => j.id.split("_")[0]));
    for (const row of awaiting) {
      if (inQueue.has(row.slurmJobId!) || Date.parse(row.submittedAt) >= seen.readStartedAtMs) continue;
      const why = `Slurm job ${row.slurmJobId} ended without claiming attempt ${row.attempt} (its batch script's output: /tmp/labrig-slurm-${row.slurmJobId}.out on the node Slurm gave it)`;
      const job = this.service.slurmJobEndedUnclaimed(row.jobId, row.attempt, why);
      if (job) this.log(`job ${row.jobId}: ${why}; ${job.state === "queued" ? `attempt ${job.attempt} goes to Slurm again` : `the job is ${job.state}, no retries left`}`);
    }
  }

  private async submit(jobId: string, attempt: number, devices: Device[], slurmNodes: string[] | undefined): Promise<void> {
    const job = this.service.store.getJob(jobId);
    if (!job || job.state !== "queued" || job.attempt !== attempt) return;
    // Slurm places the job only on nodes whose labrig agent can take it; with none, it waits in labrig's queue.
    const { exclude, eligible } = excludedNodes(job, devices, slurmNodes);
    if (eligible.length === 0) {
      if (!this.unplaceable.has(`${jobId}/${attempt}`)) this.log(`job ${jobId} attempt ${attempt} waits: no Slurm node has a labrig agent that meets its GPUs and constraints`);
      this.unplaceable.add(`${jobId}/${attempt}`);
      return;
    }
    this.unplaceable.delete(`${jobId}/${attempt}`);
    const slurm = this.service.slurmJobs;
    let account: string | undefined;
    try {
      account = await this.accountFor(job.owner ?? null);
    } catch (err) {
      this.log(`no Slurm account for job ${jobId}'s owner ${job.owner ?? "(none)"} yet, trying again later: ${errorMessage(err)}`);
      return;
    }
    // The row (and its token) exists before sbatch runs: a quick node may claim before sbatch answers.
    const token = slurm.reserve(jobId, attempt);
    try {
      const script = batchScript({ id: job.id, name: job.name, gpus: job.gpus, cpus: job.cpus, memoryMiB: job.memoryMiB, timeoutS: job.timeoutS, priority: job.priority, exclude, ...(account ? { account } : {}) }, attempt, this.opts.claimUrl, token);
      const slurmJobId = parseSbatchParsable(await this.opts.remote.run("sbatch --parsable", { input: script, timeoutMs: 60_000 }));
      slurm.setSlurmJobId(jobId, attempt, slurmJobId);
      this.log(`sbatch: job ${jobId} attempt ${attempt} is Slurm job ${slurmJobId} on ${this.opts.remote.host}`);
    } catch (err) {
      slurm.remove(jobId, attempt);
      this.log(`sbatch for job ${jobId} attempt ${attempt} failed, trying again later: ${errorMessage(err)}`);
    }
  }

  /**
   * With Slurm's accounting on, the account a person's jobs run under (made for the SSH user, an
   * operator, the first time); undefined with it off. Fair share is then between people.
   */
  private async accountFor(owner: string | null): Promise<string | undefined> {
    if (this.accounting === undefined) this.accounting = accountingIsOn(await this.opts.remote.run("scontrol show config", { timeoutMs: 60_000 }));
    if (!this.accounting) return undefined;
    const account = slurmAccount(owner);
    if (!this.accounts.has(account)) {
      await this.opts.remote.run(ensureAccountCommand(account), { timeoutMs: 60_000 });
      this.accounts.add(account);
      this.log(`Slurm account ${account} is ready for ${owner ?? "jobs of no one's"}`);
    }
    return account;
  }

  private log(line: string): void {
    (this.opts.log ?? ((l: string) => console.log(`labrig dispatcher: slurm: ${l}`)))(line);
  }
}
