import { ErrorCode, KaonError } from '../../definition/errors';
import { flag, list, str, type CommandSpec } from '../command';
import { PROJECT_OPTIONS, resolveProject } from '../project';
import { workerHost } from '../lazy';

export const workerCommand: CommandSpec = {
  name: 'worker',
  summary: "run a worker for the project's pipelines and steps (connects through TEMPORAL_* envconfig)",
  options: {
    queues: { type: 'string', multiple: true, value: 'a,b', description: "queues to serve: 'default' (pipelines + steps without a queue) and step queues (default: all)" },
    'task-queue': { type: 'string', value: 'name', description: 'task queue of the pipelines (default $KAON_TASK_QUEUE or kaon)' },
    grace: { type: 'string', value: 'duration', description: 'on SIGINT/SIGTERM, how long in-flight steps may finish (default 30s)' },
    'build-id': { type: 'string', value: 'id', description: 'Worker Versioning: serve this build (default $KAON_BUILD_ID); runs stay on the build they started on' },
    deployment: { type: 'string', value: 'name', description: 'Worker Versioning: the deployment (default $KAON_DEPLOYMENT or kaon)' },
    current: { type: 'boolean', description: "make this build current once it polls (default: only a deployment's first build)" },
    metrics: { type: 'string', value: '[host]:port', description: "serve Prometheus metrics (Kaon's kaon_* and the SDK's temporal_*) at http://host:port/metrics; ':9464' listens on 127.0.0.1" },
    ...PROJECT_OPTIONS,
  },
  notes: [
    'Examples:',
    '  kaon worker',
    '  TEMPORAL_ADDRESS=temporal.internal:7233 kaon worker --queues python --grace 5m',
    '  kaon worker --build-id $(git rev-parse --short HEAD) --current   # a deploy: new runs start on this build',
    '  kaon worker --metrics :9464                                        # Prometheus scrapes http://127.0.0.1:9464/metrics',
    '  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 kaon worker      # traces: a run is one trace, a span per step',
  ],
  async run({ io, values }) {
    const project = resolveProject(io.cwd, { workflows: str(values, 'workflows'), activities: str(values, 'activities') });
    const buildId = str(values, 'build-id') ?? io.env.KAON_BUILD_ID;
    const name = str(values, 'deployment') ?? io.env.KAON_DEPLOYMENT;
    if (!buildId && (name || flag(values, 'current'))) {
      throw new KaonError({ code: ErrorCode.config, what: '--deployment and --current need a build id', fix: 'add --build-id <id> (or set KAON_BUILD_ID), e.g. the git commit' });
    }
    const deployment = buildId ? { buildId, ...(name ? { name } : {}), current: flag(values, 'current') ? true : ('if-none' as const) } : undefined;
    const { hostWorker, runUntilSignal } = workerHost();
    const hosted = await hostWorker(io, project, { label: 'kaon worker', queues: list(values, 'queues'), taskQueue: str(values, 'task-queue'), grace: str(values, 'grace'), deployment, metrics: str(values, 'metrics') ?? (io.env.KAON_METRICS || undefined) });
    await runUntilSignal(io, hosted, 'kaon worker');
    return 0;
  },
};
