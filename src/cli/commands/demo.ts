import { ErrorCode, KaonError, parseOrThrow } from '../../definition/errors';
import { uiCodecEndpoint } from './codec-server';
import { say, str, type CommandSpec } from '../command';
import { findPipeline, loadPipelines, PROJECT_OPTIONS, resolveProject } from '../project';
import { connectClient, devPorts, runUrl } from '../temporal';
import { awaitOutcome, reportOutcome } from '../watch';
import { devServer, workerHost } from '../lazy';
import { BOARD_OPTIONS, hostBoard } from '../board-host';

export const demoCommand: CommandSpec = {
  name: 'demo',
  summary: 'the quick start: dev server + worker in this process, run the demo pipeline live, print its result',
  options: {
    port: { type: 'string', value: 'port', description: 'Temporal gRPC port (default $KAON_DEV_PORT or 7233); reuses a server already there' },
    'ui-port': { type: 'string', value: 'port', description: 'Web UI port (default $KAON_DEV_UI_PORT or port + 1000)' },
    'task-queue': { type: 'string', value: 'name', description: 'task queue of the pipelines (default $KAON_TASK_QUEUE or kaon)' },
    ...BOARD_OPTIONS,
    trainer: { type: 'string', value: 'name', description: "the demo pipeline's trainer param, e.g. spark-als (Spark MLlib ALS; needs Java 17+) instead of the default sklearn" },
    ...PROJECT_OPTIONS,
  },
  notes: [
    'The pipeline and params come from package.json: "kaon": { "demo": { "pipeline": "ml-demo", "params": {} } }.',
    'In a terminal the board stays open after the run (Ctrl-C ends the demo); KAON_DEMO_KEEP=1 or 0 decides elsewhere.',
  ],
  async run({ io, values }) {
    const project = resolveProject(io.cwd, { workflows: str(values, 'workflows'), activities: str(values, 'activities') });
    const pipeline = findPipeline(loadPipelines(project.workflows), project.demo.pipeline, project.workflows);
    const trainer = str(values, 'trainer');
    const shape = (pipeline.kaon.params as { shape?: Record<string, unknown> }).shape;
    if (trainer !== undefined && !(shape && 'trainer' in shape)) {
      throw new KaonError({
        code: ErrorCode.invalidParams,
        what: `--trainer ${trainer}: the demo pipeline "${pipeline.kaon.name}" has no trainer param`,
        fix: 'leave --trainer out, or set "kaon": { "demo": { "pipeline": "retrain-recommender" } } in package.json',
      });
    }
    const params = trainer === undefined ? project.demo.params : { ...(project.demo.params as Record<string, unknown>), trainer };
    parseOrThrow(pipeline.kaon.params, params, {
      code: ErrorCode.invalidParams,
      subject: `params of the demo pipeline "${pipeline.kaon.name}"`,
      fix: 'correct "kaon": { "demo": { "params": … } } in package.json to match the pipeline schema',
    });
    const { port, uiPort } = devPorts('demo', values, io.env);
    say(io.stdout, `kaon demo: starting the Temporal dev server on 127.0.0.1:${port} (the first start installs the Temporal CLI into .kaon/)…`);
    const { startDevServer } = devServer();
    const { hostWorker } = workerHost();
    const server = await startDevServer({ port, uiPort, ...uiCodecEndpoint(io.env), say: (m) => say(io.stderr, m) });
    try {
      say(io.stdout, `kaon demo: Temporal ${server.address}${server.owned ? '' : ' (already running: reused)'}${server.uiUrl ? `, Web UI ${server.uiUrl}` : ''}`);
      io.signal?.throwIfAborted();
      say(io.stdout, 'kaon demo: bundling the pipelines and starting a worker…');
      const hosted = await hostWorker(io, project, {
        label: 'kaon demo',
        taskQueue: str(values, 'task-queue'),
        grace: '5s',
        logLevel: 'WARN',
        server: { address: server.address, namespace: server.namespace },
      });
      try {
        const { kaon, target, close } = await connectClient(io.env, { address: server.address, namespace: server.namespace, ui: server.uiUrl, taskQueue: hosted.taskQueue });
        const board = await hostBoard(io, kaon, target.ui, values, 'kaon demo');
        try {
          const keep = io.env.KAON_DEMO_KEEP !== undefined ? io.env.KAON_DEMO_KEEP === '1' : io.stdout.isTTY === true;
          const { code } = await hosted.worker.runUntil(async () => {
            const run = await kaon.start(pipeline, params);
            say(io.stdout, `kaon demo: started ${pipeline.kaon.name} run ${run.id}`);
            say(io.stdout, `kaon demo: watch its DAG fill in on the board: ${board.url}?token=${encodeURIComponent(board.token)}#/run?id=${encodeURIComponent(run.id)}`);
            const url = runUrl(target, run.id);
            if (url) say(io.stdout, `kaon demo: follow it in the Web UI: ${url}`);
            say(io.stdout);
            const outcome = await awaitOutcome(run, { io, namespace: target.namespace, watch: true });
            const code = reportOutcome(io, run, target, outcome);
            if (keep && !io.signal?.aborted) {
              // The worker keeps serving, so the board's queries of the finished run still answer.
              say(io.stdout, `kaon demo: the board stays open at ${board.tokenUrl} (model cards, artifacts); Ctrl-C to exit`);
              await new Promise<void>((resolve) => (io.signal ? io.signal.addEventListener('abort', () => resolve(), { once: true }) : resolve()));
            }
            return { code };
          });
          return code;
        } finally {
          await board.close();
          await close();
        }
      } finally {
        await hosted.connection.close();
      }
    } finally {
      if (server.owned) await server.stop();
    }
  },
};
