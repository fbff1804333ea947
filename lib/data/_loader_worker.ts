// A loader worker: opens the pipeline from its spec, then prepares the
// batches it is asked for (see loader.ts). Not part of the public API.

import { prepareBatch } from "./_batch.ts";
import { type PipelineSpec, SamplePipeline } from "./pipeline.ts";

let pipeline: SamplePipeline | null = null;
let seed = 0;

type Message =
  | { init: { spec: PipelineSpec; seed: number } }
  | {
    id: number;
    req: { epoch: number; step: number; indices: number[] };
  };

interface WorkerScope {
  postMessage(m: unknown, transfer: Transferable[]): void;
  onmessage: ((ev: MessageEvent<Message>) => void) | null;
}
const scope = self as unknown as WorkerScope;
const post = (m: unknown, transfer: Transferable[] = []) =>
  scope.postMessage(m, transfer);

scope.onmessage = async (ev: MessageEvent<Message>) => {
  const m = ev.data;
  if ("init" in m) {
    try {
      pipeline = await SamplePipeline.open(m.init.spec, { verify: false });
      seed = m.init.seed;
      post({ ready: true, ok: true });
    } catch (e) {
      post({
        ready: true,
        ok: false,
        message: String((e as Error)?.message ?? e),
      });
    }
    return;
  }
  try {
    const body = await prepareBatch(pipeline!, m.req, seed);
    const transfer = [body.images, body.labels, body.indices, body.boxes]
      .filter((a) => a !== undefined).map((a) => a.buffer as ArrayBuffer);
    post({ id: m.id, ok: true, body }, transfer);
  } catch (e) {
    post({
      id: m.id,
      ok: false,
      name: (e as Error)?.name ?? "Error",
      message: String((e as Error)?.message ?? e),
    });
  }
};
