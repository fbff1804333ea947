/**
 * The one headless browser of a report run, started when a report first
 * needs it (static figure images, the page check) and shared by the
 * reports after; when none can be had, why not.
 *
 * @module
 */

import { Browser, findBrowser } from "./browser.ts";

/** A lazily started browser, shared by the reports of one run. */
export class BrowserSession {
  #browser: Browser | null = null;
  #problem: string | null = null;
  readonly #want: boolean;

  /** A session; `want` false turns the browser off (`--no-browser`). */
  constructor(want: boolean) {
    this.#want = want;
  }

  /** Why there is no browser, once one was asked for and none could be had. */
  get problem(): string | null {
    return this.#problem;
  }

  /** The browser, started on the first call; null when none can be had. */
  async get(): Promise<Browser | null> {
    if (this.#browser || this.#problem) return this.#browser;
    if (!this.#want) {
      this.#problem = "the browser was turned off (--no-browser)";
      return null;
    }
    const exe = await findBrowser();
    if (exe === null) {
      this.#problem =
        "no headless Chromium found (run `deno task setup`, which installs Debian's chromium)";
      return null;
    }
    try {
      this.#browser = await Browser.launch({ executable: exe });
    } catch (e) {
      this.#problem = `Chromium did not start: ${(e as Error).message}`;
    }
    return this.#browser;
  }

  /**
   * Drops a browser that failed (crashed, stuck) and closes it: the next
   * {@linkcode get} starts a fresh one.
   */
  async discard(b: Browser): Promise<void> {
    this.#browser = null;
    await b.close().catch(() => {});
  }

  /** Closes the browser, if one is running. */
  async close(): Promise<void> {
    await this.#browser?.close();
  }
}
