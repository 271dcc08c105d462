// Types for scripts/backup.mjs, so the TypeScript CLI can call it.
export declare const STAGING_DIR: string;
export declare const MANIFEST: string;
export declare const BACKUP_TAG: string;
export declare const usage: string;
export interface BackupOptions {
  state: string;
  repo: string;
  passwordFile: string;
  config?: string;
  lab?: string;
  host?: string;
  keep?: { last?: number; daily?: number; weekly?: number; monthly?: number };
  checkSubset?: string;
}
export interface BackupSummary {
  ok: true;
  lab: string;
  host: string;
  repository: { location: string; created: boolean };
  snapshot: { id: string; tags: string[] };
  files: { total: number; new: number; changed: number; unmodified: number };
  bytes: { processed: number; added: number };
  database: { jobs: number | null; sizeBytes: number; sha256: string };
  retention: { policy: Record<string, number>; kept: number; removed: number };
  check: string;
  durationMs: number;
}
export declare function localLabStateDir(env?: NodeJS.ProcessEnv): string;
export declare function runBackup(opts: BackupOptions): Promise<BackupSummary>;
export declare function formatSummary(s: BackupSummary): string;
export declare function main(argv: string[], io?: { out?: (s: string) => void; err?: (s: string) => void }): Promise<number>;
