// Drives Slurm when it is the lab's scheduler: every queued attempt becomes an `sbatch` on the
// controller (over the project's one SSH Remote), and every Slurm job whose labrig job was
// cancelled or moved on to a newer attempt is `scancel`ed. What to do comes from the database
// (SlurmJobs' two queries), so a failed sbatch, a missed event or a restart is made good by the
// next pass; job events and a timer only start passes, one at a time.
import { shq } from "../core/shell.js";
import { errorMessage } from "../core/errors.js";
import type { Remote } from "../provision/remote.js";
import type { DispatcherService } from "./service.js";
import { batchScript, parseSbatchParsable } from "./slurm-script.js";

export interface SlurmDriverOptions {
  /** The Slurm controller (or any host with sbatch/scancel and the cluster's munge key). */
  remote: Pick<Remote, "host" | "run" | "close">;
  /** The dispatcher's URL as the compute nodes reach it. */
  claimUrl: string;
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
    for (const { jobId, attempt } of slurm.attemptsToSubmit()) {
      if (this.stopped) return;
      await this.submit(jobId, attempt);
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

  private async submit(jobId: string, attempt: number): Promise<void> {
    const job = this.service.store.getJob(jobId);
    if (!job || job.state !== "queued" || job.attempt !== attempt) return;
    const slurm = this.service.slurmJobs;
    // The row (and its token) exists before sbatch runs: a quick node may claim before sbatch answers.
    const token = slurm.reserve(jobId, attempt);
    try {
      const script = batchScript({ id: job.id, name: job.name, gpus: job.gpus, cpus: job.cpus, memoryMiB: job.memoryMiB, timeoutS: job.timeoutS }, attempt, this.opts.claimUrl, token);
      const slurmJobId = parseSbatchParsable(await this.opts.remote.run("sbatch --parsable", { input: script, timeoutMs: 60_000 }));
      slurm.setSlurmJobId(jobId, attempt, slurmJobId);
      this.log(`sbatch: job ${jobId} attempt ${attempt} is Slurm job ${slurmJobId} on ${this.opts.remote.host}`);
    } catch (err) {
      slurm.remove(jobId, attempt);
      this.log(`sbatch for job ${jobId} attempt ${attempt} failed, trying again later: ${errorMessage(err)}`);
    }
  }

  private log(line: string): void {
    (this.opts.log ?? ((l: string) => console.log(`labrig dispatcher: slurm: ${l}`)))(line);
  }
}
