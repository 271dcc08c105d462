// The dispatcher's SQLite binding: Node's built-in `node:sqlite` behind the small, typed surface the
// store uses (prepare → get/all/run/iterate, pluck, transaction, pragma).
//
// Why node:sqlite and not better-sqlite3: better-sqlite3 < 13 aborts the process on Node ≥ 24.19
// when an idle GC finalises a statement, and 13 needs a native build per Node ABI (a minute of
// install, and a module that breaks whenever the runtime changes). The built-in has neither
// problem; the measurements behind the choice are in dispatcher/README.md.
import { existsSync } from "node:fs";
import { DatabaseSync, type StatementSync } from "node:sqlite";

export interface RunResult {
  changes: number | bigint;
  lastInsertRowid: number | bigint;
}

type Params = unknown[] | Record<string, unknown>;
type Bind<P extends Params> = P extends unknown[] ? P : [P];

export interface Statement<P extends Params = unknown[], R = unknown> {
  get(...params: Bind<P>): R | undefined;
  all(...params: Bind<P>): R[];
  run(...params: Bind<P>): RunResult;
  iterate(...params: Bind<P>): IterableIterator<R>;
  /** Rows become their first column's value (`SELECT COUNT(*) …`). */
  pluck(on?: boolean): Statement<P, unknown>;
}

export interface OpenOptions {
  readOnly?: boolean;
  /** Refuse to create the file (better-sqlite3's `fileMustExist`). */
  mustExist?: boolean;
}

class PreparedStatement<P extends Params, R> implements Statement<P, R> {
  private plucked = false;

  constructor(private readonly raw: StatementSync) {}

  get(...params: Bind<P>): R | undefined {
    const row = this.raw.get(...(params as never[]));
    return (this.plucked && row ? firstColumn(row) : row) as R | undefined;
  }

  all(...params: Bind<P>): R[] {
    const rows = this.raw.all(...(params as never[]));
    return (this.plucked ? rows.map(firstColumn) : rows) as R[];
  }

  run(...params: Bind<P>): RunResult {
    return this.raw.run(...(params as never[]));
  }

  *iterate(...params: Bind<P>): IterableIterator<R> {
    for (const row of this.raw.iterate(...(params as never[]))) {
      yield (this.plucked ? firstColumn(row as object) : row) as R;
    }
  }

  pluck(on = true): Statement<P, unknown> {
    this.plucked = on;
    return this as Statement<P, unknown>;
  }
}

function firstColumn(row: object): unknown {
  for (const key in row) return (row as Record<string, unknown>)[key];
  return undefined;
}

export class Database {
  readonly raw: DatabaseSync;
  /** Compiled statements by SQL text: the store prepares some statements inside each change. */
  private readonly compiled = new Map<string, StatementSync>();
  private depth = 0;

  constructor(readonly file: string, opts: OpenOptions = {}) {
    if (opts.mustExist && !existsSync(file)) throw new Error(`${file}: no such database file`);
    this.raw = new DatabaseSync(file, { readOnly: opts.readOnly ?? false });
  }

  prepare<P extends Params = unknown[], R = unknown>(sql: string): Statement<P, R> {
    let raw = this.compiled.get(sql);
    if (!raw) {
      raw = this.raw.prepare(sql);
      this.compiled.set(sql, raw);
    }
    return new PreparedStatement<P, R>(raw);
  }

  exec(sql: string): void {
    this.raw.exec(sql);
  }

  /** `pragma("journal_mode = WAL")` → rows; with `{simple: true}` the first row's first value. */
  pragma(source: string, opts: { simple?: boolean } = {}): unknown {
    const rows = this.raw.prepare(`PRAGMA ${source}`).all();
    return opts.simple ? (rows[0] ? firstColumn(rows[0]) : undefined) : rows;
  }

  /**
   * Wraps fn so that each call runs in one transaction (nested calls use a savepoint), committed
   * when fn returns and rolled back when it throws.
   */
  transaction<A extends unknown[], T>(fn: (...args: A) => T): (...args: A) => T {
    return (...args: A): T => {
      const savepoint = `labrig_${this.depth}`;
      this.raw.exec(this.depth === 0 ? "BEGIN" : `SAVEPOINT ${savepoint}`);
      this.depth++;
      try {
        const result = fn(...args);
        this.depth--;
        this.raw.exec(this.depth === 0 ? "COMMIT" : `RELEASE ${savepoint}`);
        return result;
      } catch (err) {
        this.depth--;
        this.raw.exec(this.depth === 0 ? "ROLLBACK" : `ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`);
        throw err;
      }
    };
  }

  close(): void {
    this.compiled.clear();
    if (this.raw.isOpen) this.raw.close();
  }
}
