// Which Slurm job carries each attempt of a labrig job, and its claim token (stored hashed): the
// table the Slurm driver writes when it submits and the claim route reads to know who calls.
import type { Db } from "./db.js";
import { generateToken, hashToken } from "./tokens.js";

export interface SlurmJobRow {
  jobId: string;
  attempt: number;
  /** null until sbatch has answered. */
  slurmJobId: string | null;
  submittedAt: string;
  cancelledAt: string | null;
}

interface Row {
  job_id: string;
  attempt: number;
  slurm_job_id: string | null;
  submitted_at: string;
  cancelled_at: string | null;
}

const toRow = (r: Row): SlurmJobRow => ({ jobId: r.job_id, attempt: r.attempt, slurmJobId: r.slurm_job_id, submittedAt: r.submitted_at, cancelledAt: r.cancelled_at });

export class SlurmJobs {
  private readonly stmts;

  constructor(readonly db: Db) {
    this.stmts = {
      insert: db.prepare("INSERT INTO slurm_jobs (job_id, attempt, claim_token_hash, submitted_at) VALUES (?, ?, ?, ?)"),
      setSlurmId: db.prepare("UPDATE slurm_jobs SET slurm_job_id = ?, submitted_at = ? WHERE job_id = ? AND attempt = ?"),
      remove: db.prepare("DELETE FROM slurm_jobs WHERE job_id = ? AND attempt = ?"),
      get: db.prepare<[string, number], Row>("SELECT * FROM slurm_jobs WHERE job_id = ? AND attempt = ?"),
      ofJob: db.prepare<[string], Row>("SELECT * FROM slurm_jobs WHERE job_id = ? ORDER BY attempt"),
      byToken: db.prepare<[string], Row>("SELECT * FROM slurm_jobs WHERE claim_token_hash = ?"),
      cancelled: db.prepare("UPDATE slurm_jobs SET cancelled_at = ? WHERE job_id = ? AND attempt = ?"),
      toSubmit: db.prepare<[], { id: string; attempt: number }>(
        `SELECT j.id, j.attempt FROM jobs j LEFT JOIN slurm_jobs s ON s.job_id = j.id AND s.attempt = j.attempt
         WHERE j.state = 'queued' AND s.job_id IS NULL ORDER BY j.seq`,
      ),
      awaitingClaim: db.prepare<[], Row>(
        `SELECT s.* FROM slurm_jobs s JOIN jobs j ON j.id = s.job_id AND j.attempt = s.attempt
         WHERE s.slurm_job_id IS NOT NULL AND s.cancelled_at IS NULL AND j.state = 'queued' ORDER BY s.submitted_at`,
      ),
      toCancel: db.prepare<[], Row>(
        `SELECT s.* FROM slurm_jobs s JOIN jobs j ON j.id = s.job_id
         WHERE s.slurm_job_id IS NOT NULL AND s.cancelled_at IS NULL
           AND (j.attempt > s.attempt OR j.cancel_requested = 1 OR j.state = 'cancelled') ORDER BY s.submitted_at`,
      ),
    };
  }

  /**
   * Records that an attempt is being handed to Slurm and returns its new claim token (shown once:
   * only its hash is kept). Throws when the attempt already has a row: one Slurm job per attempt.
   */
  reserve(jobId: string, attempt: number, now = new Date()): string {
    const token = generateToken("lrs");
    this.stmts.insert.run(jobId, attempt, hashToken(token), now.toISOString());
    return token;
  }

  /** The Slurm job id sbatch answered for an attempt; submittedAt becomes now, when the Slurm job surely exists. */
  setSlurmJobId(jobId: string, attempt: number, slurmJobId: string, now = new Date()): void {
    this.stmts.setSlurmId.run(slurmJobId, now.toISOString(), jobId, attempt);
  }

  /** Forgets an attempt whose sbatch failed, so that it is submitted again. */
  remove(jobId: string, attempt: number): void {
    this.stmts.remove.run(jobId, attempt);
  }

  get(jobId: string, attempt: number): SlurmJobRow | undefined {
    const r = this.stmts.get.get(jobId, attempt);
    return r ? toRow(r) : undefined;
  }

  /** Every attempt of a job that went to Slurm, oldest first. */
  ofJob(jobId: string): SlurmJobRow[] {
    return this.stmts.ofJob.all(jobId).map(toRow);
  }

  /** The attempt a claim token was made for, or undefined for any other token. */
  forClaimToken(token: string): SlurmJobRow | undefined {
    const r = this.stmts.byToken.get(hashToken(token));
    return r ? toRow(r) : undefined;
  }

  /** Queued jobs whose current attempt has not gone to Slurm yet, in queue order. */
  attemptsToSubmit(): { jobId: string; attempt: number }[] {
    return this.stmts.toSubmit.all().map((r) => ({ jobId: r.id, attempt: r.attempt }));
  }

  /** Attempts in Slurm whose batch script has not claimed them yet (their labrig job is still queued at that attempt). */
  attemptsAwaitingClaim(): SlurmJobRow[] {
    return this.stmts.awaitingClaim.all().map(toRow);
  }

  /** Slurm jobs to scancel: their labrig job was cancelled (or asked to be), or moved on to a newer attempt. */
  attemptsToCancel(): SlurmJobRow[] {
    return this.stmts.toCancel.all().map(toRow);
  }

  markCancelled(jobId: string, attempt: number, now = new Date()): void {
    this.stmts.cancelled.run(now.toISOString(), jobId, attempt);
  }
}
