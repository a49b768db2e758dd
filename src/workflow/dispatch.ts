import { ApplicationFailure, setWorkflowOptions, workflowInfo } from '@temporalio/workflow';
import { ErrorCode } from '../definition/errors';
import { MAP_WORKFLOW, SHARD_WORKFLOW } from '../definition/internal/map';
import { EVENTS_WORKFLOW } from '../definition/internal/protocol';
import { kaonEvents } from './events';
import { isPipeline, type AnyPipeline } from '../definition/pipeline';
import { kaonMap } from './map-coordinator';
import { kaonMapShard } from './map-shard';

/**
 * A default-export workflow that runs the pipeline whose name is the workflow type. Lets pipeline names be
 * kebab-case ('retrain-recommender') while modules export camelCase identifiers.
 */
export function pipelineDispatcher(mod: Record<string, unknown>): (...args: unknown[]) => Promise<unknown> {
  const byName = new Map<string, AnyPipeline>();
  for (const v of Object.values(mod)) if (isPipeline(v)) byName.set(v.kaon.name, v);
  // Kaon's own workflows: a sweep's coordinator and its shards.
  const builtins = new Map<string, (...a: never[]) => Promise<unknown>>([[MAP_WORKFLOW, kaonMap], [SHARD_WORKFLOW, kaonMapShard], [EVENTS_WORKFLOW, kaonEvents]]);
  const dispatch = async function kaonDispatch(...args: unknown[]): Promise<unknown> {
    const type = workflowInfo().workflowType;
    const builtin = builtins.get(type);
    if (builtin) return (builtin as (...a: unknown[]) => Promise<unknown>)(...args);
    const p = byName.get(type);
    if (!p) {
      throw ApplicationFailure.create({
        type: ErrorCode.notFound,
        nonRetryable: true,
        message: `no pipeline named "${type}" is registered on this worker (known: ${[...byName.keys()].join(', ') || 'none'}). To fix: export it from the workflows module the worker loads, or start one of the known pipelines.`,
      });
    }
    return (p as (...a: unknown[]) => Promise<unknown>)(...args);
  };
  // Under Worker Versioning (a worker started with a deployment and build id), runs are pinned to the build they
  // started on (the worker's default) unless the pipeline says 'auto-upgrade'. The events workflow never ends, so it
  // follows the current build. An unversioned worker refuses any behaviour, so none is set there.
  setWorkflowOptions(() => {
    const info = workflowInfo();
    if (!info.currentDeploymentVersion?.deploymentName) return {};
    const upgrade = info.workflowType === EVENTS_WORKFLOW || byName.get(info.workflowType)?.kaon.versioning === 'auto-upgrade';
    return upgrade ? { versioningBehavior: 'AUTO_UPGRADE' } : {};
  }, dispatch);
  return dispatch;
}
