/**
 * The fuzzing child: runs cases of one reader in order and reports each over
 * stdout (a line `@@fuzz {json}` when a case starts and when it ends), so
 * that the parent can time each case, watch memory, and kill and restart
 * this process when a case hangs or grows too big. With `--prepare` it
 * writes the reader's seeds instead.
 *
 * deno run -A tests/fuzz/_child.ts --reader NAME --seeds DIR --work DIR
 *   --seed S --from I --to J [--keep DIR] [--verbose] | --prepare
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Rng } from "../../lib/random.ts";
import { copyTree, isOwn } from "./_reader.ts";
import { readerNamed } from "./readers/mod.ts";

/** The prefix of a protocol line. */
export const MARK = "@@fuzz ";

/** How a case ended. */
export type Outcome = "success" | "own" | "defect";

/** A case's end, as reported to the parent. */
export interface CaseEnd {
  /** Case index. */
  i: number;
  /** How it ended. */
  outcome: Outcome;
  /** The error's class name (own or defect). */
  name?: string;
  /** The error's message (cut to 400 characters). */
  message?: string;
  /** The top stack frame outside the harness. */
  frame?: string;
  /** What the mutation did. */
  what: string[];
}

const ROOT = new URL("../../", import.meta.url).href;

/**
 * The first `n` stack frames outside the harness, as `path:line:column`
 * relative to the project, joined by " < " (innermost first).
 */
export function topFrame(e: unknown, n = 1): string {
  const stack = e instanceof Error ? e.stack ?? "" : "";
  const frames: string[] = [];
  for (const line of stack.split("\n").slice(1)) {
    const m = /(file:\/\/[^\s)]+)/.exec(line);
    if (!m || m[1].includes("/tests/fuzz/")) continue;
    frames.push(m[1].startsWith(ROOT) ? m[1].slice(ROOT.length) : m[1]);
    if (frames.length === n) break;
  }
  if (frames.length > 0) return frames.join(" < ");
  const any = /at (.+)$/m.exec(stack);
  return any ? any[1].trim() : "(no stack)";
}

function send(msg: Record<string, unknown>): void {
  const line = new TextEncoder().encode(MARK + JSON.stringify(msg) + "\n");
  let done = 0;
  while (done < line.length) done += Deno.stdout.writeSync(line.subarray(done));
}

function errorName(e: unknown): string {
  if (e instanceof Error) return e.name || e.constructor.name;
  return `thrown ${typeof e}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      reader: { type: "string" },
      seeds: { type: "string" },
      work: { type: "string" },
      seed: { type: "string", default: "1" },
      from: { type: "string", default: "0" },
      to: { type: "string", default: "0" },
      keep: { type: "string" },
      prepare: { type: "boolean", default: false },
      verbose: { type: "boolean", default: false },
    },
  });
  const entry = readerNamed(values.reader ?? "");
  if (!entry || values.seeds === undefined) {
    throw new Error(`_child.ts: unknown reader ${values.reader} or no --seeds`);
  }
  const reader = await entry.load();
  if (values.prepare) {
    await reader.prepare(values.seeds);
    return;
  }
  const seeds = await reader.load(values.seeds);
  const seed = Number(values.seed);
  const work = values.work!;
  const caseDir = `${work}/case`;
  send({ t: "ready" });
  for (let i = Number(values.from); i < Number(values.to); i++) {
    send({ t: "start", i });
    await Deno.remove(caseDir, { recursive: true }).catch(() => {});
    await Deno.mkdir(caseDir, { recursive: true });
    let what: string[];
    try {
      what = await reader.make(Rng.derive(seed, entry.id, i), seeds, caseDir);
    } catch (e) {
      // the harness's own failure, never the reader's: stop loudly
      send({
        t: "harness",
        i,
        message: e instanceof Error ? e.stack ?? e.message : String(e),
      });
      Deno.exit(3);
    }
    send({ t: "made", i, what });
    if (values.verbose) console.error(`case ${i}: ${what.join(" ")}`);
    const end: CaseEnd = { i, outcome: "success", what };
    try {
      await reader.run(caseDir);
    } catch (e) {
      end.outcome = isOwn(e, reader.own) ? "own" : "defect";
      end.name = errorName(e);
      end.message = (e instanceof Error ? e.message : String(e)).slice(0, 400);
      // an own error's innermost frame is often the helper that makes it
      // (or where the error says it is, for a harness-made own error)
      const where = (e as { where?: unknown } | null)?.where;
      end.frame = typeof where === "string"
        ? where
        : topFrame(e, end.outcome === "own" ? 2 : 1);
      if (values.verbose) {
        console.error(e instanceof Error ? e.stack : String(e));
      }
      if (end.outcome === "defect" && values.keep !== undefined) {
        const to = `${values.keep}/${entry.name}-${seed}-${i}`;
        await Deno.remove(to, { recursive: true }).catch(() => {});
        const skipped = await copyTree(caseDir, to);
        await Deno.writeTextFile(
          `${to}/CASE.txt`,
          `reader ${entry.name}, seed ${seed}, case ${i}\nmutation: ${
            what.join(" ")
          }\n${
            skipped.length ? `not kept (too big): ${skipped.join(", ")}\n` : ""
          }\n${e instanceof Error ? e.stack : String(e)}\n`,
        );
      }
    }
    send({ t: "end", ...end });
  }
}

if (import.meta.main) await main();
