// Node 22 announces node:sqlite as experimental on stderr in every process that loads it (Node 24
// no longer does). labrig's output is read by people and scripts, so that one notice is dropped;
// every other warning passes through. Imported first by cli/main.ts, before anything loads SQLite.
const emitWarning = process.emitWarning.bind(process);

process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const text = typeof warning === "string" ? warning : warning.message;
  if (text.startsWith("SQLite is an experimental feature")) return;
  return (emitWarning as (w: string | Error, ...r: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;
