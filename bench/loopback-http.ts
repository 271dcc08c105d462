// A lean keep-alive HTTP client for load generation on loopback. The benchmark client shares the
// machine's two cores with the dispatcher it measures, and global fetch spends about ten times
// the CPU of node:http per request (measured here: ~500-1200 µs against ~60-110 µs), so driving
// load through fetch would measure the client, not the service.
import http from "node:http";

export interface HttpAnswer {
  status: number;
  body: Buffer;
}

export class LoopbackHttp {
  private readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  constructor(url: string, maxSockets: number) {
    const u = new URL(url);
    if (u.hostname !== "127.0.0.1" && u.hostname !== "localhost" && u.hostname !== "[::1]") {
      throw new Error(`benchmarks talk to loopback only, not ${u.hostname}`);
    }
    this.host = u.hostname;
    this.port = Number(u.port);
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  request(method: string, path: string, opts: { token?: string; body?: string | Buffer; contentType?: string } = {}): Promise<HttpAnswer> {
    const headers: http.OutgoingHttpHeaders = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) {
      headers["content-type"] = opts.contentType ?? (typeof opts.body === "string" ? "application/json" : "application/octet-stream");
      headers["content-length"] = Buffer.byteLength(opts.body);
    }
    return new Promise((resolve, reject) => {
      const req = http.request({ host: this.host, port: this.port, method, path, agent: this.agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(opts.body);
    });
  }

  /** JSON in, JSON out; anything but 2xx is an error naming the status and the answer. */
  async json<T>(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: T | undefined }> {
    const a = await this.request(method, path, { token, body: body === undefined ? undefined : JSON.stringify(body) });
    if (a.status < 200 || a.status > 299) throw new Error(`${method} ${path} answered ${a.status}: ${a.body.toString("utf8").slice(0, 300)}`);
    return { status: a.status, body: a.body.length > 0 ? (JSON.parse(a.body.toString("utf8")) as T) : undefined };
  }

  close(): void {
    this.agent.destroy();
  }
}
