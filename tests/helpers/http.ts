// A bare HTTP call to a dispatcher for tests that send what no client would: no token, another's
// token, raw bytes, malformed JSON. Answers the status, the parsed JSON (or text) and the text.
export async function rawRequest(baseUrl: string, method: string, path: string, opts: { token?: string; body?: unknown; raw?: Buffer } = {}) {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: BodyInit | undefined;
  if (opts.raw) {
    headers["content-type"] = "application/octet-stream";
    body = opts.raw as unknown as BodyInit;
  } else if (opts.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  const res = await fetch(baseUrl + path, { method, headers, body });
  const text = await res.text();
  let json: any = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, json, text };
}
