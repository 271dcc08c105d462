// Redaction of secrets in what the agent writes down (run.json): an env entry whose name looks like
// a secret keeps its name and loses its value.

export const SECRET_NAME = /TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL/i;
export const REDACTED = "<redacted>";

export function redactEnv(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) out[k] = SECRET_NAME.test(k) ? REDACTED : v;
  return out;
}
