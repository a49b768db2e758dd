import { say, str, type CommandSpec } from '../command';
import { hostBoard, printBoard } from '../board-host';
import { connectClient } from '../temporal';

export const boardCommand: CommandSpec = {
  name: 'board',
  summary: 'serve the Kaon board (runs, DAGs, steps, artifacts, cards, metrics, compare, schedules, gates) on loopback',
  options: {
    host: { type: 'string', value: 'host', description: 'address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)' },
    port: { type: 'string', value: 'port', description: 'port (default $KAON_BOARD_PORT or 8377; 0 = any free port)' },
    'ui-url': { type: 'string', value: 'url', description: 'Temporal Web UI base URL for links (default $KAON_UI_URL, or the local dev server\'s)' },
  },
  notes: [
    'The board reads Temporal (TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / envconfig) and the artifact store (KAON_ARTIFACTS), nothing else.',
    'Every page and API call needs the token: open the printed URL (…/?token=…), which sets a cookie. The token is $KAON_BOARD_TOKEN, else the file $KAON_BOARD_TOKEN_FILE, else random.',
  ],
  async run({ io, values }) {
    const ui = str(values, 'ui-url');
    const { kaon, target, close } = await connectClient(io.env, { who: 'kaon board', ...(ui ? { ui } : {}) });
    try {
      const board = await hostBoard(io, kaon, ui ?? target.ui, values, 'kaon board', { host: 'host', port: 'port' });
      try {
        say(io.stdout, `kaon board: Temporal ${target.address} (namespace ${target.namespace})`);
        printBoard(io, board, 'kaon board');
        say(io.stdout, 'kaon board: Ctrl-C to stop');
        await new Promise<void>((resolve) => {
          if (io.signal?.aborted) resolve();
          else io.signal?.addEventListener('abort', () => resolve(), { once: true });
        });
      } finally {
        await board.close();
      }
    } finally {
      await close();
    }
    return 0;
  },
};
