// Types for scripts/restore.mjs, so the TypeScript CLI can call it.
export declare const usage: string;
export interface RestoreOptions {
  repo: string;
  passwordFile: string;
  target?: string;
  snapshot?: string;
  lab?: string;
  host?: string;
}
export interface RestoreReport {
  ok: boolean;
  snapshot: { id: string; time: string; host: string; tags: string[] };
  files: number;
  bytes: number;
  database: { integrity: string; jobs: number | null };
  problems: { path: string; problem: string }[];
  target: string | null;
}
export declare function restoreSnapshot(opts: RestoreOptions): Promise<RestoreReport>;
export declare function formatReport(r: RestoreReport): string;
export declare function main(argv: string[], io?: { out?: (s: string) => void; err?: (s: string) => void }): Promise<number>;
