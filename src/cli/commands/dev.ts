import { list, say, str, type CommandSpec } from '../command';
import { uiCodecEndpoint } from './codec-server';
import { PROJECT_OPTIONS, resolveProject } from '../project';
import { connectClient, devPorts } from '../temporal';
import { devServer, workerHost } from '../lazy';
import { BOARD_OPTIONS, hostBoard, printBoard } from '../board-host';

export const devCommand: CommandSpec = {
  name: 'dev',
  summary: 'start the embedded Temporal dev server (durable, with Web UI) and a worker for the project',
  options: {
    port: { type: 'string', value: 'port', description: 'Temporal gRPC port (default $KAON_DEV_PORT or 7233); reuses a server already there' },
    'ui-port': { type: 'string', value: 'port', description: 'Web UI port (default $KAON_DEV_UI_PORT or port + 1000)' },
    queues: { type: 'string', multiple: true, value: 'a,b', description: 'queues the worker serves (default: all)' },
    'task-queue': { type: 'string', value: 'name', description: 'task queue of the pipelines (default $KAON_TASK_QUEUE or kaon)' },
    grace: { type: 'string', value: 'duration', description: 'on Ctrl-C, how long in-flight steps may finish (default 30s)' },
    ...BOARD_OPTIONS,
    ...PROJECT_OPTIONS,
  },
  notes: ['State lives in .kaon/temporal.db (KAON_HOME moves .kaon/), so runs survive restarts.'],
  async run({ io, values }) {
    const project = resolveProject(io.cwd, { workflows: str(values, 'workflows'), activities: str(values, 'activities') });
    const { port, uiPort } = devPorts('dev', values, io.env);
    say(io.stdout, `kaon dev: starting the Temporal dev server on 127.0.0.1:${port} (the first start installs the Temporal CLI into .kaon/)…`);
    const { startDevServer } = devServer();
    const { hostWorker, runUntilSignal } = workerHost();
    const server = await startDevServer({ port, uiPort, ...uiCodecEndpoint(io.env), say: (m) => say(io.stderr, m) });
    try {
      say(io.stdout, `kaon dev: Temporal ${server.address} (namespace ${server.namespace})${server.owned ? '' : ', already running: reused'}`);
      if (server.uiUrl) say(io.stdout, `kaon dev: Web UI   ${server.uiUrl}`);
      if (port !== 7233) say(io.stdout, `kaon dev: other shells: export TEMPORAL_ADDRESS=${server.address} KAON_UI_URL=${server.uiUrl ?? ''}`);
      const hosted = await hostWorker(io, project, {
        label: 'kaon dev',
        queues: list(values, 'queues'),
        taskQueue: str(values, 'task-queue'),
        grace: str(values, 'grace'),
        server: { address: server.address, namespace: server.namespace },
      });
      const client = await connectClient(io.env, { address: server.address, namespace: server.namespace, ui: server.uiUrl, taskQueue: hosted.taskQueue });
      try {
        const board = await hostBoard(io, client.kaon, client.target.ui, values, 'kaon dev');
        try {
          printBoard(io, board, 'kaon dev');
          await runUntilSignal(io, hosted, 'kaon dev');
        } finally {
          await board.close();
        }
      } finally {
        await client.close();
      }
    } finally {
      if (server.owned) {
        say(io.stdout, 'kaon dev: stopping the Temporal dev server');
        await server.stop();
      }
    }
    return 0;
  },
};
