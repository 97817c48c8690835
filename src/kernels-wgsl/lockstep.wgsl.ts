/**
 * The lockstep form of the kernels, for CPU adapters that run a workgroup as ONE SIMD row.
 *
 * llvmpipe compiles a compute shader into vector code over a row of invocations (8 lanes with
 * AVX) and turns every workgroup or storage barrier into a coroutine suspend point, so that the
 * rows of a workgroup take turns. A suspend point inside a loop is expensive: the looped kernel's
 * token and layer loops hold every stage's barriers, and the same stage code runs about 2x slower
 * there than in a kernel whose barriers are not inside a loop (measured on stories15M's shape:
 * one layer, K = 1, 18 against 40 tokens/s with the token loop removed; without barriers 55).
 * Our reading is that the loop variables then live in the coroutine frame instead of registers;
 * the figures do not depend on it. When the workgroup IS one row, its
 * invocations already execute each statement together, in program order, in one thread: a
 * barrier orders nothing more. So such adapters get the kernels without barriers. Whether an
 * adapter runs a workgroup of a given size in lockstep is measured (LOCKSTEP_PROBE below), never
 * assumed; kernels whose workgroups talk to other workgroups (grid sync) keep their barriers.
 */

/**
 * Probe: a workgroup of `width` invocations passes values around a ring through workgroup and
 * storage memory with no barrier. In lockstep every read sees the previous statement's writes
 * of all lanes; rows that run one after another (SwiftShader's 4-lane rows, or a real GPU's
 * independent warps racing) read zeros or stale values instead. 64 workgroups, so the adapter's
 * thread pool is exercised too.
 */
export const lockstepProbeWgsl = (width: number): string => /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
var<workgroup> ring: array<u32, ${width}>;
@compute @workgroup_size(${width}) fn probe(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3u) {
  let base = wid.x * ${3 * width}u;
  ring[lid] = lid + 1u + wid.x;
  let a = ring[(lid + 1u) % ${width}u];
  ring[lid] = a * 3u;
  let b = ring[(lid + ${width - 1}u) % ${width}u];
  out[base + lid] = b + 7u;
  let c = out[base + (lid + 3u) % ${width}u];
  out[base + ${width}u + lid] = a;
  out[base + ${2 * width}u + lid] = c;
}`;

/** What the probe writes in lockstep (workgroups of `width`, `groups` of them). */
export function lockstepProbeExpected(width: number, groups: number): Uint32Array {
  const out = new Uint32Array(groups * 3 * width);
  for (let g = 0; g < groups; g++) {
    const first = (l: number) => l + 1 + g;
    const a = (l: number) => first((l + 1) % width);
    const b = (l: number) => 3 * a((l + width - 1) % width);
    for (let l = 0; l < width; l++) {
      out[g * 3 * width + l] = b(l) + 7;
      out[g * 3 * width + width + l] = a(l);
      out[g * 3 * width + 2 * width + l] = b((l + 3) % width) + 7;
    }
  }
  return out;
}

/** The lockstep form of a module: the same code without workgroup and storage barriers. */
export function withoutBarriers(code: string): string {
  return code.replaceAll('workgroupBarrier();', '').replaceAll('storageBarrier();', '');
}
