// The dispatcher's event bus: job, device, log and notice events for SSE subscribers and metrics.
import { EventEmitter } from "node:events";
import type { DispatcherEvent } from "../core/api.js";

export class EventBus {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  emit(ev: DispatcherEvent): void {
    this.emitter.emit("event", ev);
  }

  subscribe(fn: (ev: DispatcherEvent) => void): () => void {
    this.emitter.on("event", fn);
    return () => this.emitter.off("event", fn);
  }

  get subscribers(): number {
    return this.emitter.listenerCount("event");
  }
}

/** One server-sent event frame. */
export function sseFrame(ev: DispatcherEvent): string {
  return `event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`;
}
