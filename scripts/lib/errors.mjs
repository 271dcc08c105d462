// @ts-check
// The error a backup or restore step throws: it names the stage that failed and says what to do,
// so a nightly run's one line in the journal, the webhook and the dispatcher's events is enough.

export class BackupError extends Error {
  /**
   * @param {string} stage  what was being done: "database", "restic backup", "restore", ...
   * @param {string} message what went wrong and what to do about it
   * @param {{ cause?: unknown }} [options]
   */
  constructor(stage, message, options) {
    super(`${stage}: ${message}`, options);
    this.name = "BackupError";
    this.stage = stage;
  }
}

/**
 * The last lines of a command's stderr, enough to say why it failed without flooding a log.
 * @param {unknown} text
 */
export function tail(text, lines = 8) {
  return String(text ?? "")
    .trim()
    .split("\n")
    .slice(-lines)
    .join("\n");
}
