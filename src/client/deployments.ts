// Worker Versioning: which build of a worker deployment new runs start on. A deploy starts workers with the new
// build id, then makes that build current; pinned runs finish on their old build, loops move at continue-as-new.
import type { temporal } from '@temporalio/proto';
import { ErrorCode, KaonError } from '../definition/errors';

/** gRPC status codes (from the gRPC spec; not worth a dependency). */
const NOT_FOUND = 5;
const FAILED_PRECONDITION = 9;

/** temporal.api.enums.v1.WorkerDeploymentVersionStatus, by number. */
const VERSION_STATUS: Record<number, string> = { 0: 'UNSPECIFIED', 1: 'INACTIVE', 2: 'CURRENT', 3: 'RAMPING', 4: 'DRAINING', 5: 'DRAINED' };

type Service = Pick<temporal.api.workflowservice.v1.WorkflowService, 'describeWorkerDeployment' | 'setWorkerDeploymentCurrentVersion'>;

/** Kaon's deployment name unless $KAON_DEPLOYMENT or an option names another. */
export const DEFAULT_DEPLOYMENT = 'kaon';

export interface DeploymentInfo {
  name: string;
  /** The build new runs start on; null until one is made current. */
  current: string | null;
  /** Every build that has polled, newest first, with its status (CURRENT, DRAINING, DRAINED, INACTIVE…). */
  versions: { buildId: string; status: string; createdAt: Date | null }[];
}

function codeOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } };
  return typeof e?.code === 'number' ? e.code : typeof e?.cause?.code === 'number' ? e.cause.code : undefined;
}

export class KaonDeployments {
  constructor(
    private readonly service: Service,
    private readonly namespace: string,
  ) {}

  /** The deployment's current build and its versions; null if no worker of it has polled yet. */
  async describe(name = DEFAULT_DEPLOYMENT): Promise<DeploymentInfo | null> {
    try {
      const r = await this.service.describeWorkerDeployment({ namespace: this.namespace, deploymentName: name });
      const info = r.workerDeploymentInfo;
      const current = info?.routingConfig?.currentDeploymentVersion?.buildId || null;
      const versions = (info?.versionSummaries ?? []).map((v) => ({
        buildId: v.deploymentVersion?.buildId ?? '',
        status: VERSION_STATUS[Number(v.status ?? 0)] ?? String(v.status),
        createdAt: v.createTime?.seconds != null ? new Date(Number(v.createTime.seconds) * 1000) : null,
      }));
      return { name, current, versions };
    } catch (err) {
      if (codeOf(err) === NOT_FOUND) return null;
      throw err;
    }
  }

  /**
   * Make a build current: new runs start on it, loops move to it at their next continue-as-new. The build's
   * workers must be polling; this waits up to `waitMs` (default 30 s) for them to register.
   */
  async setCurrent(buildId: string, opts: { deployment?: string; waitMs?: number; identity?: string } = {}): Promise<void> {
    const name = opts.deployment ?? DEFAULT_DEPLOYMENT;
    const end = Date.now() + (opts.waitMs ?? 30_000);
    for (;;) {
      try {
        await this.service.setWorkerDeploymentCurrentVersion({ namespace: this.namespace, deploymentName: name, buildId, identity: opts.identity ?? 'kaon' });
        return;
      } catch (err) {
        const code = codeOf(err);
        const notYet = code === NOT_FOUND || code === FAILED_PRECONDITION;
        if (!notYet || Date.now() > end) {
          throw new KaonError({
            code: ErrorCode.config,
            what: `could not make build "${buildId}" current in worker deployment "${name}": ${err instanceof Error ? err.message : String(err)}`,
            fix: `start a worker with --deployment ${name} --build-id ${buildId} first (it must be polling), then try again`,
          });
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    }
  }
}
