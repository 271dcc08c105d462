// A TCP proxy on loopback that can stop forwarding without closing anything: frozen, it holds
// what either side sends, so requests in flight get no answer as across a network partition (no
// RST, no FIN), and new connections are accepted but answered nothing. Thawed, the held bytes
// flow on in order. For tests that need a partition between two processes on this machine; the tests
// with a real one (`docker network disconnect`) are in tests/agent/agent-partition.test.ts.
import { createConnection, createServer, type Server, type Socket } from "node:net";

export interface FreezableProxy {
  /** http://127.0.0.1:PORT, forwarding to the target. */
  url: string;
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function startFreezableProxy(targetPort: number): Promise<FreezableProxy> {
  let frozen = false;
  const sockets = new Set<Socket>();
  // What arrived while frozen, in order: bytes to pass on, or the end of one side.
  let held: (() => void)[] = [];
  const pass = (step: () => void) => (frozen ? held.push(step) : step());
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
  };
  const forward = (from: Socket, to: Socket) => {
    from.on("data", (chunk: Buffer) => pass(() => to.write(chunk)));
    from.on("end", () => pass(() => to.end()));
  };
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort, allowHalfOpen: true });
    track(client);
    track(upstream);
    forward(client, upstream);
    forward(upstream, client);
    client.on("close", () => pass(() => upstream.destroy()));
    upstream.on("close", () => pass(() => client.destroy()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}`,
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      const steps = held;
      held = [];
      for (const step of steps) step();
    },
    async close() {
      held = [];
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
