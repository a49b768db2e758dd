// Starting the board from the CLI (`kaon board`, and inside `kaon dev` / `kaon demo`): build the front end when a
// source checkout needs it, open the artifact store the workers use, listen, print the URL with the token.
import type { KaonClient } from '../client';
import { readFileSync } from 'node:fs';
import { ErrorCode, KaonError } from '../definition/errors';
import { ensureBoardAssets } from '../observe/board/build';
import { startBoard, type Board } from '../observe/board/server';
import { int, say, str, type CliIo, type OptionSpec, type OptionValues } from './command';
import { openStore } from './store';

export const DEFAULT_BOARD_PORT = 8377;

export const BOARD_OPTIONS: Record<string, OptionSpec> = {
  'board-host': { type: 'string', value: 'host', description: 'address the board listens on (default 127.0.0.1; 0.0.0.0 exposes it)' },
  'board-port': { type: 'string', value: 'port', description: `board port (default $KAON_BOARD_PORT or ${DEFAULT_BOARD_PORT}; a busy port falls back to a free one; 0 = any)` },
};

export async function hostBoard(io: CliIo, kaon: KaonClient, ui: string | undefined, values: OptionValues, label: string, names = { host: 'board-host', port: 'board-port' }): Promise<Board> {
  const host = str(values, names.host) ?? io.env.KAON_BOARD_HOST ?? '127.0.0.1';
  const explicit = values[names.port] !== undefined || io.env.KAON_BOARD_PORT !== undefined;
  const port = int(label, { [names.port]: values[names.port] ?? io.env.KAON_BOARD_PORT }, names.port, DEFAULT_BOARD_PORT, 0);
  const assetsDir = await ensureBoardAssets((m) => say(io.stderr, `${label}: ${m}`));
  const token = boardToken(io.env);
  const opts = { kaon, artifacts: await openStore(io), ui, host, assetsDir, ...(token ? { token } : {}) };
  try {
    return await startBoard({ ...opts, port });
  } catch (err) {
    // The default port taken (another board, another tool): any free port will do; an explicit one is an error.
    if (explicit || !(err instanceof KaonError) || !/EADDRINUSE/.test(err.message)) throw err;
    return startBoard({ ...opts, port: 0 });
  }
}

/** The board's token: $KAON_BOARD_TOKEN, else the first line of $KAON_BOARD_TOKEN_FILE, else undefined (random). */
export function boardToken(env: NodeJS.ProcessEnv): string | undefined {
  if (env.KAON_BOARD_TOKEN) return checkToken(env.KAON_BOARD_TOKEN, 'KAON_BOARD_TOKEN');
  const file = env.KAON_BOARD_TOKEN_FILE;
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KaonError({ code: ErrorCode.config, what: `the board token file ${file} (KAON_BOARD_TOKEN_FILE) cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, fix: 'point KAON_BOARD_TOKEN_FILE at a readable file holding the token (e.g. `openssl rand -hex 24 > ~/.kaon/board-token`), or unset it for a random token', cause: err });
  }
  return checkToken(text.split(/\r?\n/)[0]!.trim(), `KAON_BOARD_TOKEN_FILE (${file})`);
}

function checkToken(token: string, where: string): string {
  if (!/^[A-Za-z0-9._~+-]{16,512}$/.test(token)) {
    throw new KaonError({ code: ErrorCode.config, what: `the board token in ${where} is not 16–512 characters of letters, digits and ._~+-`, fix: 'use e.g. $(openssl rand -hex 24)' });
  }
  return token;
}

export function printBoard(io: CliIo, board: Board, label: string): void {
  say(io.stdout, `${label}: board  ${board.tokenUrl}`);
}
