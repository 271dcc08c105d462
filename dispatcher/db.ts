// Opens the dispatcher's SQLite database and brings its schema up to date from the plain .sql
// migrations in ./migrations, applied in name order, each in a transaction and recorded.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Database } from "./sqlite.js";

export type Db = Database;

const migrationsDir = join(import.meta.dirname, "migrations");

export function openDatabase(file: string): Db {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  applyMigrations(db);
  return db;
}

export function applyMigrations(db: Db, dir = migrationsDir): string[] {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)");
  const done = new Set(db.prepare("SELECT name FROM schema_migrations").pluck().all() as string[]);
  const applied: string[] = [];
  for (const name of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    if (done.has(name)) continue;
    const sql = readFileSync(join(dir, name), "utf8");
    db.transaction(() => {
      db.exec(sql);
      db.prepare("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)").run(name, new Date().toISOString());
    })();
    applied.push(name);
  }
  return applied;
}
