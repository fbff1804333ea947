/**
 * The one write-then-rename: a new file, chunks in order, the refusal of an
 * existing file without `overwrite`, replacing with it, and failures
 * (interrupted between chunks, a folder in the way) that leave the old file
 * as it was and no temporary file; whole folders put in place.
 */

import {
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "./_assert.ts";
import {
  replaceFolder,
  writeFileAtomic,
  writeTextAtomic,
} from "tokenlab/io/atomic_write.ts";
import { CheckpointError } from "tokenlab/io/checkpoint_error.ts";

const text = (s: string) => new TextEncoder().encode(s);

async function names(dir: string): Promise<string[]> {
  const out = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tokenlab-atomic-" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Chunks whose second one cannot be read: the write stops half-way. */
function interruptedChunks(): Uint8Array[] {
  const chunks = [text("new "), text("half")];
  Object.defineProperty(chunks, 1, {
    get() {
      throw new Error("interrupted");
    },
  });
  return chunks;
}

Deno.test("writeFileAtomic: writes chunks in order, refuses an existing file, replaces with overwrite", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/a.bin`;
    await writeFileAtomic(path, [text("ab"), text(""), text("cd")]);
    assertEquals(await Deno.readTextFile(path), "abcd");
    const e = await assertRejects(
      () => writeFileAtomic(path, text("x")),
      CheckpointError,
      "a file already exists there; pass overwrite: true",
    );
    assertEquals((e as Error).name, "CheckpointError");
    assertEquals(await Deno.readTextFile(path), "abcd");
    await writeFileAtomic(new URL(`file://${path}`), text("xyz"), {
      overwrite: true,
      sync: false,
    });
    assertEquals(await Deno.readTextFile(path), "xyz");
    assertEquals(await names(dir), ["a.bin"]);
  });
});

Deno.test("writeFileAtomic: an interrupted write leaves the old file intact and no temporary file", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/a.bin`;
    await Deno.writeTextFile(path, "old");
    for (const overwrite of [true, false]) {
      const e = await assertRejects(
        () => writeFileAtomic(path, interruptedChunks(), { overwrite }),
        CheckpointError,
      );
      if (overwrite) {
        assertStringIncludes((e as Error).message, "interrupted");
        assertStringIncludes((e as Error).message, "nothing was changed");
      }
      assertEquals(await Deno.readTextFile(path), "old");
      assertEquals(await names(dir), ["a.bin"]);
    }
    // A new name: nothing appears.
    await assertRejects(
      () => writeFileAtomic(`${dir}/b.bin`, interruptedChunks()),
      CheckpointError,
      "interrupted",
    );
    assertEquals(await names(dir), ["a.bin"]);
  });
});

Deno.test("writeFileAtomic: a folder in the way or a path without a name fails cleanly", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/f.bin`);
    await assertRejects(
      () => writeFileAtomic(`${dir}/f.bin`, text("x"), { overwrite: true }),
      CheckpointError,
      "nothing was changed there",
    );
    await assertRejects(
      () => writeFileAtomic(`${dir}/`, text("x")),
      TypeError,
      "expected a file path",
    );
    await assertRejects(
      () => writeFileAtomic(`${dir}/missing/a.bin`, text("x")),
      CheckpointError,
      "Check that the folder exists",
    );
    assertEquals(await names(dir), ["f.bin"]);
  });
});

Deno.test("writeTextAtomic: creates the folder when asked, replaces, leaves nothing else", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/sub/a.txt`;
    await assertRejects(() => writeTextAtomic(path, "x"), Deno.errors.NotFound);
    await writeTextAtomic(path, "first", { mkdir: true });
    await writeTextAtomic(path, "second ✓", { sync: true });
    assertEquals(await Deno.readTextFile(path), "second ✓");
    assertEquals(await names(`${dir}/sub`), ["a.txt"]);
  });
});

Deno.test("replaceFolder: puts a folder in place, replacing the old one only once the new one is in", async () => {
  await withDir(async (dir) => {
    const fill = async (d: string, s: string) => {
      await Deno.mkdir(d);
      await Deno.writeTextFile(`${d}/f.txt`, s);
    };
    await fill(`${dir}/.new`, "one");
    await replaceFolder(`${dir}/.new`, `${dir}/out`);
    assertEquals(await Deno.readTextFile(`${dir}/out/f.txt`), "one");
    await fill(`${dir}/.new`, "two");
    await replaceFolder(`${dir}/.new`, `${dir}/out`);
    assertEquals(await Deno.readTextFile(`${dir}/out/f.txt`), "two");
    assertEquals(await names(dir), ["out"]);
    // A failed move (the staged folder is missing) puts the old one back.
    await assertRejects(
      () => replaceFolder(`${dir}/.missing`, `${dir}/out`),
      Deno.errors.NotFound,
    );
    assertEquals(await Deno.readTextFile(`${dir}/out/f.txt`), "two");
    assertEquals(await names(dir), ["out"]);
  });
});
