/**
 * `tokenlab backend`: which compute backend the kit would use here, and why.
 *
 * @module
 */

import type { Command } from "./_args.ts";
import { checkBackendOption } from "./_args.ts";
import { defineCommand } from "./_command.ts";

const USAGE =
  `usage: tokenlab backend [--backend auto|webgpu|wasm|cpu] [--all] [--json]

Starts the compute backend the way every command and notebook does and prints
one line: what was chosen and why (adapter, whether it is a CPU fallback).

  --backend NAME  ask for a backend (default: $TOKENLAB_BACKEND, else auto)
  --all           also try every backend and say which can run here
  --json          print JSON instead of text`;

/** The `backend` command. */
export const backendCommand: Command = defineCommand({
  name: "backend",
  summary: "show the compute backend chosen here and why",
  usage: USAGE,
  options: {
    backend: { type: "string" },
    all: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
  async run({ values }) {
    // An unknown name is a usage error (exit 2); a known backend that cannot
    // start here fails while running (exit 1).
    await checkBackendOption("backend", values.backend);
    const { availableBackends, describeBackend, initBackend } = await import(
      "../backend.ts"
    );
    const choice = await initBackend({ backend: values.backend });
    const all = values.all ? await availableBackends() : undefined;
    if (values.json) {
      console.log(JSON.stringify({ ...choice, available: all }, null, 2));
      return 0;
    }
    console.log(describeBackend(choice));
    for (const b of all ?? []) {
      console.log(
        `  ${b.name.padEnd(6)} ${b.available ? "available" : "unavailable"}${
          b.detail ? `: ${b.detail}` : ""
        }`,
      );
    }
    return 0;
  },
});
