import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { explainSystemError } from '../definition/system-errors';

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
  if (!process.env.KAON_HOME) return path.join(projectRoot(), '.kaon');
  return checkKaonHome(path.resolve(process.env.KAON_HOME));
}

/**
 * A KAON_HOME that is a file (or lies under one) fails every later mkdir with a bare ENOTDIR/EEXIST: refuse it
 * here, naming the setting. A missing folder is fine (it is created on first use).
 */
export function checkKaonHome(dir: string, setting = 'KAON_HOME'): string {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return dir;
    throw explainSystemError(err, { doing: 'opening the Kaon home folder', setting, path: dir }) ?? err;
  }
  if (isDir) return dir;
  const notDir = Object.assign(new Error(`ENOTDIR: not a directory, '${dir}'`), { code: 'ENOTDIR', path: dir });
  throw explainSystemError(notDir, { doing: 'opening the Kaon home folder', setting, path: dir })!;
}

/** The folder of the Kaon package itself (for its shipped helpers). */
export const KAON_PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
