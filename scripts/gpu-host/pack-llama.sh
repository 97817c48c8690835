#!/usr/bin/env bash
# Packs node-llama-cpp (the llama.cpp reference for the GPU host) with its Vulkan prebuilt
# binaries and every runtime dependency into .carry-llama/llama.tar.xz (ignored by git), for a
# Linux x86-64 host with no network and no npm. The tarball holds a node_modules/ tree: extract
# it next to (or above) a script and `import { getLlama } from 'node-llama-cpp'` resolves, e.g.
#   mkdir -p /tmp/llt && tar -xJf .carry-llama/llama.tar.xz -C /tmp/llt
#   getLlama({ gpu: 'vulkan', build: 'never' })   // uses the prebuilt binary, never builds
# The host needs glibc and the Vulkan loader (libvulkan.so.1) plus its GPU's Vulkan driver; a copy
# of this machine's loader travels in vulkan-loader/ for hosts without one (LD_LIBRARY_PATH).
#   scripts/gpu-host/pack-llama.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=.carry-llama
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
[ -d node_modules/node-llama-cpp ] || { echo "node_modules/node-llama-cpp is not installed" >&2; exit 1; }

# The package folders to carry: node-llama-cpp, its `dependencies` (and installed
# `optionalDependencies`) resolved recursively the way Node does (nearest node_modules/ upwards),
# and of its platform packages only the Linux x64 Vulkan one.
node --input-type=module - > "$stage/dirs.txt" <<'EOF'
import fs from "node:fs";
import path from "node:path";
const root = path.resolve("node_modules");
const seen = new Set();
function resolveDep(fromDir, name) {
  for (let dir = fromDir; dir.startsWith(root); dir = path.dirname(dir)) {
    const base = path.basename(dir) === "node_modules" ? dir : path.join(dir, "node_modules");
    const candidate = path.join(base, name);
    if (fs.existsSync(path.join(candidate, "package.json"))) return candidate;
  }
  return null;
}
function visit(dir) {
  if (seen.has(dir)) return;
  seen.add(dir);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  for (const [name, optional] of [
    ...Object.keys(pkg.dependencies ?? {}).map((n) => [n, false]),
    ...Object.keys(pkg.optionalDependencies ?? {}).map((n) => [n, true]),
  ]) {
    if (name.startsWith("@node-llama-cpp/") && name !== "@node-llama-cpp/linux-x64-vulkan") continue;
    const dep = resolveDep(dir, name);
    if (dep == null) {
      if (optional) continue;
      throw new Error(`${pkg.name}: dependency ${name} is not installed`);
    }
    visit(dep);
  }
}
visit(path.join(root, "node-llama-cpp"));
if (![...seen].some((d) => d.endsWith("@node-llama-cpp/linux-x64-vulkan")))
  throw new Error("@node-llama-cpp/linux-x64-vulkan is not installed");
for (const dir of [...seen].sort()) console.log(path.relative(process.cwd(), dir));
EOF

# Copy each package folder without the nested node_modules/ (nested packages are listed on their
# own when they are dependencies), then prune what is never read at run time.
while read -r dir; do
  mkdir -p "$stage/tree/$dir"
  (cd "$dir" && tar -cf - --exclude=./node_modules .) | tar -xf - -C "$stage/tree/$dir"
done < "$stage/dirs.txt"
t=$stage/tree/node_modules
# llama/ is the llama.cpp source, build files and a 35 MB git bundle for building from source.
# At run time only the release info files are read (they decide whether the prebuilt binaries
# match) and grammars/ (LlamaGrammar.getFor); no llama.cpp/ folder means no local source build.
find "$t/node-llama-cpp/llama" -mindepth 1 -maxdepth 1 \
  ! -name binariesGithubRelease.json ! -name llama.cpp.info.json ! -name package.json \
  ! -name grammars -exec rm -rf {} +
# Source maps, type declarations and docs are not needed to run.
find "$t" -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \
  -o -iname '*.md' ! -iname 'license*' \) -delete
find "$t" -type d -empty -delete

mkdir -p "$stage/tree/vulkan-loader"
loader=$(ldconfig -p 2>/dev/null | awk '/libvulkan\.so\.1 .*x86-64/ {print $NF; exit}')
if [ -n "$loader" ]; then cp -L "$loader" "$stage/tree/vulkan-loader/libvulkan.so.1"; fi

rm -rf "$out" && mkdir -p "$out"
tar -C "$stage/tree" --owner=0 --group=0 --numeric-owner --sort=name -cf - . \
  | xz -T2 -9 > "$out/llama.tar.xz"
echo "$(wc -l < "$stage/dirs.txt") packages, unpacked $(du -sh "$stage/tree" | cut -f1)"
ls -l "$out/llama.tar.xz"
