import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import {
  type AdapterProbe,
  BackendError,
  decideBackend,
  DEFAULT_WEBGPU_SUBMIT_BATCH,
  describeBackend,
  initBackend,
  parseBackendRequest,
  probeAdapter,
  summarizeAdapter,
  tf,
  WEBGPU_PRODUCTS_ENV,
  WEBGPU_SUBMIT_BATCH_ENV,
  withBackend,
} from "tokenlab";
import { NO_ADAPTER_ENV, runCli } from "./_helpers.ts";

const LLVMPIPE = summarizeAdapter({
  info: {
    description: "llvmpipe (LLVM 15.0.6, 256 bits)",
    vendor: "65541",
    isFallbackAdapter: true,
  },
});
const H200 = summarizeAdapter({
  info: {
    description: "NVIDIA H200",
    vendor: "nvidia",
    isFallbackAdapter: false,
  },
});
const NONE: AdapterProbe = {
  adapter: null,
  problem: "requestAdapter() returned null",
};

Deno.test("parseBackendRequest accepts the names in any case", () => {
  assertEquals(parseBackendRequest("auto"), "auto");
  assertEquals(parseBackendRequest(" WebGPU "), "webgpu");
  assertEquals(parseBackendRequest("wasm"), "wasm");
  assertEquals(parseBackendRequest("CPU"), "cpu");
});

Deno.test("an unknown backend name lists the valid ones", () => {
  const e = assertThrows(
    () => parseBackendRequest("webgl", "--backend"),
    BackendError,
  );
  assertStringIncludes(e.message, 'unknown --backend "webgl"');
  assertStringIncludes(e.message, "auto, webgpu, wasm, cpu");
});

Deno.test("software adapters are recognised by flag or by name", () => {
  assert(LLVMPIPE.software);
  assert(!H200.software);
  assert(
    summarizeAdapter({ info: { description: "SwiftShader Device" } }).software,
  );
  assert(
    summarizeAdapter({
      info: { description: "Some GPU" },
      isFallbackAdapter: true,
    })
      .software,
  );
});

Deno.test("auto takes webgpu only on a real GPU", () => {
  assertEquals(
    decideBackend("auto", { adapter: H200, problem: "" }).name,
    "webgpu",
  );
  const soft = decideBackend("auto", { adapter: LLVMPIPE, problem: "" });
  assertEquals(soft.name, "wasm");
  assertStringIncludes(soft.reason, "software (CPU) fallback");
  const none = decideBackend("auto", NONE);
  assertEquals(none.name, "wasm");
  assertStringIncludes(none.reason, "returned null");
});

Deno.test("explicit requests are honoured, webgpu without adapter fails", () => {
  assertEquals(decideBackend("cpu", NONE).name, "cpu");
  assertEquals(
    decideBackend("wasm", { adapter: H200, problem: "" }).name,
    "wasm",
  );
  const soft = decideBackend("webgpu", { adapter: LLVMPIPE, problem: "" });
  assertEquals(soft.name, "webgpu");
  assertStringIncludes(soft.reason, "expect it to be slow");
  const e = assertThrows(() => decideBackend("webgpu", NONE), BackendError);
  assertStringIncludes(e.message, "no WebGPU adapter");
  assertStringIncludes(e.message, '`backend: "wasm"`');
  assertEquals(e.fields, ["backend"]);
});

Deno.test({
  name: "initBackend: option beats TOKENLAB_BACKEND, which beats auto",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const saved = Deno.env.get("TOKENLAB_BACKEND");
    try {
      Deno.env.set("TOKENLAB_BACKEND", "cpu");
      const fromEnv = await initBackend();
      assertEquals([fromEnv.name, fromEnv.source], ["cpu", "env"]);
      const fromOption = await initBackend({ backend: "wasm" });
      assertEquals([fromOption.name, fromOption.source], ["wasm", "option"]);
      assertEquals(tf.getBackend(), "wasm");
      assertEquals(fromOption.threads >= 1, true);
      Deno.env.set("TOKENLAB_BACKEND", "tpu");
      const e = await assertRejects(() => initBackend(), BackendError);
      assertStringIncludes(e.message, "TOKENLAB_BACKEND value");
      Deno.env.delete("TOKENLAB_BACKEND");
      const auto = await initBackend();
      assertEquals(auto.source, "default");
      assertEquals(auto.request, "auto");
      // On a machine with a real GPU this is webgpu; on a CPU machine, wasm.
      assertEquals(
        auto.name,
        auto.adapter?.software === false ? "webgpu" : "wasm",
      );
      assertEquals(auto.cpuFallback, auto.name !== "webgpu");
    } finally {
      if (saved === undefined) Deno.env.delete("TOKENLAB_BACKEND");
      else Deno.env.set("TOKENLAB_BACKEND", saved);
    }
  },
});

Deno.test({
  name:
    "TOKENLAB_WEBGPU_SUBMIT_BATCH: a bad value is refused before any start; webgpu submits every N dispatches",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const saved = Deno.env.get(WEBGPU_SUBMIT_BATCH_ENV);
    const flag = "WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE";
    try {
      for (const bad of ["0", "2.5", "many"]) {
        Deno.env.set(WEBGPU_SUBMIT_BATCH_ENV, bad);
        const e = await assertRejects(
          () => initBackend({ backend: "cpu" }),
          BackendError,
        );
        assertStringIncludes(e.message, `${WEBGPU_SUBMIT_BATCH_ENV}="${bad}"`);
      }
      if ((await probeAdapter()).adapter !== null) {
        Deno.env.set(WEBGPU_SUBMIT_BATCH_ENV, "64");
        await initBackend({ backend: "webgpu" });
        assertEquals(tf.env().get(flag), 64);
        Deno.env.delete(WEBGPU_SUBMIT_BATCH_ENV);
        await initBackend({ backend: "wasm" });
        await initBackend({ backend: "webgpu" });
        assertEquals(tf.env().get(flag), DEFAULT_WEBGPU_SUBMIT_BATCH);
      }
    } finally {
      if (saved === undefined) Deno.env.delete(WEBGPU_SUBMIT_BATCH_ENV);
      else Deno.env.set(WEBGPU_SUBMIT_BATCH_ENV, saved);
    }
  },
});

Deno.test({
  name:
    "TOKENLAB_WEBGPU_PRODUCTS: a bad value is refused before any start; tokenlab installs the kit's matmul and convolutions on webgpu",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const saved = Deno.env.get(WEBGPU_PRODUCTS_ENV);
    try {
      for (const bad of ["mine", "TOKENLAB"]) {
        Deno.env.set(WEBGPU_PRODUCTS_ENV, bad);
        const e = await assertRejects(
          () => initBackend({ backend: "cpu" }),
          BackendError,
        );
        assertStringIncludes(e.message, `${WEBGPU_PRODUCTS_ENV}="${bad}"`);
        assertStringIncludes(e.message, `"tokenlab"`);
      }
    } finally {
      if (saved === undefined) Deno.env.delete(WEBGPU_PRODUCTS_ENV);
      else Deno.env.set(WEBGPU_PRODUCTS_ENV, saved);
    }
    if ((await probeAdapter()).adapter === null) return;
    // In a child: the replacement lasts for the process.
    const code = `
      import * as tfjs from "@tensorflow/tfjs";
      import { initBackend } from "tokenlab";
      const names = ["BatchMatMul", "_FusedMatMul", "Conv2D", "Conv2DBackpropInput"];
      const ours = () => names.map((n) =>
        tfjs.getKernel(n, "webgpu")?.kernelFunc[
          Symbol.for("tokenlab.webgpuReplacement." + n)
        ] === true
      );
      await initBackend({ backend: "webgpu" });
      const before = ours();
      Deno.env.set("${WEBGPU_PRODUCTS_ENV}", "tokenlab");
      await initBackend({ backend: "cpu" });
      await initBackend({ backend: "webgpu" });
      console.log(JSON.stringify({ before, after: ours() }));`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", code],
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    const seen = JSON.parse(
      new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!,
    );
    assertEquals(seen, {
      before: [false, false, false, false],
      after: [true, true, true, true],
    });
  },
});

Deno.test("importing tokenlab only defines things; initBackend installs the kernels and reports a bad environment as a BackendError", async () => {
  // In a child: this process has imported tokenlab and started backends.
  const code = `
    import * as tfjs from "@tensorflow/tfjs";
    import { nativeBlasInfo } from "tokenlab/kernels/native_blas.ts";
    import { BackendError, initBackend } from "tokenlab";
    const engine = Object.getPrototypeOf(tfjs.engine());
    const seen = {
      grad: tfjs.getKernel("Conv2DBackpropFilter", "wasm") !== undefined,
      fused: tfjs.getKernel("TokenlabFusedAttention", "wasm") !== undefined,
      lean: engine[Symbol.for("tokenlab.leanBackprop")] === true,
      blas: nativeBlasInfo().reason,
      prod: tfjs.env().getBool("PROD"),
      error: "",
    };
    try {
      await initBackend({ backend: "cpu" });
    } catch (e) {
      seen.error = (e instanceof BackendError ? "BackendError: " : "") +
        e.message;
    }
    Deno.env.delete("TOKENLAB_WASM_THREADS");
    await initBackend({ backend: "cpu" });
    seen.after = {
      grad: tfjs.getKernel("Conv2DBackpropFilter", "wasm") !== undefined,
      fused: tfjs.getKernel("TokenlabFusedAttention", "wasm") !== undefined,
      lean: engine[Symbol.for("tokenlab.leanBackprop")] === true,
      prod: tfjs.env().getBool("PROD"),
    };
    console.log(JSON.stringify(seen));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    cwd: new URL("..", import.meta.url),
    env: { TOKENLAB_WASM_THREADS: "many", TOKENLAB_BLAS: "off" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const seen = JSON.parse(text.trim().split("\n").at(-1)!);
  assertEquals(
    [seen.grad, seen.fused, seen.lean, seen.blas, seen.prod],
    [false, false, false, "not loaded yet", false],
    "importing tokenlab registered, patched or loaded something",
  );
  assertStringIncludes(seen.error, "BackendError: ");
  assertStringIncludes(seen.error, `TOKENLAB_WASM_THREADS="many"`);
  assertEquals(seen.after, { grad: true, fused: true, lean: true, prod: true });
});

Deno.test({
  name: "withBackend switches and restores, also on error",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await initBackend({ backend: "wasm" });
    const inside = await withBackend("cpu", () => tf.getBackend());
    assertEquals(inside, "cpu");
    assertEquals(tf.getBackend(), "wasm");
    await assertRejects(() =>
      withBackend("cpu", () => {
        throw new Error("boom");
      })
    );
    assertEquals(tf.getBackend(), "wasm");
  },
});

Deno.test("describeBackend is one line saying what and why", () => {
  const line = describeBackend({
    name: "wasm",
    request: "auto",
    source: "default",
    reason: 'the only WebGPU adapter, "llvmpipe", is a software (CPU) fallback',
    adapter: LLVMPIPE,
    cpuFallback: true,
    threads: 1,
  });
  assert(!line.includes("\n"));
  assertMatch(
    line,
    /^backend: wasm \(asked: auto\): .*llvmpipe.*\[computing on the CPU, 1 thread\]$/,
  );
});

Deno.test("cli: `backend` prints the choice in one line", async () => {
  const r = await runCli(["backend", "--backend", "cpu"]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(
    r.stdout.trim(),
    /^backend: cpu \(asked: cpu from the option\): requested/,
  );
  const env = await runCli(["backend", "--json"], { TOKENLAB_BACKEND: "wasm" });
  assertEquals(env.code, 0, env.stderr);
  const json = JSON.parse(env.stdout);
  assertEquals([json.name, json.source], ["wasm", "env"]);
});

Deno.test("cli: an unknown backend is a usage error listing the valid names", async () => {
  const r = await runCli(["backend", "--backend", "metal"]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.stderr, "expected one of auto, webgpu, wasm, cpu");
});

Deno.test("cli: webgpu without an adapter is an error, auto falls back to wasm", async () => {
  const explicit = await runCli(
    ["backend", "--backend", "webgpu"],
    NO_ADAPTER_ENV,
  );
  assertEquals(explicit.code, 1, explicit.stdout);
  assertStringIncludes(
    explicit.stderr,
    "webgpu was requested but there is no WebGPU adapter",
  );
  const auto = await runCli(["backend"], NO_ADAPTER_ENV);
  assertEquals(auto.code, 0, auto.stderr);
  assertMatch(
    auto.stdout,
    /^backend: wasm \(asked: auto\): no WebGPU adapter \(navigator\.gpu\.requestAdapter\(\) returned null/,
  );
});

Deno.test("cli: unknown command and unknown flag are usage errors", async () => {
  const cmd = await runCli(["frobnicate"]);
  assertEquals(cmd.code, 2);
  assertStringIncludes(
    cmd.stderr,
    'unknown command "frobnicate": expected one of annotate, backend',
  );
  const flag = await runCli(["backend", "--fast"]);
  assertEquals(flag.code, 2);
  assertStringIncludes(flag.stderr, "--fast");
  assertStringIncludes(flag.stderr, "usage: tokenlab backend");
});
