import {
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  aptCommand,
  checkDenoVersion,
  compareVersions,
  DEBIAN_PACKAGES,
  ensureDebianPackages,
  jupyterDataDir,
  kernelSpec,
  missingFromDpkg,
  SetupError,
} from "../lib/cli/setup.ts";
import { runCli } from "./_helpers.ts";

Deno.test("compareVersions orders numerically", () => {
  assertEquals(compareVersions("2.9.0", "2.9.0"), 0);
  assertEquals(compareVersions("2.10.0", "2.9.6") > 0, true);
  assertEquals(compareVersions("2.8.12", "2.9.0") < 0, true);
  assertEquals(compareVersions("3.0.0-rc.1", "2.9.0") > 0, true);
});

Deno.test("Deno older than 2.9.0 is refused with the way out", () => {
  checkDenoVersion("2.9.0");
  checkDenoVersion(Deno.version.deno);
  const e = assertThrows(() => checkDenoVersion("2.8.2"), SetupError);
  assertStringIncludes(e.message, "needs Deno >= 2.9.0");
  assertStringIncludes(e.message, "found Deno 2.8.2");
  assertStringIncludes(e.message, "npx -y deno@2.9.6 task test");
});

Deno.test("dpkg-query output: only 'installed' counts", () => {
  const out = [
    "jupyter-nbconvert installed",
    "python3-nbclient config-files",
    "mesa-vulkan-drivers:amd64 installed",
    "",
  ].join("\n");
  assertEquals(missingFromDpkg(out, DEBIAN_PACKAGES), [
    "python3-nbclient",
    "jupyter-client",
    "python3-ipykernel",
    "chromium",
    "libopenblas0-pthread",
  ]);
});

Deno.test("without root, missing packages stop setup with the exact command", async () => {
  const wanted = ["tokenlab-no-such-package", "dpkg"];
  const e = await assertRejects(
    () => ensureDebianPackages({ packages: wanted, uid: 1000, log: () => {} }),
    SetupError,
  );
  assertStringIncludes(
    e.message,
    "missing Debian packages: tokenlab-no-such-package.",
  );
  assertStringIncludes(
    e.message,
    "sudo apt-get update && sudo apt-get install -y --no-install-recommends tokenlab-no-such-package",
  );
  assertEquals(
    aptCommand(["a", "b"]),
    "sudo apt-get update && sudo apt-get install -y --no-install-recommends a b",
  );
});

Deno.test("the kernelspec lives where jupyter_core looks", () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  assertEquals(jupyterDataDir(env({ HOME: "/h" })), "/h/.local/share/jupyter");
  assertEquals(
    jupyterDataDir(env({ HOME: "/h", XDG_DATA_HOME: "/x" })),
    "/x/jupyter",
  );
  assertEquals(
    jupyterDataDir(
      env({ HOME: "/h", XDG_DATA_HOME: "/x", JUPYTER_DATA_DIR: "/j" }),
    ),
    "/j",
  );
  assertThrows(() => jupyterDataDir(env({})), SetupError);
  assertEquals(kernelSpec("/opt/deno").argv, [
    "/opt/deno",
    "jupyter",
    "--kernel",
    "--conn",
    "{connection_file}",
  ]);
});

Deno.test("setup writes the kernelspec for the running Deno, then is a no-op", async () => {
  const data = await Deno.makeTempDir({ prefix: "tokenlab-jupyter-" });
  try {
    const run = () => runCli(["setup"], { JUPYTER_DATA_DIR: data });
    const first = await run();
    assertEquals(first.code, 0, first.stderr);
    assertStringIncludes(first.stderr, "Deno kernelspec written");
    const spec = JSON.parse(
      await Deno.readTextFile(`${data}/kernels/deno/kernel.json`),
    );
    assertEquals(spec.argv[0], Deno.execPath());
    const second = await run();
    assertEquals(second.code, 0);
    assertStringIncludes(second.stderr, "Deno kernelspec up to date");
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("the kit's tasks run Deno quietly: no download or type-check lines around the kit's own output", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  ) as { tasks: Record<string, { command: string }> };
  const loud: string[] = [];
  for (const [name, task] of Object.entries(config.tasks)) {
    // Every `deno run` of the kit, its tests, bench and fuzzer; `check`
    // and the kernel build are developer tools whose progress is wanted.
    if (name === "check" || name === "kernels") continue;
    for (const run of task.command.matchAll(/deno run ([^&|;]*)/g)) {
      if (!/(^| )(-q|--quiet)( |$)/.test(run[1])) {
        loud.push(`${name}: ${run[0]}`);
      }
    }
  }
  assertEquals(loud, [], "tasks that print Deno's download/check lines");
});
