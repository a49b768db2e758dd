import { ErrorCode, parseOrThrow } from '../../definition/errors';
import { flag, say, str, type CommandSpec } from '../command';
import { parseParams } from '../params';
import { findPipeline, loadPipelines, PROJECT_OPTIONS, resolveProject } from '../project';
import { connectClient, runUrl } from '../temporal';
import { awaitOutcome, reportOutcome } from '../watch';

export const runCommand: CommandSpec = {
  name: 'run',
  summary: 'start a pipeline run (validates params first); --wait or --watch to follow it',
  args: [{ name: 'pipeline', required: true, description: "the pipeline's name, e.g. ml-demo" }],
  options: {
    params: { type: 'string', value: 'json|@file', description: "params as JSON, @file or file.json (default {})" },
    'run-key': { type: 'string', value: 'key', description: 'idempotency key: the same key returns the existing run' },
    'no-cache': { type: 'boolean', description: "bypass every step's cache for this run" },
    wait: { type: 'boolean', description: 'wait for the result and print it (exit 1 if the run fails)' },
    watch: { type: 'boolean', description: 'show live progress until the run ends, then the result' },
    json: { type: 'boolean', description: 'with --wait/--watch: print the outcome as JSON' },
    'task-queue': { type: 'string', value: 'name', description: 'task queue of the pipelines (default $KAON_TASK_QUEUE or kaon)' },
    ...PROJECT_OPTIONS,
  },
  notes: ['Examples:', `  kaon run ml-demo --params '{"seed": 3, "rows": 300}' --watch`, '  kaon run ml-demo --params @params.json --run-key 2026-11-22'],
  async run({ io, values, positionals }) {
    const name = positionals[0]!;
    const params = parseParams(str(values, 'params'), io.cwd);
    const project = resolveProject(io.cwd, { workflows: str(values, 'workflows'), activities: str(values, 'activities') });
    const pipeline = findPipeline(loadPipelines(project.workflows), name, project.workflows);
    // Bad params fail here, before any connection: nothing reaches the server.
    parseOrThrow(pipeline.kaon.params, params, {
      code: ErrorCode.invalidParams,
      subject: `params of pipeline "${name}"`,
      fix: `correct --params to match the pipeline's params schema`,
    });
    const { kaon, target, close } = await connectClient(io.env, { taskQueue: str(values, 'task-queue') });
    try {
      const runKey = str(values, 'run-key');
      const run = await kaon.start(pipeline, params, { ...(runKey !== undefined ? { runKey } : {}), cache: flag(values, 'no-cache') ? 'off' : 'on' });
      const url = runUrl(target, run.id);
      const json = flag(values, 'json');
      const log = json ? io.stderr : io.stdout;
      say(log, run.existing ? `run key ${JSON.stringify(runKey)} already has run ${run.id}; not starting another` : `started ${name} run ${run.id} (task queue ${kaon.taskQueue})`);
      if (url) say(log, `Web UI: ${url}`);
      if (!flag(values, 'wait') && !flag(values, 'watch')) {
        if (json) say(io.stdout, JSON.stringify({ id: run.id, existing: run.existing, ...(url ? { url } : {}) }));
        return 0;
      }
      const outcome = await awaitOutcome(run, { io, namespace: target.namespace, watch: flag(values, 'watch') && !json });
      return reportOutcome(io, run, target, outcome, json);
    } finally {
      await close();
    }
  },
};
