// Starting the board from the CLI (`kaon board`, and inside `kaon dev` / `kaon demo`): build the front end when a
// source checkout needs it, open the artifact store the workers use, listen, print the URL with the token.
import type { KaonClient } from '../client';
import { KaonError } from '../definition/errors';
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
  const opts = { kaon, artifacts: await openStore(io), ui, host, assetsDir, ...(io.env.KAON_BOARD_TOKEN ? { token: io.env.KAON_BOARD_TOKEN } : {}) };
  try {
    return await startBoard({ ...opts, port });
  } catch (err) {
    // The default port taken (another board, another tool): any free port will do; an explicit one is an error.
    if (explicit || !(err instanceof KaonError) || !/EADDRINUSE/.test(err.message)) throw err;
    return startBoard({ ...opts, port: 0 });
  }
}

export function printBoard(io: CliIo, board: Board, label: string): void {
  say(io.stdout, `${label}: board  ${board.tokenUrl}`);
}
