import { ErrorCode, KaonError, parseOrThrow } from '../../definition/errors';
import { startDevServer } from '../../runtime/dev-server';
import { say, str, type CommandSpec } from '../command';
import { findPipeline, loadPipelines, PROJECT_OPTIONS, resolveProject } from '../project';
import { connectClient, devPorts, runUrl } from '../temporal';
import { awaitOutcome, reportOutcome } from '../watch';
import { hostWorker } from '../worker-host';

export const demoCommand: CommandSpec = {
  name: 'demo',
  summary: 'the quick start: dev server + worker in this process, run the demo pipeline live, print its result',
  options: {
    port: { type: 'string', value: 'port', description: 'Temporal gRPC port (default $KAON_DEV_PORT or 7233); reuses a server already there' },
    'ui-port': { type: 'string', value: 'port', description: 'Web UI port (default $KAON_DEV_UI_PORT or port + 1000)' },
    'task-queue': { type: 'string', value: 'name', description: 'task queue of the pipelines (default $KAON_TASK_QUEUE or kaon)' },
    trainer: { type: 'string', value: 'name', description: "the demo pipeline's trainer param, e.g. spark-als (Spark MLlib ALS; needs Java 17+) instead of the default sklearn" },
    ...PROJECT_OPTIONS,
  },
  notes: ['The pipeline and params come from package.json: "kaon": { "demo": { "pipeline": "ml-demo", "params": {} } }.'],
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
    const server = await startDevServer({ port, uiPort, say: (m) => say(io.stderr, m) });
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
        try {
          const { run, outcome } = await hosted.worker.runUntil(async () => {
            const run = await kaon.start(pipeline, params);
            say(io.stdout, `kaon demo: started ${pipeline.kaon.name} run ${run.id}`);
            const url = runUrl(target, run.id);
            if (url) say(io.stdout, `kaon demo: follow it in the Web UI: ${url}`);
            say(io.stdout);
            return { run, outcome: await awaitOutcome(run, { io, namespace: target.namespace, watch: true }) };
          });
          return reportOutcome(io, run, target, outcome);
        } finally {
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
