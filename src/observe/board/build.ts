// Build the board's front end (src/observe/board/ui) into static assets with esbuild: index.html, board.js,
// board.css in dist/board (git-ignored). `npm run build:board`; the board also runs it on first use in a source
// checkout when the assets are missing or older than their sources.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** The front end's sources: next to this file in src/, or (running from a compiled dist/) in the checkout's src/. */
export const BOARD_UI_DIR = [path.resolve(__dirname, 'ui'), path.resolve(__dirname, '..', '..', '..', 'src', 'observe', 'board', 'ui')].find((d) => existsSync(path.join(d, 'main.ts'))) ?? path.resolve(__dirname, 'ui');
/** Same place from src/observe/board and from a compiled dist/observe/board. */
export const BOARD_ASSETS_DIR = path.resolve(__dirname, '..', '..', '..', 'dist', 'board');

async function newest(dir: string): Promise<number> {
  let t = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? await newest(p) : (await stat(p)).mtimeMs);
  }
  return t;
}

/** Whether the assets need a build: missing, or older than a source file (only in a source checkout). */
export async function boardAssetsStale(outDir = BOARD_ASSETS_DIR, uiDir = BOARD_UI_DIR): Promise<boolean> {
  const built = await stat(path.join(outDir, 'board.js')).then((s) => s.mtimeMs, () => 0);
  if (!built) return true;
  const src = await stat(uiDir).then(() => newest(uiDir), () => 0);
  return src > built;
}

export async function buildBoardAssets(outDir = BOARD_ASSETS_DIR, uiDir = BOARD_UI_DIR): Promise<string> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch (err) {
    throw new Error(`building the board needs esbuild (a devDependency of Kaon): ${(err as Error).message}. To fix: run \`npm install\` in the Kaon checkout, then \`npm run build:board\``);
  }
  await mkdir(outDir, { recursive: true });
  await esbuild.build({
    entryPoints: [path.join(uiDir, 'main.ts')],
    bundle: true,
    format: 'iife',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    outfile: path.join(outDir, 'board.js'),
    logLevel: 'warning',
    legalComments: 'linked',
  });
  await copyFile(path.join(uiDir, 'index.html'), path.join(outDir, 'index.html'));
  await copyFile(path.join(uiDir, 'board.css'), path.join(outDir, 'board.css'));
  return outDir;
}

/** Build when stale; a built package without the ui sources uses what it ships. */
export async function ensureBoardAssets(say?: (m: string) => void): Promise<string> {
  const haveSources = await stat(path.join(BOARD_UI_DIR, 'main.ts')).then(() => true, () => false);
  if (haveSources && (await boardAssetsStale())) {
    say?.('building the board front end (esbuild)…');
    await buildBoardAssets();
  }
  return BOARD_ASSETS_DIR;
}

if (require.main === module) {
  buildBoardAssets().then(
    (dir) => process.stdout.write(`board assets built in ${dir}\n`),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
