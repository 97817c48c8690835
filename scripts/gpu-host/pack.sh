#!/usr/bin/env bash
# Packs kloop for a Linux x86-64 host that has a GPU but no Node.js and no network: the Node
# binary (xz), the CLI and the correctness check bundled by esbuild, Dawn's dawn.node, the small
# real models and fixtures, into .carry/ (ignored by git). On the host, run scripts/gpu-host/run.sh.
#   scripts/gpu-host/pack.sh [MODELS_DIR] [FIXTURES_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
models=${1:-${KLOOP_MODELS:-../shared/models}}
fixtures=${2:-$(dirname "$models")/fixtures}
out=.carry
rm -rf "$out" && mkdir -p "$out/webgpu/dist/linux-x64" "$out/models" "$out/fixtures"
xz -T2 -6 -c "$(command -v node)" > "$out/node.xz"
cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$out/webgpu/"
xz -T2 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > "$out/webgpu/dist/linux-x64/dawn.node.xz"
common=(--bundle --platform=node --format=esm --external:webgpu --external:node-llama-cpp --log-level=warning
  "--banner:js=import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);")
npx esbuild src/cli/main.ts "${common[@]}" --outfile="$out/kloop.mjs"
npx esbuild scripts/gpu-host/check.ts "${common[@]}" --outfile="$out/kloop-check.mjs"
for m in stories260K aidreams260K; do
  mkdir -p "$out/models/$m" && cp "$models/$m"/*.bin "$out/models/$m/"
done
[ -d "$fixtures/stories260K" ] && cp -r "$fixtures/stories260K" "$out/fixtures/"
# The quantized GGUF files (llama.cpp's quantizer) and their fixtures.
[ -d "$models/quant" ] && mkdir -p "$out/models/quant" && cp "$models/quant"/*.gguf "$out/models/quant/"
[ -d "$fixtures/quant" ] && cp -r "$fixtures/quant" "$out/fixtures/"
cp scripts/gpu-host/run.sh scripts/gpu-host/summary.mjs "$out/"
du -sh "$out"
# llama.cpp's Vulkan build for the same-card peer (bench --llama-gpu vulkan), when installed.
if [ -d node_modules/@node-llama-cpp/linux-x64-vulkan ]; then bash scripts/gpu-host/pack-llama.sh; fi
