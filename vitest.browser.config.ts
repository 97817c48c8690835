import { defineConfig } from 'vitest/config';

// `npm run test:browser`: the browser API in Node, the bundle, and the end-to-end run of the demo
// page in headless Chromium (WebGPU on SwiftShader). SwiftShader compiles the fused kernels
// slowly, so the timeouts are long and the files run one at a time.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
