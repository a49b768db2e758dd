import { existsSync } from 'node:fs';
import path from 'node:path';

/** The project root: the nearest folder upwards from cwd with a package.json (falls back to cwd). */
export function projectRoot(from = process.cwd()): string {
  let dir = path.resolve(from);
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return path.resolve(from);
    dir = up;
  }
}

/** Where Kaon caches what it provisions (Temporal CLI, Python envs, the dev database, artifacts). Git-ignored. */
export function kaonHome(): string {
  return process.env.KAON_HOME ? path.resolve(process.env.KAON_HOME) : path.join(projectRoot(), '.kaon');
}

/** The folder of the Kaon package itself (for its shipped helpers). */
export const KAON_PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
