// Redaction of secrets in what the agent writes down (run.json): an env entry whose name looks like
// a secret keeps its name and loses its value; so does a value that looks like a token whatever
// its name, and a password inside a URL (postgres://u:pw@db) loses the password.

export const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL/i;
export const REDACTED = "<redacted>";

/** user:password@ in a URL's authority. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^/\s:@]*):([^/\s@]+)@/gi;
/** Prefixes of well-known tokens: GitHub, OpenAI, Slack, AWS keys, Hugging Face, GitLab, labrig's own. */
const TOKEN_PREFIX = /^(ghp_|gho_|ghs_|github_pat_|sk-|xox[abpr]-|AKIA|ASIA|hf_|glpat-|lr[atjul]_)/;
/** A long run of base64/hex-like characters with both letters and digits and no spaces or slashes. */
const TOKEN_SHAPED = /^(?=[^]*[0-9])(?=[^]*[A-Za-z])[A-Za-z0-9_\-+=~]{24,}$/;

export function redactValue(value: string): string {
  if (TOKEN_PREFIX.test(value) || TOKEN_SHAPED.test(value)) return REDACTED;
  return value.replace(URL_PASSWORD, `$1:${REDACTED}@`);
}

export function redactEnv(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) out[k] = SECRET_NAME.test(k) ? REDACTED : redactValue(v);
  return out;
}
