// The board's sweep API: a k.map sweep as an item table (GET /api/sweep) and one item's detail (GET
// /api/sweep/item). The sweep is found through its coordinator child (`<run>/<key>`, type kaon.map): once it
// completed, its Sweep result names the results manifest; before (running, failed, cancelled), the manifests its
// finished shards recorded (`sweeps/<shard id>.json`) hold the items they ran and the others are pending. The
// coordinator's start arguments are read server-side for the inputs and never sent whole to the page.
import type { Client } from '@temporalio/client';
import type { ArtifactRef } from '../../definition/artifact-ref';
import { boundedId } from '../../definition/internal/ids';
import { applyTemplate, MAP_WORKFLOW, shardItemsFor, SWEEP_QUERY, type CoordinatorState, type MapSpec, type ResultPart, type SweepProgress } from '../../definition/internal/map';
import type { Sweep } from '../../definition/sweep';
import { decodeRaw } from '../../data/codec';
import { readPrior } from '../../data/manifest';
import { STATE_FILTERS, SweepIndexes, type IndexStore, type Segment, type StateFilter, type SweepPage } from './sweep-index';

export interface SweepApiDeps {
  temporal: Client;
  artifacts: IndexStore & { records: { get(key: string): Promise<unknown> } };
  /** The board's artifact view (lineage both ways) of a ref. */
  artifactInfo(ref: ArtifactRef): Promise<unknown>;
  /** The Temporal Web UI link of a workflow, when the board knows the UI. */
  uiRun(id: string, runId?: string): string | undefined;
}

/** An error with the HTTP status the board answers with. */
export class SweepApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Rows per page at most. */
export const MAX_PAGE_ROWS = 500;

interface Source {
  run: string;
  key: string;
  coordinator: string;
  /** The coordinator's Temporal status (RUNNING, COMPLETED, FAILED, …). */
  temporal: string;
  spec: MapSpec;
  sweep?: Sweep | undefined;
  total: number;
  segments: Segment[];
  /** Where the rows come from: the sweep's results manifest, or its finished shards' manifests. */
  from: 'results' | 'shards';
}

function collectRefs(v: unknown, out: ArtifactRef[] = [], depth = 0): ArtifactRef[] {
  if (depth > 20 || !v || typeof v !== 'object') return out;
  if ((v as { kind?: unknown }).kind === 'kaon.artifact') out.push(v as ArtifactRef);
  else for (const x of Object.values(v)) collectRefs(x, out, depth + 1);
  return out;
}

function intParam(q: URLSearchParams, name: string, dflt: number, max: number): number {
  const raw = q.get(name);
  if (raw === null || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0 || v > max) throw new SweepApiError(400, `?${name}=${raw} is not an integer from 0 to ${max}. To fix: use the paging links of the sweep page`);
  return v;
}

function required(q: URLSearchParams, name: string): string {
  const v = q.get(name);
  if (!v) throw new SweepApiError(400, `missing ?${name}=. To fix: open the sweep from its node on the run's DAG`);
  return v;
}

export function createSweepApi(deps: SweepApiDeps) {
  const { temporal } = deps;
  const conv = temporal.options.loadedDataConverter;
  const indexes = new SweepIndexes(deps.artifacts);
  // A completed coordinator never changes; a spec never changes across continue-as-new; a shard records once.
  const completed = new Map<string, Source>();
  const specs = new Map<string, MapSpec>();
  const shardRecords = new Map<string, ResultPart>();
  const remember = <K, V>(m: Map<K, V>, k: K, v: V, max = 200) => {
    m.set(k, v);
    if (m.size > max) m.delete(m.keys().next().value!);
  };

  /** The coordinator's start arguments (its first history event only): `[spec, carried state?]`. */
  async function startArgs(workflowId: string, runId: string): Promise<[MapSpec, CoordinatorState | undefined]> {
    const res = await temporal.workflowService.getWorkflowExecutionHistory({ namespace: temporal.options.namespace, execution: { workflowId, runId }, maximumPageSize: 1 });
    const decoded = await decodeRaw(conv, res);
    const payloads = decoded.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
    const args = payloads.map((p) => conv.payloadConverter.fromPayload(p as never));
    return [args[0] as MapSpec, args[1] as CoordinatorState | undefined];
  }

  async function shardRecord(shardId: string): Promise<ResultPart | undefined> {
    const hit = shardRecords.get(shardId);
    if (hit) return hit;
    // readPrior reads only the store's records (its wider type is for the resume path that also writes).
    const rec = await readPrior(deps.artifacts as unknown as Parameters<typeof readPrior>[0], shardId);
    if (rec) remember(shardRecords, shardId, rec, 5000);
    return rec;
  }

  async function resolve(run: string, key: string): Promise<Source> {
    const coordinator = boundedId(`${run}/${key}`);
    const hit = completed.get(coordinator);
    if (hit) return hit;
    const handle = temporal.workflow.getHandle(coordinator);
    let d: Awaited<ReturnType<typeof handle.describe>>;
    try {
      d = await handle.describe();
    } catch {
      throw new SweepApiError(404, `run ${run} has no sweep ${JSON.stringify(key)} (no workflow ${coordinator}). To fix: open the run and click a sweep node of its DAG`);
    }
    if (d.type !== MAP_WORKFLOW) throw new SweepApiError(404, `${coordinator} is a ${d.type}, not a k.map sweep. To fix: open the run and click a sweep node of its DAG`);
    let spec = specs.get(coordinator);
    let carried: CoordinatorState | undefined;
    if (!spec || d.status.name !== 'COMPLETED') {
      [spec, carried] = await startArgs(coordinator, d.runId);
      remember(specs, coordinator, spec);
    }
    const base = { run, key, coordinator, temporal: d.status.name, spec };
    if (d.status.name === 'COMPLETED') {
      const sweep = (await handle.result()) as Sweep;
      const src: Source = { ...base, sweep, total: sweep.total, segments: [{ start: 0, end: sweep.total, ref: sweep.results }], from: 'results' };
      remember(completed, coordinator, src);
      return src;
    }
    // Not (yet) a result: the manifests of the shards that finished; the other items are pending.
    let total = carried?.total ?? (spec.source.kind === 'inline' ? spec.source.inputs.length : undefined);
    if (total === undefined && d.status.name === 'RUNNING') {
      const live = await Promise.race([handle.query<SweepProgress>(SWEEP_QUERY), new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000).unref())]).catch(() => undefined);
      total = live?.total;
    }
    total ??= 0;
    const per = shardItemsFor(spec.batch);
    const segments = await Promise.all(
      Array.from({ length: Math.ceil(total / per) }, async (_, n): Promise<Segment> => {
        const rec = await shardRecord(boundedId(`${coordinator}/shard-${n}`));
        return { start: n * per, end: Math.min(total, (n + 1) * per), ref: rec?.ref };
      }),
    );
    return { ...base, total, segments, from: 'shards' };
  }

  function describeSource(s: Source) {
    return {
      run: s.run,
      key: s.key,
      coordinator: s.coordinator,
      temporal: s.temporal,
      target: s.spec.target.name,
      targetKind: s.spec.target.kind,
      onFailure: s.spec.onFailure,
      batch: s.spec.batch,
      inputs: s.spec.source.kind,
      from: s.from,
      results: s.sweep?.results,
      durationMs: s.sweep?.durationMs,
      ui: deps.uiRun(s.coordinator),
    };
  }

  /** GET /api/sweep?run=&key=&offset=&limit=&state=&sig= */
  async function page(q: URLSearchParams): Promise<ReturnType<typeof describeSource> & SweepPage> {
    const t0 = performance.now();
    const src = await resolve(required(q, 'run'), required(q, 'key'));
    const state = q.get('state') || undefined;
    if (state !== undefined && !(STATE_FILTERS as readonly string[]).includes(state)) throw new SweepApiError(400, `?state=${state} is not one of ${STATE_FILTERS.join(', ')}. To fix: use the state chips of the sweep page`);
    const p = await indexes.page(src.segments, { state: state as StateFilter | undefined, sig: q.get('sig') || undefined, offset: intParam(q, 'offset', 0, Number.MAX_SAFE_INTEGER), limit: Math.max(1, intParam(q, 'limit', 100, MAX_PAGE_ROWS)) });
    return { ...describeSource(src), ...p, ms: performance.now() - t0 } as ReturnType<typeof describeSource> & SweepPage;
  }

  /** The activity call (or child run) that ran item i, and its attempts, from the shard's history. */
  async function attemptsOf(src: Source, i: number) {
    const per = shardItemsFor(src.spec.batch);
    const n = Math.floor(i / per);
    const shard = boundedId(`${src.coordinator}/shard-${n}`);
    if (src.spec.target.kind === 'pipeline') {
      const child = boundedId(`${shard}/${i}`);
      return { shard, shardUi: deps.uiRun(shard), child, ui: deps.uiRun(child) };
    }
    const start = n * per;
    const end = Math.min(src.total, start + per);
    const first = start + Math.floor((i - start) / src.spec.batch) * src.spec.batch;
    const last = Math.min(end, first + src.spec.batch) - 1;
    const activityId = boundedId(first === last ? `${src.spec.key}[${first}]` : `${src.spec.key}[${first}-${last}]`);
    let history: Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>;
    try {
      history = await temporal.workflow.getHandle(shard).fetchHistory();
    } catch {
      return { shard, shardUi: deps.uiRun(shard), activityId, attempts: 0, status: 'not started' };
    }
    let scheduled: string | undefined;
    let attempts = 0;
    let status = 'not started';
    let failure: string | undefined;
    for (const e of history.events ?? []) {
      const a = e.activityTaskScheduledEventAttributes;
      if (a) {
        if (a.activityId === activityId) {
          scheduled = String(e.eventId);
          status = 'scheduled';
        }
        continue;
      }
      if (!scheduled) continue;
      const of = (x: { scheduledEventId?: unknown } | null | undefined) => x && String(x.scheduledEventId) === scheduled;
      if (of(e.activityTaskStartedEventAttributes)) {
        attempts = e.activityTaskStartedEventAttributes!.attempt ?? 1;
        status = 'running';
      } else if (of(e.activityTaskCompletedEventAttributes)) status = 'completed';
      else if (of(e.activityTaskCanceledEventAttributes)) status = 'cancelled';
      else if (of(e.activityTaskFailedEventAttributes) || of(e.activityTaskTimedOutEventAttributes)) {
        status = e.activityTaskFailedEventAttributes ? 'failed' : 'timed out';
        // Decoded: with a key configured, failure messages are ciphertext in raw history.
        const f = (await decodeRaw(conv, e)).activityTaskFailedEventAttributes?.failure ?? e.activityTaskTimedOutEventAttributes?.failure;
        failure = f ? [f.message, f.cause?.message].filter(Boolean).join(': ') : undefined;
      }
    }
    return { shard, shardUi: deps.uiRun(shard), activityId, attempts, status, ...(failure ? { failure } : {}), ...(src.spec.batch > 1 ? { items: { first, last } } : {}) };
  }

  /** GET /api/sweep/item?run=&key=&i= */
  async function item(q: URLSearchParams) {
    const src = await resolve(required(q, 'run'), required(q, 'key'));
    const i = intParam(q, 'i', 0, Number.MAX_SAFE_INTEGER);
    if (i >= src.total) throw new SweepApiError(404, `sweep ${src.key} has ${src.total} items; there is no item ${i}. To fix: pick an item of the table`);
    const source = src.spec.source;
    const [line, input, attempts] = await Promise.all([
      indexes.line(src.segments, i),
      source.kind === 'inline' ? Promise.resolve(source.inputs[i]) : indexes.item(source.ref, i).then((raw) => applyTemplate(source.template, raw, i)),
      attemptsOf(src, i).catch(() => undefined),
    ]);
    const output = line?.ok ? line.output : undefined;
    const uniq = (refs: ArtifactRef[]) => [...new Map(refs.map((r) => [r.sha256, r])).values()].slice(0, 50);
    return {
      ...describeSource(src),
      i,
      total: src.total,
      state: !line ? 'pending' : line.ok ? 'ok' : line.status,
      cached: line?.ok ? Boolean(line.cached) : false,
      resumed: line?.ok ? Boolean(line.resumed) : false,
      input,
      output,
      error: line && !line.ok ? line.error : undefined,
      artifacts: await Promise.all(uniq(collectRefs(output)).map(deps.artifactInfo)),
      inputArtifacts: await Promise.all(uniq(collectRefs(input)).map(deps.artifactInfo)),
      attempts,
    };
  }

  return { page, item };
}
