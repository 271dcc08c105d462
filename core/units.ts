// Sizes as people read them, the same in the CLI, the dashboard and the agent's log.

/** 0 B, 512 B, 1.5 KiB, 200 MiB: binary units, one decimal below 100. */
export function formatBytes(n: number | null | undefined): string {
  if (n == null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v >= 100 || u === 0 ? 0 : 1)} ${units[u]}`;
}
