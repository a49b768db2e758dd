import { boundedId } from '../definition/internal/ids';
import { executeChild, isCancellation, workflowInfo } from '@temporalio/workflow';
import { SAKey } from '../definition/internal/protocol';
import type { AnyPipeline, PipelineParams, PipelineResult } from '../definition/pipeline';
import type { RunCore, RunOptions } from './core';
import { childMessage } from './failures';
import { now } from './run-state-tracker';

/** Run options for a child keyed `key`: a resumed parent resumes its children (the old child has a predictable id). */
export function childRunOptions(run: RunOptions, key: string): RunOptions {
  const from = run.resumeFrom;
  return { ...run, ...(from ? { resumeFrom: { ...from, workflowId: boundedId(`${from.workflowId}/${key}`) } } : {}) };
}

/** k.child: a pipeline as a child workflow with its own history, id `<parent>/<key>`. */
export async function runChild<P extends AnyPipeline>(core: RunCore, pipeline: P, params: PipelineParams<P>, o: { key?: string } = {}): Promise<PipelineResult<P>> {
  const name = pipeline.kaon.name;
  const paused = core.whenRunning();
  if (paused) await paused;
  core.guard.check(`child pipeline "${name}"`);
  const key = core.key(o.key ?? name);
  const info = workflowInfo();
  const branch = core.branch;
  const st = core.tracker.add({ key, step: name, status: 'running', attempts: 1, startedAt: now(), ...(branch ? { branch } : {}) });
  const slot = core.guard.slot();
  const release = typeof slot === 'function' ? slot : await slot;
  try {
    const result = await executeChild(name, {
      workflowId: boundedId(`${info.workflowId}/${key}`),
      taskQueue: info.taskQueue,
      args: [params, childRunOptions(core.run, key)],
      typedSearchAttributes: [{ key: SAKey.pipeline, value: name }, { key: SAKey.status, value: 'running' }],
      staticSummary: `${name} (child of ${info.workflowId}, ${key})`,
      priority: core.priority,
    });
    core.tracker.update(st, { status: 'succeeded', endedAt: now() });
    return result as PipelineResult<P>;
  } catch (err) {
    core.tracker.update(st, { status: isCancellation(err) ? 'cancelled' : 'failed', endedAt: now(), error: childMessage(err) });
    throw err;
  } finally {
    release();
  }
}
