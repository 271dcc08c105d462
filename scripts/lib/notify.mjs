// @ts-check
// Makes a backup's outcome visible beyond its exit code: a webhook POST in the {text} shape Slack
// and Telegram bots accept, and a notice in the dispatcher's event stream (the TUI shows those).
// Notification problems are reported back as warnings; they never hide the backup's own result.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const TIMEOUT_MS = 5000;

/**
 * POSTs {text} as JSON. For Telegram give the Bot API URL with ?chat_id=... in it.
 * @param {string} url
 * @param {string} text
 * @returns {Promise<string | null>} a warning, or null when it was delivered
 */
export async function postWebhook(url, text) {
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (!res.ok) return `webhook ${redact(url)} answered HTTP ${res.status}`;
    return null;
  } catch (/** @type {any} */ err) {
    return `webhook ${redact(url)} unreachable: ${err.cause?.code ?? err.message}`;
  }
}

/**
 * Where to send the dispatcher notice: explicit URL and token, else the dispatcher that owns the
 * state folder (its dispatcher.json and admin-token), else nowhere.
 * @param {{ dispatcherUrl?: string, tokenFile?: string, stateDir?: string }} opts
 * @returns {{ url: string, token: string } | null}
 */
export function resolveNoticeTarget(opts) {
  const tokenFrom = (/** @type {string | undefined} */ file) => (file && existsSync(file) ? readFileSync(file, "utf8").trim() : undefined);
  if (opts.dispatcherUrl) {
    const token = tokenFrom(opts.tokenFile) ?? process.env.LABRIG_TOKEN ?? (opts.stateDir ? tokenFrom(join(opts.stateDir, "admin-token")) : undefined);
    return token ? { url: opts.dispatcherUrl.replace(/\/+$/, ""), token } : null;
  }
  if (!opts.stateDir) return null;
  const info = join(opts.stateDir, "dispatcher.json");
  const token = tokenFrom(opts.tokenFile) ?? tokenFrom(join(opts.stateDir, "admin-token"));
  if (!existsSync(info) || !token) return null;
  try {
    return { url: JSON.parse(readFileSync(info, "utf8")).url, token };
  } catch {
    return null;
  }
}

/**
 * Adds a notice to the dispatcher's events: POST /api/notices {level, message} (admin token).
 * @param {{ url: string, token: string }} target
 * @param {"info" | "warn" | "error"} level
 * @param {string} message
 * @returns {Promise<string | null>} a warning, or null when it was accepted
 */
export async function postDispatcherNotice(target, level, message) {
  try {
    const res = await fetch(`${target.url}/api/notices`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${target.token}` },
      body: JSON.stringify({ level, message }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (res.status === 404) return `dispatcher at ${target.url} has no POST /api/notices; the notice was not recorded`;
    if (!res.ok) return `dispatcher at ${target.url} refused the notice: HTTP ${res.status}`;
    return null;
  } catch (/** @type {any} */ err) {
    // A stopped dispatcher is normal for a backup of a state folder at rest.
    return `dispatcher at ${target.url} unreachable for the notice: ${err.cause?.code ?? err.message}`;
  }
}

/**
 * Hides a webhook's secret parts (bot tokens, Slack's path) in messages.
 * @param {string} url
 */
function redact(url) {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}/…`;
  } catch {
    return "(invalid URL)";
  }
}
