/**
 * One Chrome DevTools Protocol (CDP) connection over Deno's own WebSocket:
 * numbered commands and their answers (each with a timeout), and events.
 * A connection that closes fails every command still pending.
 *
 * @module
 */

import { BrowserError } from "./_browser_error.ts";

/** Races `p` against a timeout that rejects with `message`. */
export async function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  message: () => string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, fail) => {
        timer = setTimeout(() => fail(new BrowserError(message())), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A CDP message's parameters or result. */
export type Json = Record<string, unknown>;
/** A CDP event listener. */
export type Listener = (
  method: string,
  params: Json,
  sessionId?: string,
) => void;

interface Pending {
  method: string;
  resolve: (result: Json) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** One CDP WebSocket: numbered commands, their answers, and events. */
export class Connection {
  #ws: WebSocket;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #listeners = new Set<Listener>();
  #closed: Promise<void>;
  #isClosed = false;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.#closed = new Promise((done) => {
      ws.addEventListener("close", () => {
        this.#isClosed = true;
        for (const [id, p] of this.#pending) {
          clearTimeout(p.timer);
          p.reject(
            new BrowserError(
              `the browser closed the DevTools connection while ${p.method} was pending; it has probably crashed or been closed`,
            ),
          );
          this.#pending.delete(id);
        }
        done();
      });
    });
    ws.addEventListener("message", (ev) => this.#receive(ev.data));
  }

  static async open(url: string, timeoutMs: number): Promise<Connection> {
    const ws = new WebSocket(url);
    const conn = new Connection(ws);
    const opened = new Promise<void>((ok, fail) => {
      ws.addEventListener("open", () => ok(), { once: true });
      ws.addEventListener(
        "error",
        () => fail(new BrowserError(`cannot connect to DevTools at ${url}`)),
        { once: true },
      );
    });
    try {
      await withTimeout(
        opened,
        timeoutMs,
        () => `no answer from DevTools at ${url} within ${timeoutMs} ms`,
      );
    } catch (e) {
      await conn.close();
      throw e;
    }
    return conn;
  }

  get closed(): boolean {
    return this.#isClosed;
  }

  #receive(data: unknown): void {
    if (typeof data !== "string") return;
    const msg = JSON.parse(data) as {
      id?: number;
      result?: Json;
      error?: { message: string; data?: string };
      method?: string;
      params?: Json;
      sessionId?: string;
    };
    if (msg.id !== undefined) {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.error) {
        p.reject(
          new BrowserError(
            `DevTools command ${p.method} failed: ${msg.error.message}${
              msg.error.data ? ` (${msg.error.data})` : ""
            }`,
          ),
        );
      } else {
        p.resolve(msg.result ?? {});
      }
    } else if (msg.method) {
      for (const fn of this.#listeners) {
        fn(msg.method, msg.params ?? {}, msg.sessionId);
      }
    }
  }

  send(
    method: string,
    params: Json = {},
    sessionId?: string,
    timeoutMs = 30_000,
  ): Promise<Json> {
    if (this.#isClosed) {
      return Promise.reject(
        new BrowserError(
          `cannot send ${method}: the DevTools connection is closed (the browser was closed or crashed); launch a new Browser`,
        ),
      );
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new BrowserError(
            `DevTools command ${method} got no answer within ${timeoutMs} ms; the browser is stuck or overloaded`,
          ),
        );
      }, timeoutMs);
      this.#pending.set(id, { method, resolve, reject, timer });
      this.#ws.send(JSON.stringify({ id, method, params, sessionId }));
    });
  }

  /** Adds an event listener; returns the function that removes it. */
  on(fn: Listener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  async close(): Promise<void> {
    if (this.#ws.readyState !== WebSocket.CLOSED) {
      try {
        this.#ws.close();
      } catch {
        // Already closing.
      }
    }
    await withTimeout(this.#closed, 5000, () => "WebSocket close timed out")
      .catch(() => {});
  }
}

/** A value of the page, as CDP's Runtime domain reports it. */
export interface RemoteObject {
  type: string;
  value?: unknown;
  description?: string;
  unserializableValue?: string;
}

/** An exception of the page, as CDP's Runtime domain reports it. */
export interface ExceptionDetails {
  text: string;
  url?: string;
  lineNumber?: number;
  exception?: RemoteObject;
}

/** A page value in words: a string as itself, others as CDP describes them. */
export function describeValue(o: RemoteObject): string {
  if (o.type === "string") return String(o.value);
  if (o.unserializableValue) return o.unserializableValue;
  if (o.description) return o.description;
  return JSON.stringify(o.value);
}

/** A page exception in words, with its file and line when known. */
export function describeException(d: ExceptionDetails): string {
  const what = d.exception ? describeValue(d.exception) : d.text;
  const where = d.url ? ` (${d.url}:${(d.lineNumber ?? 0) + 1})` : "";
  return `${what}${where}`;
}
