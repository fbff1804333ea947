/**
 * Training displays: the figure's traces against the records they come
 * from (axes, eval lines per weights, schedule, running mean), empty and
 * partial logs, the SVG and text fallbacks, the result table's numbers, the
 * live progress line, and the live display's create / update / throttle /
 * finish protocol with an injected display function and clock.
 */

import {
  assert,
  assertEquals,
  assertStringIncludes,
  assertThrows,
} from "./_assert.ts";
import { figureBundle } from "tokenlab";
import {
  type DisplayFunction,
  LiveDisplay,
} from "tokenlab/train/live_display.ts";
import { liveBundle, type LiveState } from "tokenlab/train/live_view.ts";
import { resultTable } from "tokenlab/train/result_table.ts";
import { trainingFigure } from "tokenlab/train/training_figure.ts";
import type { EvalRecord, LogRecord, StepRecord } from "tokenlab/train/log.ts";

interface Trace {
  type: string;
  name: string;
  mode: string;
  x: number[];
  y: (number | null)[];
  xaxis: string;
  yaxis: string;
  line?: { dash?: string };
}
interface Figure {
  data: Trace[];
  layout: Record<string, Record<string, unknown>> & {
    annotations: { text: string }[];
  };
}

function step(
  s: number,
  extra: Partial<StepRecord> = {},
  perEpoch = 4,
): StepRecord {
  return {
    kind: "step",
    epoch: Math.floor((s - 1) / perEpoch),
    step: s,
    stepInEpoch: (s - 1) % perEpoch,
    stepsPerEpoch: perEpoch,
    loss: 3 - 0.1 * s,
    lr: 1e-4 * s,
    imagesPerSecond: 100 * s,
    elapsed: 2 * s,
    ...extra,
  };
}

function evalRec(
  epoch: number,
  which: EvalRecord["which"],
  top1: number,
  top5: number,
  loss = 1,
): EvalRecord {
  return {
    kind: "eval",
    epoch,
    step: 4 * (epoch + 1),
    which,
    top1,
    top5,
    loss,
    images: 100,
  };
}

/** Three epochs of 4 steps, every step logged, model and EMA evaluated. */
function fullRun(): LogRecord[] {
  const records: LogRecord[] = [];
  for (let s = 1; s <= 12; s++) {
    records.push(step(s, { lossCls: 2 - 0.1 * s, lossDense: 1 - 0.05 * s }));
    if (s % 4 === 0) {
      const e = s / 4 - 1;
      records.push(
        evalRec(
          e,
          "model",
          [10, 30, 25][e],
          [40, 60, 70][e],
          [2, 1.5, 1.25][e],
        ),
        evalRec(e, "ema", [5, 20, 35][e], [30, 55, 75][e], [2.5, 1.75, 1][e]),
      );
      if (e === 1) {
        records.push({ kind: "checkpoint", epoch: e, step: s, name: "e2" });
      }
    }
  }
  return records;
}

function trace(fig: Figure, name: string): Trace {
  const t = fig.data.find((d) => d.name === name);
  assert(
    t,
    `expected a trace named ${name}, found ${fig.data.map((d) => d.name)}`,
  );
  return t;
}

Deno.test("trainingFigure: the traces hold the records, on their own axes", () => {
  const records = fullRun();
  const steps = records.filter((r): r is StepRecord => r.kind === "step");
  const fig = trainingFigure(records, { window: 2 }).plotly as Figure;
  assertEquals(fig.data.map((d) => d.name), [
    "train loss",
    "train loss, mean of 2 logged steps",
    "class-token term, mean of 2",
    "dense token term, mean of 2",
    "learning rate",
    "model top-1",
    "model top-5",
    "EMA top-1",
    "EMA top-5",
  ]);
  const raw = trace(fig, "train loss");
  assertEquals(raw.x, steps.map((s) => s.step));
  assertEquals(raw.y, steps.map((s) => s.loss));
  assertEquals(raw.mode, "markers");
  // Running mean over the last 2 logged steps, by hand.
  const mean = trace(fig, "train loss, mean of 2 logged steps");
  assertEquals(mean.y[0], steps[0].loss);
  for (let i = 1; i < steps.length; i++) {
    const want = (steps[i - 1].loss + steps[i].loss) / 2;
    assert(Math.abs(mean.y[i]! - want) < 1e-12, `mean at ${i}`);
  }
  const lr = trace(fig, "learning rate");
  assertEquals(lr.y, steps.map((s) => s.lr));
  assertEquals([lr.xaxis, lr.yaxis], ["x2", "y2"]);
  for (
    const name of [
      "train loss",
      "class-token term, mean of 2",
      "dense token term, mean of 2",
    ]
  ) {
    assertEquals([trace(fig, name).xaxis, trace(fig, name).yaxis], ["x", "y"]);
  }
  // Validation: x is the epoch counted from 1, one line per weights.
  const m1 = trace(fig, "model top-1"), m5 = trace(fig, "model top-5");
  const e1 = trace(fig, "EMA top-1"), e5 = trace(fig, "EMA top-5");
  assertEquals(m1.x, [1, 2, 3]);
  assertEquals(m1.y, [10, 30, 25]);
  assertEquals(m5.y, [40, 60, 70]);
  assertEquals(e1.y, [5, 20, 35]);
  assertEquals(e5.y, [30, 55, 75]);
  assertEquals(m5.line?.dash, "dash");
  for (const t of [m1, m5, e1, e5]) {
    assertEquals([t.xaxis, t.yaxis], ["x3", "y3"]);
  }
  // Three panels side by side; the step axes are shared.
  const { layout } = fig;
  assertEquals(layout.xaxis.domain, [0, 0.27]);
  assertEquals(layout.xaxis2.matches, "x");
  assertEquals(layout.yaxis2.anchor, "x2");
  assertEquals(layout.yaxis3.anchor, "x3");
  assertEquals((layout.xaxis3.title as { text: string }).text, "epoch");
  // The bundle is JSON (what Jupyter receives).
  const bundle = figureBundle(trainingFigure(records));
  JSON.parse(JSON.stringify(bundle));
});

Deno.test("trainingFigure: a planned schedule is drawn dashed under the logged rate", () => {
  const records = [step(1), step(2), step(3)];
  const schedule = {
    step: [1, 2, 3, 4, 5, 6, 7, 8],
    lr: [1, 2, 3, 4, 4, 3, 2, 1].map((v) => v * 1e-4),
  };
  const fig = trainingFigure(records, { schedule }).plotly as Figure;
  const plan = trace(fig, "planned learning rate");
  assertEquals(plan.x, schedule.step);
  assertEquals(plan.y, schedule.lr);
  assertEquals(plan.line?.dash, "dash");
  assertEquals([plan.xaxis, plan.yaxis], ["x2", "y2"]);
  assertEquals(trace(fig, "learning rate").y, records.map((r) => r.lr));
  // The step axis spans the whole planned run.
  assertEquals(fig.layout.xaxis.range, [1, 8]);
  assertThrows(
    () => trainingFigure(records, { schedule: { step: [1, 2], lr: [1] } }),
    RangeError,
    "same length",
  );
  assertThrows(() => trainingFigure(records, { window: 0 }), RangeError);
});

Deno.test("trainingFigure: no records, no evaluation, no token loss", () => {
  const empty = trainingFigure([]);
  const fig = empty.plotly as Figure;
  assertEquals(fig.data, []);
  assert(
    fig.layout.annotations.some((a) => a.text === "no steps yet"),
    "empty panels say so",
  );
  assertStringIncludes(empty.text, "no records yet");
  assert(empty.svg.startsWith("<svg") && empty.svg.endsWith("</svg>"));
  assert(!empty.svg.includes("NaN"), "no NaN coordinates in the SVG");

  const stepsOnly = trainingFigure([step(1), step(2)]);
  const names = (stepsOnly.plotly as Figure).data.map((d) => d.name);
  assert(!names.some((n) => n.includes("top-")), "no accuracy lines");
  assert(!names.some((n) => n.startsWith("dense")), "no dense line");
  assertStringIncludes(stepsOnly.svg, "no evaluation yet");

  // Only the class-token term, on some records.
  const partial = trainingFigure([step(1), step(2, { lossCls: 0.5 })]);
  const cls = (partial.plotly as Figure).data.find((d) =>
    d.name.startsWith("class-token term")
  )!;
  assertEquals([cls.x, cls.y], [[2], [0.5]]);

  // A single step and a single evaluation still draw without NaN.
  const one = trainingFigure([step(1), evalRec(0, "ema", 50, 90)]);
  assert(!one.svg.includes("NaN"), "no NaN coordinates in the SVG");
  assertEquals(
    (one.plotly as Figure).data.map((d) => d.name).filter((n) =>
      n.startsWith("EMA")
    ),
    ["EMA top-1", "EMA top-5"],
  );
});

Deno.test("trainingFigure: a step logged twice (a resumed run) is drawn once, from its last record", () => {
  const records = [step(1), step(2), step(3), step(2, { loss: 9 }), step(3)];
  const fig = trainingFigure(records).plotly as Figure;
  const raw = trace(fig, "train loss");
  assertEquals(raw.x, [1, 2, 3]);
  assertEquals(raw.y, [step(1).loss, 9, step(3).loss]);
});

Deno.test("trainingFigure: the SVG draws the three panels and escapes text", () => {
  const parts = trainingFigure(fullRun(), { title: 'a <b> & "c"' });
  const svg = parts.svg;
  assert(svg.startsWith("<svg") && svg.endsWith("</svg>"), "an SVG document");
  assertStringIncludes(svg, 'xmlns="http://www.w3.org/2000/svg"');
  assertStringIncludes(svg, "a &lt;b&gt; &amp; &quot;c&quot;");
  assert(!svg.includes("<b>"), "the title is escaped");
  // Raw loss, mean, cls, dense, lr, 2 x 2 accuracy lines.
  assertEquals(svg.match(/<polyline /g)?.length, 9);
  for (
    const label of [
      "training loss",
      "learning rate",
      "validation accuracy",
      "EMA top-5",
    ]
  ) {
    assertStringIncludes(svg, label);
  }
  assert(!svg.includes("NaN"), "no NaN coordinates");
  // Every opened element is closed (a cheap well-formedness check).
  const opened = svg.match(/<(svg|g|text|clipPath|defs)[ >]/g)?.length ?? 0;
  const closed = svg.match(/<\/(svg|g|text|clipPath|defs)>/g)?.length ?? 0;
  assertEquals(opened, closed);
  // The HTML fallback holds the same SVG, then the table.
  const html = figureBundle(parts)["text/html"] as string;
  const b64 = html.match(/base64,([^"]+)"/)![1];
  assertEquals(
    new TextDecoder().decode(
      Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)),
    ),
    svg,
  );
  assertStringIncludes(html, "<pre>");
});

Deno.test("trainingFigure: a long run's SVG stays small and keeps the envelope", () => {
  const records: LogRecord[] = [];
  for (let s = 1; s <= 20000; s++) {
    records.push(
      step(s, { loss: s === 10000 ? 50 : 1 + Math.sin(s), lr: 1e-3 }, 1000),
    );
  }
  const svg = trainingFigure(records).svg;
  assert(svg.length < 200_000, `SVG of ${svg.length} characters`);
  // The spike at step 10000 survives the thinning: the range goes to 60
  // (ticks every 20), and loss 50 is drawn at 258 - 200 * 50 / 60 = 91.3.
  assertStringIncludes(svg, ">60</text>");
  assertStringIncludes(svg, "184.0,91.3");
});

Deno.test("trainingFigure: the text table has a row per epoch", () => {
  const text = trainingFigure(fullRun(), { title: "run" }).text;
  const lines = text.split("\n");
  assertStringIncludes(lines[0], "run: 12 steps (3 epochs), 24s");
  assertStringIncludes(lines[1], "epoch");
  assertStringIncludes(lines[1], "model top-1");
  assertStringIncludes(lines[1], "EMA top-1");
  // Epoch 2: steps 5..8, mean loss 3 - 0.1 * 6.5 = 2.35, lr 8e-4, evals.
  const row = lines[3].trim().split(/\s+/);
  assertEquals(row, [
    "2",
    "8",
    "2.350",
    "8.0e-04",
    "650",
    "30.00",
    "60.00",
    "20.00",
    "55.00",
  ]);
});

Deno.test("resultTable: last, best (with its epoch) and the run's numbers", () => {
  const { text, html } = resultTable(fullRun());
  const lines = text.split("\n");
  assertEquals(lines[0].split(/\s{2,}/), [
    "weights",
    "top-1",
    "top-5",
    "best top-1 (epoch)",
    "val loss",
  ]);
  assertEquals(lines[1].split(/\s{2,}/), [
    "model",
    "25.00",
    "70.00",
    "30.00 (2)",
    "1.250",
  ]);
  assertEquals(lines[2].split(/\s{2,}/), [
    "EMA",
    "35.00",
    "75.00",
    "35.00 (3)",
    "1.000",
  ]);
  // Last epoch's steps 9..12: mean loss 3 - 0.1 * 10.5 = 1.95. Images per
  // second weighted by steps covered (one each): mean of 100..1200 = 650.
  assertStringIncludes(lines[3], "train loss 1.950 (mean of epoch 3's");
  assertStringIncludes(lines[3], "12 steps (3 epochs), 24s, 650 img/s");
  assertStringIncludes(html, "<table>");
  assertStringIncludes(html, '<td style="text-align:right">30.00 (2)</td>');
});

Deno.test("resultTable: images per second are weighted by the steps each record covers", () => {
  // Logged at steps 1 and 10: the second record covers 9 steps.
  const records = [
    step(1, { imagesPerSecond: 100 }, 10),
    step(10, { imagesPerSecond: 200 }, 10),
  ];
  const { text } = resultTable(records);
  assertStringIncludes(text, `${Math.round((100 + 9 * 200) / 10)} img/s`);
  assertStringIncludes(text, "no evaluation records");
  assertStringIncludes(text, "10 steps (1 epochs)");
  // A partial epoch shows with a decimal.
  assertStringIncludes(
    resultTable([step(5, {}, 10)]).text,
    "5 steps (0.5 epochs)",
  );
  assertEquals(resultTable([]).text, "no records yet");
  // Evaluation only.
  assertStringIncludes(
    resultTable([evalRec(0, "model", 1, 2)]).text,
    "1.00 (1)",
  );
});

function live(extra: Partial<LiveState> = {}): LiveState {
  return {
    title: "lvvit_xs32 on synthetic:size=32",
    epoch: 2,
    epochs: 10,
    step: 130,
    steps: 500,
    loss: 1.2344,
    lr: 4e-4,
    imagesPerSecond: 311.6,
    etaSeconds: 80,
    status: "running",
    ...extra,
  };
}

Deno.test("liveBundle: the command line's progress line and an HTML view", () => {
  const b = liveBundle(live());
  assertEquals(
    b["text/plain"],
    "epoch 3/10 step 130/500 [=====>                  ] loss 1.234 lr 4.0e-04 312 img/s ETA 1m20s",
  );
  const html = b["text/html"] as string;
  assertStringIncludes(html, "lvvit_xs32 on synthetic:size=32");
  assertStringIncludes(html, "width:26.0%");
  assert(!html.includes("<svg"), "no inline SVG (nbconvert strips it)");
  assert(!html.includes("data:image/svg+xml"), "no sparkline without records");

  const withRecords = liveBundle(live({ last: [step(1), step(2), step(3)] }));
  assertStringIncludes(
    withRecords["text/html"] as string,
    'src="data:image/svg+xml;base64,',
  );

  const unknown = liveBundle(
    live({ loss: null, lr: null, imagesPerSecond: null, etaSeconds: null }),
  );
  assertEquals(
    unknown["text/plain"],
    "epoch 3/10 step 130/500 [=====>                  ]",
  );
  const done = liveBundle(live({ step: 500, epoch: 9, status: "done" }));
  assertEquals(
    done["text/plain"],
    "epoch 10/10 step 500/500 [========================] loss 1.234 lr 4.0e-04 312 img/s done",
  );
  const failed = liveBundle(
    live({ status: "failed", message: "loss is NaN <at step 130>" }),
  );
  assertStringIncludes(
    failed["text/plain"] as string,
    "failed: loss is NaN <at step 130>",
  );
  assertStringIncludes(
    failed["text/html"] as string,
    "failed: loss is NaN &lt;at step 130&gt;",
  );
  assertStringIncludes(
    liveBundle(live({ etaSeconds: 7325 }))["text/plain"] as string,
    "ETA 2h02m",
  );
});

Deno.test("LiveDisplay: creates, updates in place, throttles, forces and finishes", async () => {
  const calls: {
    bundle: Record<string, unknown>;
    update: boolean;
    id: string;
  }[] = [];
  const display: DisplayFunction = (bundle, o) => {
    assertEquals(o.raw, true);
    calls.push({ bundle, update: o.update, id: o.display_id });
    return Promise.resolve();
  };
  let t = 1000;
  const d = new LiveDisplay({ display, now: () => t, minIntervalMs: 500 });
  assert(d.id.startsWith("tokenlab-train-"), d.id);
  assert(new LiveDisplay({ display }).id !== d.id, "a fresh id each time");
  await d.update(live({ step: 1 }));
  t += 100;
  await d.update(live({ step: 2 })); // within 500 ms: skipped
  t += 400;
  await d.update(live({ step: 3 })); // 500 ms after the first: shown
  t += 10;
  await d.update(live({ step: 4 }), true); // forced
  t += 10;
  await d.update(live({ step: 5, status: "stopped" })); // not running: shown
  t += 10;
  await d.finish({ "text/plain": "final" });
  assertEquals(calls.map((c) => c.update), [false, true, true, true, true]);
  assert(calls.every((c) => c.id === d.id), "one display id");
  assertEquals(
    calls.slice(0, 4).map((c) =>
      (c.bundle["text/plain"] as string).split(" ")[3]
    ),
    ["1/500", "3/500", "4/500", "5/500"],
  );
  assertEquals(calls[4].bundle, { "text/plain": "final" });

  // finish without an update creates the output.
  const first: boolean[] = [];
  const e = new LiveDisplay({
    display: (_b, o) => Promise.resolve(void first.push(o.update)),
  });
  await e.finish({ "text/plain": "done" });
  assertEquals(first, [false]);

  assertThrows(() => new LiveDisplay({ minIntervalMs: -1 }), RangeError);
});

Deno.test("LiveDisplay: outside Jupyter it is unavailable and does nothing", async () => {
  assertEquals(LiveDisplay.available(), false);
  const d = new LiveDisplay();
  await d.update(live());
  await d.finish({ "text/plain": "x" });
});
