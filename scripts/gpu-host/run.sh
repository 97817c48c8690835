#!/usr/bin/env bash
# Runs on the GPU host from the repository root with .carry/ (see pack.sh) present: unpacks
# Node and Dawn, prints the adapter, checks every mode against the CPU reference, then
# benchmarks every mode on stories260K and on real-shaped synthetic models. Results go to
# ${OUT:-/tmp/kloop-out}. KLOOP_RUN_CHECK=0 skips the check; KLOOP_BENCHES picks benchmarks.
set -uo pipefail
out=${OUT:-/tmp/kloop-out}
mkdir -p "$out"
c=.carry
xz -dc $c/node.xz > /tmp/node && chmod +x /tmp/node
mkdir -p /tmp/kloop/node_modules && cp -r $c/webgpu /tmp/kloop/node_modules/
xz -dc $c/webgpu/dist/linux-x64/dawn.node.xz > /tmp/kloop/node_modules/webgpu/dist/linux-x64/dawn.node
cp $c/kloop.mjs $c/kloop-check.mjs /tmp/kloop/
export KLOOP_MODELS=$PWD/$c/models KLOOP_FIXTURES=$PWD/$c/fixtures
k() { (cd /tmp/kloop && /tmp/node kloop.mjs "$@"); }
k devices 2>&1 | tee "$out/devices.txt"
if [ "${KLOOP_RUN_CHECK:-1}" = 1 ]; then
  (cd /tmp/kloop && KLOOP_CHECK_OUT=$out/check.json /tmp/node kloop-check.mjs) 2>&1 | tee "$out/check.txt"
fi
benches=" ${KLOOP_BENCHES:-stories260K stories110M llama-3.2-1b llama-3.2-1b-f16 llama-3.2-1b-q8_0 llama-3.2-1b-q4_0 llama-3.2-1b-q4_k llama-3.2-1b-q4_0-subgroups-off llama-3.2-1b-q4_0-pad-off llama-3.2-1b-f16-subgroups-off llama-3.2-1b-f16-pad-off llama-3.2-1b-q8_0-subgroups-off llama-3.2-1b-q8_0-pad-off llama-3.2-1b-q4_0-wg1024 llama-3.2-1b-f16-wg1024 stories260K-q4_0-gguf} "
bench() { local name=$1; shift; [[ $benches == *" $name "* ]] || return 0; timeout "${BENCH_TIMEOUT:-150}" bash -c "cd /tmp/kloop && /tmp/node kloop.mjs bench $* --json" > "$out/bench-$name.json" 2> "$out/bench-$name.err"; echo "bench $name: exit $?"; tail -3 "$out/bench-$name.err"; }
bench stories260K --model "$KLOOP_MODELS/stories260K/stories260K.bin" --modes per-op,per-layer,looped,looped:16,looped:64 --tokens 256 --repeat 5 --predict --prompt-tokens 256
bench stories110M --shape stories110M --modes per-op,per-layer,looped,looped:16 --tokens 64 --repeat 3 --predict
bench llama-3.2-1b --shape Llama-3.2-1B --modes ${LLAMA_MODES:-per-op,per-layer,looped,looped:16} --tokens 32 --repeat 3
# Packed weights: the same shape in each encoding (synthetic blocks), looped:16 against per-layer.
for t in ${KLOOP_TYPES:-f16 q8_0 q4_0 q4_k}; do
  bench "llama-3.2-1b-$t" --shape Llama-3.2-1B --type "$t" --modes per-layer,looped:16 --tokens 32 --repeat 3
done
# The GPU defaults each turned off, for the comparison: the lanes of a row summed by a
# shared-memory tree instead of subgroup operations, and the staged input without padding.
for t in ${KLOOP_OFF_TYPES:-f32 f16 q8_0 q4_0}; do
  bench "llama-3.2-1b-$t-subgroups-off" --shape Llama-3.2-1B --type "$t" --modes looped:16 --tokens 32 --repeat 3 --subgroups off
  bench "llama-3.2-1b-$t-pad-off" --shape Llama-3.2-1B --type "$t" --modes looped:16 --tokens 32 --repeat 3 --pad-staging off
done
# The same encodings with 1024-invocation workgroups (32 warps per SM instead of 8).
for t in ${KLOOP_WG_TYPES:-f32 f16 q8_0 q4_0}; do
  bench "llama-3.2-1b-$t-wg1024" --shape Llama-3.2-1B --type "$t" --modes per-layer,looped:16 --tokens 32 --repeat 3 --workgroup-size 1024
done
bench llama-3.2-1b-q4_0-predict --shape Llama-3.2-1B --type q4_0 --modes looped:16 --tokens 32 --repeat 3 --predict --prompt-tokens 256
bench stories260K-q4_0-gguf --model "$KLOOP_MODELS/quant/stories260K-Q4_0.gguf" --modes per-op,per-layer,looped,looped:16 --tokens 256 --repeat 5
for f in "$out"/bench-*.json; do
  /tmp/node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); console.log(r.model.name, "|", r.model.weightTypes, "|", r.device.description, "|", r.copyBandwidthGBps.toFixed(0), "GB/s copy |", r.results.map(x=>x.mode+" "+x.tokensPerSecond.toFixed(0)+" tok/s ["+x.spread.min.toFixed(0)+"-"+x.spread.max.toFixed(0)+"] "+(x.bytesPerToken/1e6).toFixed(1)+" MB/tok "+x.percentOfCopyBandwidth.toFixed(0)+"%").join(", "), (r.prefill||[]).map(p=>"| prefill "+p.mode+" "+p.tokensPerSecond.toFixed(0)+" tok/s ("+p.overDecode.toFixed(1)+"x decode)").join(" "))' "$f" 2>/dev/null || echo "$f: no report"
done
