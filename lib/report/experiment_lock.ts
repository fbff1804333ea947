/**
 * One lock per results-cache entry, so that workers on several processes
 * or machines (sharing the cache folder) compute an experiment once.
 *
 * The lock is a small JSON file beside the entry (`<entry>.lock`) naming its
 * holder (host, pid, start time, a token) and a heartbeat time that the
 * holder refreshes while it computes. It is created exclusively, whole: its
 * text is written to a private file first and hard-linked into place, which
 * fails when a lock is there. A lock whose heartbeat is older than
 * `staleMs`, or whose process is gone on this same host, is stale: the next
 * worker moves it aside (one rename: of two workers taking it over, one
 * wins) and takes it, with a warning. A worker that finds a live lock waits
 * for it (polling) and then reads the result the holder wrote, or with
 * `skipLocked` gives up at once with an {@linkcode ExperimentLockedError}.
 *
 * A lock is never the only guard of a result: results are written
 * atomically, and the cache checks every entry it reads, so the worst a
 * lost race can do is compute a result twice.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { writeTextAtomic } from "../io/atomic_write.ts";
import { readJsonFile } from "../io/file_checks.ts";
import { isPlainObject } from "../io/json_fields.ts";
import { ExperimentError } from "./experiment_error.ts";

/** Options of {@linkcode withEntryLock}. */
export interface EntryLockOptions {
  /** A lock whose heartbeat is older than this is stale (default 5 minutes). */
  staleMs?: number;
  /** How often the holder refreshes its heartbeat (default 30 s). */
  heartbeatMs?: number;
  /** How often a waiting worker looks again (default 1 s). */
  pollMs?: number;
  /** The longest a worker waits for another's lock (default: no limit). */
  waitMs?: number;
  /** Do not wait for another's lock: throw {@linkcode ExperimentLockedError} at once. */
  skipLocked?: boolean;
  /** Where warnings go (default `console.warn`): a stale lock taken over. */
  onWarning?: (message: string) => void;
}

/** What a lock file holds. */
export interface LockHolder {
  /** The holder's host name. */
  host: string;
  /** The holder's process id. */
  pid: number;
  /** When it took the lock (ISO 8601). */
  started: string;
  /** When it last said it is alive (ISO 8601). */
  heartbeat: string;
  /** Tells this holding apart from any other. */
  token: string;
}

/**
 * Another worker holds the lock of an experiment's cache entry: raised with
 * `skipLocked`, or when `waitMs` ran out.
 *
 * @example
 * ```ts
 * import { ExperimentError } from "tokenlab";
 * import { ExperimentLockedError } from "tokenlab/report/experiment_lock.ts";
 * const e = new ExperimentLockedError("locked", "/tmp/x.lock", null);
 * console.log(e instanceof ExperimentError, e.lockFile); // true /tmp/x.lock
 * ```
 */
export class ExperimentLockedError extends ExperimentError {
  /** The lock file. */
  readonly lockFile: string;
  /** Who holds it, when its file could be read. */
  readonly holder: LockHolder | null;
  /** Creates the error with its message, the lock file and its holder. */
  constructor(message: string, lockFile: string, holder: LockHolder | null) {
    super(message, { file: lockFile });
    this.lockFile = lockFile;
    this.holder = holder;
  }
}

/** What the holder of a lock can do while it holds it. */
export interface HeldLock {
  /** The lock file. */
  path: string;
  /** Whether another worker took the lock over (this one looked stale). */
  lost(): boolean;
}

/** What {@linkcode withEntryLock} does around the lock. */
export interface EntryLockSteps<T> {
  /** Reads the result another worker wrote: null when there is none. */
  reread: () => Promise<T | null>;
  /** Computes and stores the result, the lock held. */
  compute: (lock: HeldLock) => Promise<T>;
}

let counter = 0;
const HOST = (() => {
  try {
    return Deno.hostname();
  } catch {
    return "unknown-host";
  }
})();

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Reads a lock file: its holder, null when it is gone, "unreadable" when it is not a lock tokenlab wrote. */
async function readHolder(
  path: string,
): Promise<LockHolder | null | "unreadable"> {
  try {
    const read = await readJsonFile(path, { maxBytes: 4096 });
    if (read === null) return null;
    const v = read.value;
    if (
      isPlainObject(v) && typeof v.host === "string" &&
      Number.isInteger(v.pid) && typeof v.started === "string" &&
      typeof v.heartbeat === "string" && typeof v.token === "string" &&
      !Number.isNaN(Date.parse(v.heartbeat))
    ) {
      return v as unknown as LockHolder;
    }
    return "unreadable";
  } catch {
    return "unreadable";
  }
}

/** Whether a process of this host is gone (false when it cannot tell). */
async function processGone(pid: number): Promise<boolean> {
  if (Deno.build.os !== "linux") return false;
  try {
    await Deno.stat(`/proc/${pid}`);
    return false;
  } catch (e) {
    return e instanceof Deno.errors.NotFound;
  }
}

/** Why a lock is stale, or null when it is live. */
async function staleness(
  path: string,
  holder: LockHolder | "unreadable",
  staleMs: number,
): Promise<string | null> {
  if (holder === "unreadable") {
    // Not a lock tokenlab wrote whole: stale once it is old.
    const info = await Deno.lstat(path).catch(() => null);
    const age = info?.mtime ? Date.now() - info.mtime.getTime() : 0;
    return age > staleMs
      ? `it is not a lock file tokenlab wrote and is ${
        Math.round(age / 1000)
      } s old`
      : null;
  }
  const age = Date.now() - Date.parse(holder.heartbeat);
  if (age > staleMs) {
    return `its holder (pid ${holder.pid} on ${holder.host}) last said it was alive ${
      Math.round(age / 1000)
    } s ago, more than the ${Math.round(staleMs / 1000)} s a lock lives`;
  }
  if (
    holder.host === HOST && holder.pid !== Deno.pid &&
    await processGone(holder.pid)
  ) {
    return `its holder, process ${holder.pid} on this host, is gone`;
  }
  return null;
}

/** Creates the lock file whole and exclusively; false when a lock is there. */
async function tryCreate(path: string, holder: LockHolder): Promise<boolean> {
  await Deno.mkdir(dirname(path), { recursive: true });
  const temp = join(
    dirname(path),
    `.${basename(path)}.${holder.token.replace(/[^\w.-]/g, "_")}.tmp`,
  );
  await Deno.writeTextFile(temp, JSON.stringify(holder) + "\n");
  try {
    await Deno.link(temp, path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}

/** Moves a stale lock aside; false when another worker moved or replaced it first. */
async function takeOver(
  path: string,
  seen: LockHolder | "unreadable",
  token: string,
): Promise<boolean> {
  const aside = `${path}.stale-${token.replace(/[^\w.-]/g, "_")}`;
  try {
    await Deno.rename(path, aside);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  const moved = await readHolder(aside);
  const same = seen === "unreadable"
    ? moved === "unreadable"
    : moved !== null && moved !== "unreadable" && moved.token === seen.token;
  if (!same) {
    // Another worker took the stale lock over between our look and our
    // rename: give its fresh lock back (unless a third one is there now).
    await Deno.link(aside, path).catch(() => {});
  }
  await Deno.remove(aside).catch(() => {});
  return same;
}

/**
 * Runs `steps.compute` holding the lock at `lockPath`, unless another worker
 * computed the result meanwhile (`steps.reread` finds it after a wait). A
 * live lock of another worker is waited for (or, with `skipLocked`,
 * refused); a stale one is taken over with a warning. The lock is removed
 * when `compute` ends, also when it fails: a failed compute leaves neither
 * a result nor a lock; a killed one leaves a lock that turns stale.
 *
 * @throws {ExperimentLockedError} with `skipLocked`, or when `waitMs` ran out
 *
 * @example
 * ```ts
 * import { withEntryLock } from "tokenlab/report/experiment_lock.ts";
 * const dir = await Deno.makeTempDir();
 * const v = await withEntryLock(`${dir}/entry.lock`, {}, {
 *   reread: () => Promise.resolve(null),
 *   compute: () => Promise.resolve(42),
 * });
 * console.log(v); // 42
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function withEntryLock<T>(
  lockPath: string,
  options: EntryLockOptions,
  steps: EntryLockSteps<T>,
): Promise<T> {
  const staleMs = options.staleMs ?? 5 * 60_000;
  const heartbeatMs = options.heartbeatMs ?? 30_000;
  const pollMs = options.pollMs ?? 1000;
  const waitMs = options.waitMs ?? Infinity;
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  const t0 = Date.now();
  let waited = false;
  for (;;) {
    const now = new Date().toISOString();
    const holder: LockHolder = {
      host: HOST,
      pid: Deno.pid,
      started: now,
      heartbeat: now,
      token: `${HOST}-${Deno.pid}-${Date.now()}-${++counter}`,
    };
    if (await tryCreate(lockPath, holder)) {
      return await holding(lockPath, holder, heartbeatMs, async (lock) => {
        // Another worker may have finished between our look and our lock.
        if (waited) {
          const found = await steps.reread();
          if (found !== null) return found;
        }
        return await steps.compute(lock);
      });
    }
    const other = await readHolder(lockPath);
    if (other === null) continue; // released between our try and our look
    const stale = await staleness(lockPath, other, staleMs);
    if (stale !== null) {
      if (await takeOver(lockPath, other, holder.token)) {
        warn(
          `took over the lock ${lockPath}: ${stale}; the experiment is computed again here.`,
        );
      }
      continue;
    }
    const who = other === "unreadable"
      ? "another worker"
      : `process ${other.pid} on ${other.host} (since ${other.started})`;
    if (options.skipLocked) {
      throw new ExperimentLockedError(
        `the experiment is being computed by ${who} (lock ${lockPath}); skipped. Run it again later to read its result, or wait for it (without --skip-locked).`,
        lockPath,
        other === "unreadable" ? null : other,
      );
    }
    if (Date.now() - t0 > waitMs) {
      throw new ExperimentLockedError(
        `waited ${
          Math.round((Date.now() - t0) / 1000)
        } s for ${who} to compute the experiment (lock ${lockPath}); it is still running. Wait longer, or delete the lock file if that worker is gone (a lock is also taken over by itself once its heartbeat is ${
          Math.round(staleMs / 1000)
        } s old).`,
        lockPath,
        other === "unreadable" ? null : other,
      );
    }
    waited = true;
    const found = await steps.reread();
    if (found !== null) return found;
    await sleep(pollMs);
  }
}

/** Holds the lock while `body` runs: a heartbeat, then the lock removed (when still ours). */
async function holding<T>(
  path: string,
  holder: LockHolder,
  heartbeatMs: number,
  body: (lock: HeldLock) => Promise<T>,
): Promise<T> {
  let lost = false;
  const beat = async () => {
    const now = await readHolder(path);
    if (now === null || now === "unreadable" || now.token !== holder.token) {
      lost = true;
      return;
    }
    await writeTextAtomic(
      path,
      JSON.stringify({ ...holder, heartbeat: new Date().toISOString() }) +
        "\n",
    ).catch(() => {});
  };
  let beating: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    beating = beating.then(() => lost ? undefined : beat());
  }, heartbeatMs);
  try {
    return await body({ path, lost: () => lost });
  } finally {
    clearInterval(timer);
    await beating;
    const now = await readHolder(path);
    if (now !== null && now !== "unreadable" && now.token === holder.token) {
      await Deno.remove(path).catch(() => {});
    }
  }
}
