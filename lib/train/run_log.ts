/**
 * A run's `log.jsonl`: written anew on resume, appended to as the run goes,
 * and read back (the records are `log.ts`'s).
 *
 * @module
 */

import { writeFileAtomic } from "../io/atomic_write.ts";
import type { LogRecord } from "./log.ts";
import { MAX_RECORDS_FILE_BYTES, readRunFile } from "./_run_files.ts";

/** Writes `log.jsonl` anew from records (atomically): a resumed run's log ends where its checkpoint does. */
export async function rewriteLog(
  out: string,
  records: readonly LogRecord[],
): Promise<void> {
  const text = records.map((r) => JSON.stringify(r) + "\n").join("");
  await writeFileAtomic(`${out}/log.jsonl`, new TextEncoder().encode(text), {
    overwrite: true,
  });
}

/** Appends records to `log.jsonl`. */
export async function appendLog(
  out: string,
  records: readonly LogRecord[],
): Promise<void> {
  if (records.length === 0) return;
  const text = records.map((r) => JSON.stringify(r) + "\n").join("");
  await Deno.writeTextFile(`${out}/log.jsonl`, text, { append: true });
}

/** Reads a run's `log.jsonl` (lines that do not parse, such as a line cut short by a kill, are skipped). */
export async function readLog(out: string): Promise<LogRecord[]> {
  const path = `${out}/log.jsonl`;
  const bytes = await readRunFile(
    path,
    MAX_RECORDS_FILE_BYTES,
    "restore the run's log.jsonl or move it away",
  );
  if (bytes === null) return [];
  const text = new TextDecoder().decode(bytes);
  const out2: LogRecord[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      out2.push(JSON.parse(line));
    } catch {
      // a partial last line
    }
  }
  return out2;
}
