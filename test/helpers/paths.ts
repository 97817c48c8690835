/**
 * Where the shared read-only data lives: $KLOOP_MODELS, else ../shared/models relative to the
 * repository root; fixtures in ../shared/fixtures.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const repoRoot = path.resolve(here, '../..');
export const modelsDir = process.env.KLOOP_MODELS ?? path.resolve(repoRoot, '../shared/models');
export const fixturesDir = path.resolve(repoRoot, '../shared/fixtures');
