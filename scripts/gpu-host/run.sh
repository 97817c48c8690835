#!/usr/bin/env bash
# Runs on the GPU host from the repository root with .carry/ (see pack.sh) present, and
# .carry-llama/ (pack-llama.sh) for the same-card llama.cpp peer: unpacks Node and Dawn, prints
# the adapter, checks every mode against the CPU reference, then runs the benchmarks in order of
# importance (a run cut short loses the last ones). Every report lands in $OUT/results.tar.gz,
# rewritten after each step, and a table is printed at the end.
#   KLOOP_RUN_CHECK=0   skip the correctness check
#   KLOOP_BENCHES="a b" run only these benchmarks (names below), in this script's order
#   BENCH_TIMEOUT=S     seconds per benchmark (default 120)
set -uo pipefail
out=${OUT:-/tmp/kloop-out}
work=/tmp/kloop-results
mkdir -p "$out" "$work"
t0=$(date +%s)
stamp() { echo "[$(($(date +%s) - t0)) s] $*"; }
save() { tar -czf "$out/results.tar.gz" -C "$work" . 2>/dev/null; }
c=.carry
xz -dc $c/node.xz > /tmp/node && chmod +x /tmp/node
mkdir -p /tmp/kloop/node_modules && cp -r $c/webgpu /tmp/kloop/node_modules/
xz -dc $c/webgpu/dist/linux-x64/dawn.node.xz > /tmp/kloop/node_modules/webgpu/dist/linux-x64/dawn.node
cp $c/kloop.mjs $c/kloop-check.mjs /tmp/kloop/
[ -f .carry-llama/llama.tar.xz ] && tar -xJf .carry-llama/llama.tar.xz -C /tmp/kloop
export KLOOP_MODELS=$PWD/$c/models KLOOP_FIXTURES=$PWD/$c/fixtures
k() { (cd /tmp/kloop && /tmp/node kloop.mjs "$@"); }
k devices 2>&1 | tee "$work/devices.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>/dev/null | tee -a "$work/devices.txt"
stamp "unpacked"
benches=" ${KLOOP_BENCHES:-l1b-q4_0-predict l1b-f32-predict l1b-f16 l1b-q8_0 gguf-q4_0 stories260K l1b-q4_k gguf-q8_0 l1b-q4_0-wg256-predict l1b-q4_0-wg512 stories260K-wg1024 l1b-q4_0-pad-off l1b-q4_0-subgroups-off l1b-f16-pad-off l1b-f16-subgroups-off l1b-q4_0-spin stories260K-q4_0-gguf} "
want() { [[ $benches == *" $1 "* ]]; }
# The same-shape GGUF files kloop and llama.cpp both read, written on the CPU while the check runs.
(for t in q4_0 q8_0; do want "gguf-$t" && k convert --shape Llama-3.2-1B --type $t --out /tmp/l1b-$t.gguf; done) > "$work/convert.txt" 2>&1 &
conv=$!
if [ "${KLOOP_RUN_CHECK:-1}" = 1 ]; then
  (cd /tmp/kloop && KLOOP_CHECK_OUT=$work/check.json /tmp/node kloop-check.mjs) 2>&1 | tee "$work/check.txt"
  stamp "check done"; save
fi
bench() {
  local name=$1; shift
  want "$name" || return 0
  timeout "${BENCH_TIMEOUT:-120}" bash -c "cd /tmp/kloop && /tmp/node kloop.mjs bench $* --json" > "$work/bench-$name.json" 2> "$work/bench-$name.err"
  stamp "bench $name: exit $?"; tail -2 "$work/bench-$name.err"; save
}
L="--shape Llama-3.2-1B --tokens 32 --repeat 3"
# The Llama-3.2-1B shape (synthetic blocks), per-layer and looped:16: q4_0 and f32 with the device
# model's stage microbenchmarks (time per call of every stage) and prediction, then the others.
for t in q4_0 f32; do bench "l1b-$t-predict" $L --type $t --modes per-layer,looped:16 --predict; done
for t in f32 f16 q8_0 q4_0; do bench "l1b-$t" $L --type $t --modes per-layer,looped:16; done
# The same shape as a GGUF file (kloop convert --shape), kloop and llama.cpp's Vulkan build on it.
wait $conv; cat "$work/convert.txt"
bench gguf-q4_0 --model /tmp/l1b-q4_0.gguf --modes per-layer,looped:16 --tokens 32 --repeat 3 --llama-gpu vulkan
S="--model $KLOOP_MODELS/stories260K/stories260K.bin --modes per-op,per-layer,looped,looped:16,looped:64 --tokens 256 --repeat 5 --prompt-tokens 256"
bench stories260K $S
bench l1b-q4_k $L --type q4_k --modes per-layer,looped:16
bench gguf-q8_0 --model /tmp/l1b-q8_0.gguf --modes per-layer,looped:16 --tokens 32 --repeat 3 --llama-gpu vulkan
# Workgroup sizes other than the default (1024 invocations for this shape).
bench l1b-q4_0-wg256-predict $L --type q4_0 --modes per-layer,looped:16 --predict --workgroup-size 256
bench l1b-q4_0-wg512 $L --type q4_0 --modes looped:16 --workgroup-size 512
bench stories260K-wg1024 $S --workgroup-size 1024
# The GPU defaults each turned off: the staged input without padding, the lanes of a row summed
# by a shared-memory tree instead of subgroup operations.
for t in q4_0 f16; do
  bench "l1b-$t-pad-off" $L --type $t --modes looped:16 --pad-staging off
  bench "l1b-$t-subgroups-off" $L --type $t --modes looped:16 --subgroups off
done
# The host's waiter off: Dawn's poll loop spinning the main thread through every readback.
bench l1b-q4_0-spin $L --type q4_0 --modes per-layer,looped:16 --host-wait spin
bench stories260K-q4_0-gguf --model "$KLOOP_MODELS/quant/stories260K-Q4_0.gguf" --modes per-op,per-layer,looped,looped:16 --tokens 256 --repeat 5
/tmp/node scripts/gpu-host/summary.mjs "$work"/bench-*.json | tee "$work/summary.txt"
save; stamp "done"
