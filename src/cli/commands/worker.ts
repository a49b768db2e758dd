import { list, str, type CommandSpec } from '../command';
import { PROJECT_OPTIONS, resolveProject } from '../project';
import { hostWorker, runUntilSignal } from '../worker-host';

export const workerCommand: CommandSpec = {
  name: 'worker',
  summary: "run a worker for the project's pipelines and steps (connects through TEMPORAL_* envconfig)",
  options: {
    queues: { type: 'string', multiple: true, value: 'a,b', description: "queues to serve: 'default' (pipelines + steps without a queue) and step queues (default: all)" },
    'task-queue': { type: 'string', value: 'name', description: 'task queue of the pipelines (default $KAON_TASK_QUEUE or kaon)' },
    grace: { type: 'string', value: 'duration', description: 'on SIGINT/SIGTERM, how long in-flight steps may finish (default 30s)' },
    ...PROJECT_OPTIONS,
  },
  notes: ['Examples:', '  kaon worker', '  TEMPORAL_ADDRESS=temporal.internal:7233 kaon worker --queues python --grace 5m'],
  async run({ io, values }) {
    const project = resolveProject(io.cwd, { workflows: str(values, 'workflows'), activities: str(values, 'activities') });
    const hosted = await hostWorker(io, project, { label: 'kaon worker', queues: list(values, 'queues'), taskQueue: str(values, 'task-queue'), grace: str(values, 'grace') });
    await runUntilSignal(io, hosted, 'kaon worker');
    return 0;
  },
};
