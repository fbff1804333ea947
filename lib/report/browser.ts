/**
 * A small headless-Chromium driver over the Chrome DevTools Protocol (CDP),
 * with no npm dependency: Chromium is started with a DevTools port and driven
 * over Deno's own WebSocket.
 *
 * It does two things for the reports: render plotly figures to static PNG or
 * SVG (for Markdown), and check a generated self-contained HTML report in a
 * real browser (every figure drawn, no console errors, nothing fetched from
 * the network, and no sign of script that is not the page's own: no dialog,
 * no Content-Security-Policy violation, no console output). A page that
 * opens dialogs or stops answering cannot hang the check: dialogs are
 * dismissed, and a page that does not answer is a failed check.
 *
 * The pieces: the DevTools connection (`_cdp.ts`), finding Chromium and the
 * pinned plotly.js bundle (`_browser_install.ts`), and the browser with its
 * page checks and renders (here).
 *
 * ```ts ignore
 * await using browser = await Browser.launch();
 * const check = await browser.checkPage("reports/train.html");
 * const [png] = await browser.renderPlotly([{ data: [], layout: {} }]);
 * ```
 *
 * @module
 */

import { isAbsolute, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { exists } from "../_fs.ts";
import { BrowserError } from "./_browser_error.ts";
import {
  BROWSER_PATHS,
  findBrowser,
  HOW_TO_INSTALL,
  plotlyScript,
} from "./_browser_install.ts";
import {
  Connection,
  describeException,
  describeValue,
  type ExceptionDetails,
  type RemoteObject,
  withTimeout,
} from "./_cdp.ts";

export { BrowserError } from "./_browser_error.ts";
export {
  findBrowser,
  plotlyScript,
  plotlyVersion,
} from "./_browser_install.ts";

/** What {@linkcode Browser.checkPage} found on a page. */
export interface PageCheck {
  /** The file URL opened. */
  url: string;
  /** Number of figure containers: elements with class "tokenlab-plotly". */
  figures: number;
  /** How many of them contain a rendered plotly SVG (an `svg.main-svg`). */
  rendered: number;
  /** Console messages of level error, and browser log entries of level error. */
  consoleErrors: string[];
  /**
   * Other console output (log, info, warn, debug...): a report's own scripts
   * print nothing, so any of it means script that is not the report's ran.
   */
  consoleMessages: string[];
  /**
   * Dialogs the page opened (`alert`, `confirm`, `prompt`, `beforeunload`),
   * each dismissed at once: `alert: "the message"`.
   */
  dialogs: string[];
  /**
   * Content-Security-Policy violations: what the page's policy blocked (a
   * script, a style, an image or a request that is not the report's own).
   */
  cspViolations: string[];
  /** The page's Content-Security-Policy (from its meta tag), or null when it has none. */
  csp: string | null;
  /** Uncaught exceptions (and unhandled promise rejections). */
  pageErrors: string[];
  /**
   * Every request whose URL scheme is not file:, data:, blob: or about:
   * (these are blocked, never fetched).
   */
  network: string[];
  /**
   * figures === rendered; no console errors, console output, page errors,
   * dialogs, policy violations or network.
   */
  ok: boolean;
}

/** Options of {@linkcode Browser.launch}. */
export interface LaunchOptions {
  /** The Chromium to start (default: {@linkcode findBrowser}). */
  executable?: string;
  /** How long to wait for the DevTools endpoint, in ms (default 30000). */
  timeoutMs?: number;
}

/** Options of {@linkcode Browser.checkPage}. */
export interface CheckPageOptions {
  /** How long to wait for the load and the figures, in ms (default 20000). */
  timeoutMs?: number;
}

/** Options of {@linkcode Browser.renderPlotly}. */
export interface RenderOptions {
  /** Image format (default "png"). */
  format?: "png" | "svg";
  /** Width in CSS pixels (default: the figure's layout.width, else 700). */
  width?: number;
  /** Height in CSS pixels (default: the figure's layout.height, else 450). */
  height?: number;
  /** Pixel ratio of a PNG (default 2); SVG is always drawn at 1. */
  scale?: number;
}

// Flags that keep Chromium quiet, offline and independent of the machine's
// profile. The dead proxy (nothing listens on port 9; loopback included) and
// the resolver that finds no host make the browser offline as a whole: it
// fences WebSockets, which the per-page Fetch blocking does not see, and
// anything the browser itself would fetch.
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--remote-debugging-port=0",
  "--remote-allow-origins=*",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-default-apps",
  "--disable-extensions",
  "--disable-sync",
  "--disable-breakpad",
  "--disable-crash-reporter",
  "--disable-domain-reliability",
  "--disable-client-side-phishing-detection",
  "--disable-dev-shm-usage",
  "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,InterestFeedContentSuggestions,CertificateTransparencyComponentUpdater,AutofillServerCommunication",
  "--no-pings",
  "--metrics-recording-only",
  "--password-store=basic",
  "--use-mock-keychain",
  "--mute-audio",
  "--hide-scrollbars",
  "--proxy-server=127.0.0.1:9",
  "--proxy-bypass-list=<-loopback>",
  "--host-resolver-rules=MAP * ~NOTFOUND",
  "--log-level=3",
];

// A page-side listener for the policy's violation events, reporting each to
// the checker through a DevTools binding (a function the page can call but
// cannot answer).
const VIOLATION_BINDING = "__tokenlabPolicyViolation";
const VIOLATION_LISTENER = `(() => {
  const report = globalThis[${JSON.stringify(VIOLATION_BINDING)}];
  addEventListener("securitypolicyviolation", (e) => {
    try {
      report(\`\${e.effectiveDirective} blocked \${e.blockedURI || "inline"}\` +
        (e.sample ? \` (\${JSON.stringify(e.sample)})\` : "") +
        (e.lineNumber ? \` at line \${e.lineNumber}\` : ""));
    } catch { /* the binding is gone: the page is closing */ }
  }, true);
})();`;

const LOCAL_SCHEMES = new Set(["file:", "data:", "blob:", "about:"]);

function isLocal(url: string): boolean {
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)?.[0].toLowerCase();
  return scheme !== undefined && LOCAL_SCHEMES.has(scheme);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Resolves after `ms`; the timer is always cleared (no leaks in tests). */
function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, Math.max(0, ms)));
}

/** A page (target) attached with a flat session. */
interface Page {
  targetId: string;
  sessionId: string;
}

/**
 * A headless Chromium driven over the DevTools protocol. Start one with
 * {@linkcode Browser.launch}; close it with {@linkcode Browser.close} (or
 * `await using`).
 */
export class Browser {
  #child: Deno.ChildProcess;
  #conn: Connection;
  #tmp: string;
  #stderrTail: string[];
  #stderrDone: Promise<void>;
  #stderrReader: ReadableStreamDefaultReader<string>;
  #renderPage: Page | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    child: Deno.ChildProcess,
    conn: Connection,
    tmp: string,
    stderr: {
      tail: string[];
      done: Promise<void>;
      reader: ReadableStreamDefaultReader<string>;
    },
  ) {
    this.#child = child;
    this.#conn = conn;
    this.#tmp = tmp;
    this.#stderrTail = stderr.tail;
    this.#stderrDone = stderr.done;
    this.#stderrReader = stderr.reader;
  }

  /**
   * Starts `chromium --headless` with a fresh temporary profile and connects
   * to its DevTools endpoint.
   *
   * @throws {BrowserError} when no browser is found, it does not start, or
   * it shows no DevTools endpoint within `timeoutMs` (default 30 s)
   */
  static async launch(options: LaunchOptions = {}): Promise<Browser> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const executable = options.executable ?? await findBrowser();
    if (executable === null) {
      throw new BrowserError(
        `no Chromium found (looked for $TOKENLAB_CHROMIUM, ${
          BROWSER_PATHS.join(", ")
        }); ${HOW_TO_INSTALL}`,
      );
    }
    const tmp = await Deno.makeTempDir({ prefix: "tokenlab-chromium-" });
    const profile = join(tmp, "profile");
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(executable, {
        args: [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, "about:blank"],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      const why = e instanceof Deno.errors.NotFound
        ? "it does not exist"
        : e instanceof Deno.errors.PermissionDenied
        ? "it is not executable"
        : errorText(e);
      throw new BrowserError(
        `cannot start the browser ${executable}: ${why}; expected a Chromium or Chrome executable; ${HOW_TO_INSTALL}`,
        { cause: e },
      );
    }

    // Read stderr line by line: the DevTools URL is printed there, and the
    // rest must keep being drained or Chromium blocks on a full pipe.
    const tail: string[] = [];
    const reader = child.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    let found: (url: string | null) => void = () => {};
    const endpoint = new Promise<string | null>((ok) => {
      found = ok;
    });
    const done = (async () => {
      let buffer = "";
      try {
        while (true) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let nl;
          while ((nl = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, nl).trimEnd();
            buffer = buffer.slice(nl + 1);
            const m = /DevTools listening on (ws:\/\/\S+)/.exec(line);
            if (m) found(m[1]);
            else if (line) {
              tail.push(line);
              if (tail.length > 20) tail.shift();
            }
          }
        }
      } catch {
        // Cancelled by close().
      }
    })();
    // The process ending before printing the URL means it failed to start.
    done.then(() => found(null));

    const fail = async (message: string): Promise<never> => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      const status = await child.status;
      await reader.cancel().catch(() => {});
      await done;
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      const said = tail.length
        ? `; its last output:\n  ${tail.slice(-8).join("\n  ")}`
        : "";
      throw new BrowserError(
        `${message} (exit code ${status.code}${
          status.signal ? `, signal ${status.signal}` : ""
        })${said}`,
      );
    };

    let url: string | null;
    try {
      url = await withTimeout(endpoint, timeoutMs, () => "timeout");
    } catch {
      return await fail(
        `the browser ${executable} printed no "DevTools listening on ws://..." line within ${timeoutMs} ms; expected a headless-capable Chromium; try a longer timeoutMs on a slow machine, or ${HOW_TO_INSTALL}`,
      );
    }
    if (url === null) {
      return await fail(
        `the browser ${executable} exited before its DevTools endpoint was up; expected a headless-capable Chromium; ${HOW_TO_INSTALL}`,
      );
    }
    let conn: Connection;
    try {
      conn = await Connection.open(url, timeoutMs);
    } catch (e) {
      return await fail(errorText(e));
    }
    return new Browser(child, conn, tmp, { tail, done, reader });
  }

  #checkOpen(what: string): void {
    if (this.#closing || this.#conn.closed) {
      throw new BrowserError(
        `cannot ${what}: this browser is closed${
          this.#closing ? "" : " (it exited or crashed)"
        }; launch a new one with Browser.launch()`,
      );
    }
  }

  async #openPage(): Promise<Page> {
    const { targetId } = await this.#conn.send("Target.createTarget", {
      url: "about:blank",
    }) as { targetId: string };
    const { sessionId } = await this.#conn.send("Target.attachToTarget", {
      targetId,
      flatten: true,
    }) as { sessionId: string };
    return { targetId, sessionId };
  }

  async #closePage(page: Page): Promise<void> {
    if (this.#conn.closed) return;
    await this.#conn.send(
      "Target.closeTarget",
      { targetId: page.targetId },
      undefined,
      5000,
    ).catch(() => {});
  }

  /** Evaluates `expression` in a page; throws its exception as an Error. */
  async #evaluate(
    page: Page,
    expression: string,
    timeoutMs = 30_000,
  ): Promise<unknown> {
    const r = await this.#conn.send(
      "Runtime.evaluate",
      {
        expression,
        returnByValue: true,
        awaitPromise: true,
      },
      page.sessionId,
      timeoutMs,
    ) as {
      result: { value?: unknown };
      exceptionDetails?: ExceptionDetails;
    };
    if (r.exceptionDetails) {
      throw new Error(describeException(r.exceptionDetails));
    }
    return r.result.value;
  }

  /**
   * Opens a local HTML file in a fresh page, with every non-local request
   * (anything but file:, data:, blob:, about:) blocked and recorded; waits for
   * the load and then until every `.tokenlab-plotly` holds a plotly SVG, or
   * `timeoutMs` (default 20000) passes; closes the page and says what it saw.
   *
   * Script that is not the page's own shows up and fails the check: a
   * dialog (dismissed at once, so it cannot block the page), a
   * Content-Security-Policy violation, console output. A page that stops
   * answering (a script in an endless loop) is stopped and reported as a
   * page error; the check never waits past its timeout by more than a few
   * seconds.
   *
   * @throws {BrowserError} when the file does not exist or the browser
   * cannot be driven
   */
  async checkPage(
    path: string,
    options: CheckPageOptions = {},
  ): Promise<PageCheck> {
    this.#checkOpen(`check ${path}`);
    const timeoutMs = options.timeoutMs ?? 20_000;
    const deadline = performance.now() + timeoutMs;
    const file = path.startsWith("file:")
      ? fileURLToPath(path)
      : isAbsolute(path)
      ? path
      : resolve(path);
    if (!(await exists(file, { followLinks: true }))) {
      throw new BrowserError(
        `cannot check ${file}: no such file; expected a generated HTML report (run the report first)`,
      );
    }
    const url = pathToFileURL(file).href;
    const consoleErrors: string[] = [];
    const consoleMessages: string[] = [];
    const pageErrors: string[] = [];
    const dialogs: string[] = [];
    const violations: string[] = [];
    const policyLog: string[] = [];
    const requests = new Map<string, string>();
    let loaded = false;
    const page = await this.#openPage();
    const sid = page.sessionId;
    const off = this.#conn.on((method, params, sessionId) => {
      if (sessionId !== sid) return;
      switch (method) {
        case "Fetch.requestPaused": {
          const request = params.request as { url: string };
          const id = (params.networkId ?? params.requestId) as string;
          const local = isLocal(request.url);
          if (!local) requests.set(id, request.url);
          // Answered without awaiting: the page waits for it, not us.
          this.#conn.send(
            local ? "Fetch.continueRequest" : "Fetch.failRequest",
            local
              ? { requestId: params.requestId }
              : { requestId: params.requestId, errorReason: "BlockedByClient" },
            sid,
          ).catch(() => {});
          break;
        }
        case "Network.requestWillBeSent": {
          const request = params.request as { url: string };
          if (!isLocal(request.url)) {
            requests.set(params.requestId as string, request.url);
          }
          break;
        }
        case "Network.webSocketCreated":
          requests.set(params.requestId as string, params.url as string);
          break;
        case "Page.javascriptDialogOpening":
          // An open dialog blocks the page's thread, and every evaluation
          // after it: dismiss it at once, and remember it.
          dialogs.push(
            `${params.type}: ${JSON.stringify(String(params.message ?? ""))}`,
          );
          this.#conn.send(
            "Page.handleJavaScriptDialog",
            { accept: false },
            sid,
            5000,
          ).catch(() => {});
          break;
        case "Runtime.bindingCalled":
          if (params.name === VIOLATION_BINDING) {
            violations.push(String(params.payload));
          }
          break;
        case "Runtime.consoleAPICalled": {
          const text = (params.args as RemoteObject[]).map(describeValue)
            .join(" ");
          if (params.type === "error" || params.type === "assert") {
            consoleErrors.push(text);
          } else {
            consoleMessages.push(`console.${params.type}: ${text}`);
          }
          break;
        }
        case "Log.entryAdded": {
          const entry = params.entry as {
            level: string;
            text: string;
            source?: string;
          };
          // The policy's violations arrive through the binding, with what
          // was blocked; the browser's log line says the same again, and is
          // kept only in case the binding said nothing.
          if (
            entry.source === "security" &&
            /Content.Security.Policy/i.test(entry.text)
          ) {
            policyLog.push(entry.text);
          } else if (entry.level === "error") consoleErrors.push(entry.text);
          break;
        }
        case "Runtime.exceptionThrown":
          pageErrors.push(
            describeException(params.exceptionDetails as ExceptionDetails),
          );
          break;
        case "Page.frameNavigated": {
          const frame = params.frame as { url: string; parentId?: string };
          if (frame.url !== url) {
            pageErrors.push(
              `the page ${
                frame.parentId ? "opened a frame at" : "navigated away to"
              } ${frame.url}`,
            );
          }
          break;
        }
        case "Page.loadEventFired":
          loaded = true;
          break;
      }
    });
    const count = async (): Promise<[number, number]> =>
      await this.#evaluate(
        page,
        `(() => {
          const f = [...document.querySelectorAll(".tokenlab-plotly")];
          return [f.length, f.filter((e) => e.querySelector("svg.main-svg")).length];
        })()`,
        Math.max(2000, Math.min(10_000, deadline - performance.now())),
      ) as [number, number];
    let figures = 0;
    let rendered = 0;
    let csp: string | null = null;
    try {
      await Promise.all([
        this.#conn.send("Page.enable", {}, sid),
        this.#conn.send("Runtime.enable", {}, sid),
        this.#conn.send("Log.enable", {}, sid),
        // Records what the Fetch domain does not see (WebSockets, which the
        // dead proxy of the launch flags stops).
        this.#conn.send("Network.enable", {}, sid),
        this.#conn.send(
          "Fetch.enable",
          { patterns: [{ urlPattern: "*" }] },
          sid,
        ),
        this.#conn.send("Runtime.addBinding", { name: VIOLATION_BINDING }, sid),
        // Runs before the page's own scripts, outside its policy.
        this.#conn.send(
          "Page.addScriptToEvaluateOnNewDocument",
          { source: VIOLATION_LISTENER },
          sid,
        ),
      ]);
      const nav = await this.#conn.send("Page.navigate", { url }, sid) as {
        errorText?: string;
      };
      if (nav.errorText) {
        throw new BrowserError(
          `the browser could not open ${url}: ${nav.errorText}`,
        );
      }
      try {
        while (!loaded && performance.now() < deadline) await sleep(25);
        while (true) {
          [figures, rendered] = await count();
          if (rendered >= figures || performance.now() >= deadline) break;
          await sleep(50);
        }
        // Late events (a failed request, an error from a timer) get a moment.
        await sleep(Math.min(150, Math.max(0, deadline - performance.now())));
        [figures, rendered] = await count();
        csp = await this.#evaluate(
          page,
          `document.querySelector('meta[http-equiv="Content-Security-Policy" i]')?.content ?? null`,
          5000,
        ) as string | null;
      } catch (e) {
        if (!(e instanceof BrowserError) || this.#conn.closed) throw e;
        // The page stopped answering: a script that never returns.
        pageErrors.push(
          `the page stopped answering (a script is stuck in a loop or blocked): ${e.message}`,
        );
        await this.#conn.send("Runtime.terminateExecution", {}, sid, 2000)
          .catch(() => {});
      }
    } finally {
      off();
      await this.#closePage(page);
    }
    const network = [...requests.values()];
    if (violations.length === 0) violations.push(...policyLog);
    return {
      url,
      figures,
      rendered,
      consoleErrors,
      consoleMessages,
      pageErrors,
      dialogs,
      cspViolations: violations,
      csp,
      network,
      ok: figures === rendered && consoleErrors.length === 0 &&
        consoleMessages.length === 0 && pageErrors.length === 0 &&
        dialogs.length === 0 && violations.length === 0 &&
        network.length === 0,
    };
  }

  /** The page holding plotly.js, opened once and reused for renders. */
  async #plotlyPage(): Promise<Page> {
    if (this.#renderPage) return this.#renderPage;
    const file = join(this.#tmp, "render.html");
    await Deno.writeTextFile(
      file,
      `<!DOCTYPE html><html><head><meta charset="utf-8"><script>${await plotlyScript()}</script></head><body></body></html>`,
    );
    const page = await this.#openPage();
    try {
      // Offline by the launch flags: a figure that names a URL (an image
      // source, say) fails to load it instead of fetching it.
      await this.#conn.send("Page.navigate", {
        url: pathToFileURL(file).href,
      }, page.sessionId);
      // Navigation returns before the scripts have run; wait for Plotly.
      const t0 = performance.now();
      while (
        (await this.#evaluate(page, "typeof Plotly", 10_000)) !== "object"
      ) {
        if (performance.now() - t0 > 30_000) {
          throw new BrowserError(
            "plotly.js did not load in the render page within 30 s; expected window.Plotly to be defined",
          );
        }
        await sleep(25);
      }
    } catch (e) {
      await this.#closePage(page);
      throw e;
    }
    this.#renderPage = page;
    return page;
  }

  /**
   * Renders plotly figures (`{data, layout, config?}` objects) to static
   * images with `Plotly.toImage`, offline, in one page: PNG bytes, or the SVG
   * text as UTF-8 bytes. One result per figure, in order.
   *
   * @throws {TypeError} when a figure is not a `{data: [...]}` object
   * @throws {Error} when plotly cannot draw a figure (the message names it)
   */
  async renderPlotly(
    figures: readonly unknown[],
    options: RenderOptions = {},
  ): Promise<Uint8Array[]> {
    const format = options.format ?? "png";
    if (format !== "png" && format !== "svg") {
      throw new TypeError(
        `renderPlotly format must be "png" or "svg"; found ${
          JSON.stringify(format)
        }`,
      );
    }
    this.#checkOpen("render plotly figures");
    // plotly draws an empty plot for almost anything; catch the mistakes
    // before paying for the page.
    for (const [i, figure] of figures.entries()) {
      if (
        typeof figure !== "object" || figure === null ||
        !Array.isArray((figure as { data?: unknown }).data)
      ) {
        throw new TypeError(
          `renderPlotly expects plotly figures ({data: [...], layout}); figure ${i} is ${
            typeof figure === "object" && figure !== null
              ? `an object with keys ${JSON.stringify(Object.keys(figure))}`
              : JSON.stringify(figure)
          }`,
        );
      }
    }
    const page = await this.#plotlyPage();
    const out: Uint8Array[] = [];
    for (const [i, figure] of figures.entries()) {
      const layout =
        (figure as { layout?: { width?: unknown; height?: unknown } })
          ?.layout;
      const width = options.width ??
        (typeof layout?.width === "number" ? layout.width : 700);
      const height = options.height ??
        (typeof layout?.height === "number" ? layout.height : 450);
      const scale = format === "png" ? options.scale ?? 2 : 1;
      const opts = { format, width, height, scale, imageDataOnly: true };
      let data: string;
      try {
        data = await this.#evaluate(
          page,
          `Plotly.toImage(${toJson(figure)}, ${JSON.stringify(opts)})`,
          60_000,
        ) as string;
      } catch (e) {
        if (e instanceof BrowserError) {
          // The page itself failed (crashed, stuck): the next call gets a new one.
          this.#renderPage = undefined;
          await this.#closePage(page);
          throw e;
        }
        throw new Error(
          `plotly could not render figure ${i} of ${figures.length} as ${format}: ${
            errorText(e)
          }; expected a {data, layout} plotly figure`,
          { cause: e },
        );
      }
      out.push(
        format === "png"
          ? Uint8Array.from(atob(data), (c) => c.charCodeAt(0))
          : new TextEncoder().encode(data),
      );
    }
    return out;
  }

  /**
   * Closes the browser: asks it to quit, kills it if it does not, and
   * removes its temporary profile. Calling it again does nothing.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (!this.#conn.closed) {
      await this.#conn.send("Browser.close", {}, undefined, 5000)
        .catch(() => {});
    }
    await this.#conn.close();
    let exited = false;
    const status = this.#child.status.then(() => {
      exited = true;
    });
    await withTimeout(status, 5000, () => "").catch(() => {});
    if (!exited) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Exited in between.
      }
      await status;
    }
    // A helper process that outlives the browser may hold stderr open.
    await withTimeout(this.#stderrDone, 1000, () => "").catch(async () => {
      await this.#stderrReader.cancel().catch(() => {});
      await this.#stderrDone;
    });
    await Deno.remove(this.#tmp, { recursive: true }).catch(() => {});
  }

  /** Closes the browser (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The last lines Chromium wrote to stderr (for diagnosing failures). */
  get stderrTail(): readonly string[] {
    return this.#stderrTail;
  }
}

/** JSON of a figure, typed arrays as plain arrays (as plotly reads them). */
function toJson(figure: unknown): string {
  return JSON.stringify(
    figure,
    (_, v) =>
      ArrayBuffer.isView(v) && !(v instanceof DataView)
        ? Array.from(v as unknown as ArrayLike<number>)
        : v,
  );
}
