// The agent's sync at its edge, bundled and run as its own process by sync-large-file.test.ts so its peak
// memory can be read apart from the test runner's: one final JobSync round over an output folder,
// then one JSON line on stdout with the bytes it sent, its peak RSS (VmHWM, KiB) before the round and after it.
//   env: URL, TOKEN, JOB_ID, ATTEMPT, OUTPUT_DIR, STATE_FILE
import { DispatcherClient } from "../../core/client.js";
import { JobSync } from "../../agent/job-sync.js";
import { peakRssKiB } from "./peak-rss.js";

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`sync-upload-entry: ${name} is not set`);
  return v;
};
const sync = new JobSync({
  client: new DispatcherClient({ url: env("URL"), token: env("TOKEN") }),
  jobId: env("JOB_ID"),
  attempt: Number(env("ATTEMPT")),
  outputDir: env("OUTPUT_DIR"),
  stateFile: env("STATE_FILE"),
  quietMs: 0,
});
const startKiB = peakRssKiB(process.pid);
await sync.sync(true);
process.stdout.write(JSON.stringify({ bytesSent: sync.bytesSent, startKiB, peakRssKiB: peakRssKiB(process.pid) }) + "\n");
