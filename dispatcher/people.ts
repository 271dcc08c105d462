// People (admins and members) and join tokens, kept hashed in SQLite. A token is shown once, when
// it is made; only its sha256 is stored, so a copy of labrig.db lets no one in.
import type { PersonLimits } from "../core/api.js";
import { randomBytes } from "node:crypto";
import type { Role } from "../core/api.js";
import type { Db } from "./db.js";
import { generateToken, hashToken } from "./tokens.js";

/** The name the state dir's admin token acts under: the lab's first admin. */
export const FIRST_ADMIN = "admin";

export interface Person {
  name: string;
  role: Role;
  createdAt: string;
  createdBy: string | null;
  revokedAt: string | null;
}

export interface JoinTokenInfo {
  id: string;
  note: string | null;
  createdAt: string;
  createdBy: string | null;
  expiresAt: string | null;
  usesLeft: number | null;
  uses: number;
  revokedAt: string | null;
  /** Whether it would let an agent register now. */
  usable: boolean;
}

interface PersonRow {
  name: string;
  role: Role;
  created_at: string;
  created_by: string | null;
  revoked_at: string | null;
}

interface JoinRow {
  id: string;
  note: string | null;
  created_at: string;
  created_by: string | null;
  expires_at: string | null;
  uses_left: number | null;
  uses: number;
  revoked_at: string | null;
}

export class PeopleError extends Error {
  constructor(
    readonly code: "exists" | "not_found",
    message: string,
  ) {
    super(message);
  }
}

const toPerson = (r: PersonRow): Person => ({ name: r.name, role: r.role, createdAt: r.created_at, createdBy: r.created_by, revokedAt: r.revoked_at });

function toJoin(r: JoinRow, nowMs: number): JoinTokenInfo {
  return {
    id: r.id,
    note: r.note,
    createdAt: r.created_at,
    createdBy: r.created_by,
    expiresAt: r.expires_at,
    usesLeft: r.uses_left,
    uses: r.uses,
    revokedAt: r.revoked_at,
    usable: joinUsable(r, nowMs),
  };
}

function joinUsable(r: Pick<JoinRow, "revoked_at" | "expires_at" | "uses_left">, nowMs: number): boolean {
  return r.revoked_at === null && (r.expires_at === null || Date.parse(r.expires_at) > nowMs) && (r.uses_left === null || r.uses_left > 0);
}

/** The name of the limits row every person without their own falls back to. */
export const EVERYONE = "*";

export class PeopleStore {
  private readonly stmts;
  private limitsCache: Map<string, PersonLimits> | undefined;

  constructor(private readonly db: Db) {
    this.stmts = {
      byHash: db.prepare<[string], PersonRow>("SELECT name, role, created_at, created_by, revoked_at FROM people WHERE token_hash = ? AND revoked_at IS NULL"),
      byName: db.prepare<[string], PersonRow>("SELECT name, role, created_at, created_by, revoked_at FROM people WHERE name = ?"),
      all: db.prepare<[], PersonRow>("SELECT name, role, created_at, created_by, revoked_at FROM people ORDER BY name"),
      insert: db.prepare("INSERT INTO people (name, role, token_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?)"),
      revoke: db.prepare("UPDATE people SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"),
      joinByHash: db.prepare<[string], JoinRow>("SELECT * FROM join_tokens WHERE token_hash = ?"),
      joinById: db.prepare<[string], JoinRow>("SELECT * FROM join_tokens WHERE id = ?"),
      joinAll: db.prepare<[], JoinRow>("SELECT * FROM join_tokens ORDER BY created_at, id"),
      joinInsert: db.prepare("INSERT INTO join_tokens (id, token_hash, note, created_at, created_by, expires_at, uses_left) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      joinUse: db.prepare("UPDATE join_tokens SET uses = uses + 1, uses_left = CASE WHEN uses_left IS NULL THEN NULL ELSE uses_left - 1 END WHERE id = ?"),
      joinRevoke: db.prepare("UPDATE join_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
      limitsAll: db.prepare<[], { name: string; max_gpus: number | null; max_queued: number | null; high: number }>("SELECT name, max_gpus, max_queued, high FROM person_limits"),
      limitsUpsert: db.prepare(`INSERT INTO person_limits (name, max_gpus, max_queued, high, updated_at, updated_by) VALUES (@name, @max_gpus, @max_queued, @high, @at, @by)
        ON CONFLICT (name) DO UPDATE SET max_gpus = excluded.max_gpus, max_queued = excluded.max_queued, high = excluded.high, updated_at = excluded.updated_at, updated_by = excluded.updated_by`),
    };
  }

  // ---- limits ----

  /** Every limits row set, by name (EVERYONE: the default); read from memory, kept in step with writes. */
  limits(): Map<string, PersonLimits> {
    this.limitsCache ??= new Map(this.stmts.limitsAll.all().map((r) => [r.name, { name: r.name, maxGpus: r.max_gpus, maxQueued: r.max_queued, high: r.high === 1 }]));
    return this.limitsCache;
  }

  /** A person's limits: their own row, else everyone's, else none. */
  limitsOf(name: string | null): PersonLimits {
    const all = this.limits();
    const row = (name !== null ? all.get(name) : undefined) ?? all.get(EVERYONE);
    return { name: name ?? "", maxGpus: row?.maxGpus ?? null, maxQueued: row?.maxQueued ?? null, high: row?.high ?? false };
  }

  /** Sets a person's (or, for EVERYONE, the default) limits; fields left out keep their value. */
  setLimits(name: string, change: { maxGpus?: number | null; maxQueued?: number | null; high?: boolean }, by: string | null, now = new Date()): PersonLimits {
    if (name !== EVERYONE && !this.stmts.byName.get(name)) throw new PeopleError("not_found", `no person named ${name} (labrig users list); '*' sets everyone's default`);
    const current = this.limits().get(name) ?? { name, maxGpus: null, maxQueued: null, high: false };
    const next: PersonLimits = { name, maxGpus: change.maxGpus !== undefined ? change.maxGpus : current.maxGpus, maxQueued: change.maxQueued !== undefined ? change.maxQueued : current.maxQueued, high: change.high ?? current.high };
    this.stmts.limitsUpsert.run({ name, max_gpus: next.maxGpus, max_queued: next.maxQueued, high: next.high ? 1 : 0, at: now.toISOString(), by });
    this.limitsCache = undefined;
    return next;
  }

  // ---- people ----

  personForToken(token: string): Person | undefined {
    const r = this.stmts.byHash.get(hashToken(token));
    return r ? toPerson(r) : undefined;
  }

  list(): Person[] {
    return this.stmts.all.all().map(toPerson);
  }

  /** Adds a person and returns their token, which is stored only as a hash. */
  add(name: string, role: Role, createdBy: string | null, now = new Date()): { person: Person; token: string } {
    const token = generateToken("lru");
    return this.db.transaction(() => {
      if (name === FIRST_ADMIN || this.stmts.byName.get(name)) {
        throw new PeopleError("exists", `a person named ${name} already exists${name === FIRST_ADMIN ? " (the state dir's admin token acts as 'admin')" : ""}; pick another name, or revoke the old one first`);
      }
      this.stmts.insert.run(name, role, hashToken(token), now.toISOString(), createdBy);
      return { person: toPerson(this.stmts.byName.get(name)!), token };
    })();
  }

  revoke(name: string, now = new Date()): Person {
    return this.db.transaction(() => {
      const r = this.stmts.byName.get(name);
      if (!r) throw new PeopleError("not_found", `no person named ${name} (see labrig users list)`);
      this.stmts.revoke.run(now.toISOString(), name);
      return toPerson(this.stmts.byName.get(name)!);
    })();
  }

  // ---- join tokens ----

  createJoinToken(opts: { ttlS?: number; uses?: number; note?: string; createdBy: string | null }, now = new Date()): { info: JoinTokenInfo; token: string } {
    const token = generateToken("lrj");
    const id = randomBytes(4).toString("hex");
    const expires = opts.ttlS !== undefined ? new Date(now.getTime() + opts.ttlS * 1000).toISOString() : null;
    this.stmts.joinInsert.run(id, hashToken(token), opts.note ?? null, now.toISOString(), opts.createdBy, expires, opts.uses ?? null);
    return { info: toJoin(this.stmts.joinById.get(id)!, now.getTime()), token };
  }

  listJoinTokens(nowMs = Date.now()): JoinTokenInfo[] {
    return this.stmts.joinAll.all().map((r) => toJoin(r, nowMs));
  }

  /** The id of a join token that may register a host now, or undefined. */
  usableJoinToken(token: string, nowMs = Date.now()): string | undefined {
    const r = this.stmts.joinByHash.get(hashToken(token));
    return r && joinUsable(r, nowMs) ? r.id : undefined;
  }

  /** Spends one use of a join token; false when it is no longer usable (another registration took the last use). */
  useJoinToken(id: string, nowMs = Date.now()): boolean {
    return this.db.transaction(() => {
      const r = this.stmts.joinById.get(id);
      if (!r || !joinUsable(r, nowMs)) return false;
      this.stmts.joinUse.run(id);
      return true;
    })();
  }

  revokeJoinToken(id: string, now = new Date()): JoinTokenInfo {
    const r = this.stmts.joinById.get(id);
    if (!r) throw new PeopleError("not_found", `no join token with id ${id} (see labrig join-tokens list)`);
    this.stmts.joinRevoke.run(now.toISOString(), id);
    return toJoin(this.stmts.joinById.get(id)!, now.getTime());
  }
}
