// The Kaon board's HTTP server: a JSON API under /api/ over Temporal (visibility, the progress query, describe,
// history) and the artifact store, plus the static front end. No database of its own.
// Every /api/ request needs the board's token, reads too (they show decrypted params, outputs and errors): an
// HttpOnly cookie set by opening the printed URL (…/?token=…, as Jupyter does), or `Authorization: Bearer <token>`.
// Writes sent with the cookie also need the X-Kaon-Request header, which a cross-site form cannot send. Static
// assets and GET /healthz stay open.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import type { KaonClient, RunHandle } from '../../client';
import type { ArtifactRef } from '../../definition/artifact-ref';
import { ErrorCode, KaonError } from '../../definition/errors';
import type { LineageRecord } from '../../data/lineage';
import { decodeRaw } from '../../data/codec';
import { CARD_MEDIA_TYPE, type CardDoc, type RunState } from '../run-state';
import { readRunHistory, stateFromHistory, type RunHistory } from './history';
import { createSweepApi, SweepApiError } from './sweep';

/** What the board needs of the artifact store (src/data's ArtifactStore fits). */
export interface BoardArtifacts {
  getStream(ref: ArtifactRef): Promise<NodeJS.ReadableStream>;
  getBytes(ref: ArtifactRef, opts?: { maxBytes?: number }): Promise<Buffer>;
  producedBy(target: ArtifactRef | string): Promise<LineageRecord[]>;
  usedBy(target: ArtifactRef | string): Promise<LineageRecord[]>;
  listByRun(runId: string): Promise<ArtifactRef[]>;
  /** A verified local file with the bytes (the sweep page indexes results manifests there). */
  getPath(ref: ArtifactRef): Promise<string>;
  /** The store's JSON records (the sweep page reads the manifests that shards recorded). */
  records: { get(key: string): Promise<unknown> };
}

export interface BoardOptions {
  kaon: KaonClient;
  artifacts: BoardArtifacts;
  /** Temporal Web UI base URL (links to every run and step), when known. */
  ui?: string | undefined;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Required for every API request. Default: $KAON_BOARD_TOKEN, else random. */
  token?: string;
  /** Folder with index.html, board.js, board.css (built by `npm run build:board`). */
  assetsDir: string;
}

export interface Board {
  /** `http://host:port/` */
  url: string;
  /** The URL with the token, to print: opening it sets the cookie that lets the page read runs and decide gates. */
  tokenUrl: string;
  token: string;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(text);
}

const STATIC_TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.map': 'application/json' };

/** The cookie that carries the token; its name holds the port, since browsers share cookies across a host's ports. */
export function boardCookieName(port: number): string {
  return `kaon-board-${port}`;
}

function cookie(req: http.IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

function tokenOk(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: http.IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY / 1024} KiB`);
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new HttpError(400, 'the request body is not JSON. To fix: send {"run": "...", "gate": "...", "decision": "approve"}');
  }
}

function quote(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

const SHA = /^[0-9a-f]{64}$/;
const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Numeric leaves of a value, by dotted path (`ndcgAtK`, `baseline.ndcgAtK`): what the Metrics page can plot. */
export function numericFields(v: unknown, prefix = '', out: Record<string, number> = {}, depth = 0): Record<string, number> {
  if (depth > 4) return out;
  if (typeof v === 'number' && Number.isFinite(v)) out[prefix || 'value'] = v;
  else if (v && typeof v === 'object' && !Array.isArray(v) && (v as { kind?: unknown }).kind !== 'kaon.artifact') {
    for (const [k, x] of Object.entries(v)) numericFields(x, prefix ? `${prefix}.${k}` : k, out, depth + 1);
  }
  return out;
}

/** `train[US]#2` → { base: 'train', label: 'US' } */
function splitKey(key: string): { base: string; label: string } {
  const m = /^([^[#]+)((?:\[[^\]]*\])*)(?:#\d+)?$/.exec(key);
  return { base: m?.[1] ?? key, label: (m?.[2] ?? '').replace(/^\[|\]$/g, '').replace(/\]\[/g, '/') };
}

/** Start the board. Resolves once it listens. */
export async function startBoard(opts: BoardOptions): Promise<Board> {
  const { kaon, artifacts } = opts;
  const temporal = kaon.temporal;
  const namespace = temporal.options.namespace;
  const token = opts.token ?? process.env.KAON_BOARD_TOKEN ?? randomBytes(18).toString('base64url');
  const uiRun = (id: string, runId?: string) => (opts.ui ? `${opts.ui}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(id)}${runId ? `/${encodeURIComponent(runId)}/history` : ''}` : undefined);

  // History of a closed run never changes: keep the last few parsed (a Compare or Metrics page reads many).
  const closedHistories = new Map<string, RunHistory>();
  async function history(id: string, runId: string | undefined, closed: boolean): Promise<RunHistory> {
    const cacheKey = `${id}\u0000${runId ?? ''}`;
    const hit = closed ? closedHistories.get(cacheKey) : undefined;
    if (hit) return hit;
    const h = await readRunHistory(temporal, id, runId);
    if (closed) {
      closedHistories.set(cacheKey, h);
      if (closedHistories.size > 200) closedHistories.delete(closedHistories.keys().next().value!);
    }
    return h;
  }

  async function describe(id: string) {
    try {
      return await temporal.workflow.getHandle(id).describe();
    } catch (err) {
      throw new HttpError(404, `no run ${JSON.stringify(id)}: ${(err as Error).message.split('\n')[0]}. To fix: pick a run on the Runs page`);
    }
  }

  /** The run state: the live progress query, else (no worker can answer) rebuilt from history. */
  async function runState(id: string, h: () => Promise<RunHistory>, pipeline: string, status: string): Promise<{ state: RunState; source: 'query' | 'history' }> {
    try {
      const state = await Promise.race([
        kaon.run(id).progress(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('query timed out')), 4000).unref()),
      ]);
      return { state, source: 'query' };
    } catch {
      const s = status === 'COMPLETED' ? 'succeeded' : status === 'FAILED' || status === 'TIMED_OUT' || status === 'TERMINATED' ? 'failed' : status === 'CANCELED' ? 'cancelled' : 'running';
      return { state: stateFromHistory(pipeline, await h(), s), source: 'history' };
    }
  }

  function summary(w: { workflowId: string; runId: string; type: string; status: { name: string }; startTime: Date; closeTime?: Date | undefined; searchAttributes?: unknown }) {
    const sa = (w.searchAttributes ?? {}) as Record<string, unknown[] | undefined>;
    const kaonStatus = sa.KaonStatus?.[0] as string | undefined;
    const closedStatus: Record<string, string> = { COMPLETED: 'succeeded', FAILED: 'failed', CANCELLED: 'cancelled', CANCELED: 'cancelled', TIMED_OUT: 'timed out', TERMINATED: 'terminated', CONTINUED_AS_NEW: 'continued as new' };
    const running = w.status.name === 'RUNNING';
    const status = running ? (kaonStatus ?? 'running') : kaonStatus && kaonStatus !== 'running' && kaonStatus !== 'waiting' ? kaonStatus : (closedStatus[w.status.name] ?? w.status.name.toLowerCase());
    return {
      id: w.workflowId,
      runId: w.runId,
      pipeline: (sa.KaonPipeline?.[0] as string | undefined) ?? w.type,
      status,
      temporal: w.status.name,
      runKey: sa.KaonRunKey?.[0] as string | undefined,
      step: sa.KaonStep?.[0] as string | undefined,
      startTime: w.startTime.getTime(),
      closeTime: w.closeTime?.getTime(),
      ui: uiRun(w.workflowId, w.runId),
    };
  }

  async function listRuns(q: URLSearchParams) {
    const clauses = ['KaonPipeline IS NOT NULL'];
    const pipeline = q.get('pipeline');
    const status = q.get('status');
    const search = q.get('q');
    const since = q.get('since');
    const before = q.get('before');
    if (pipeline) clauses.push(`KaonPipeline = ${quote(pipeline)}`);
    if (status) clauses.push(`KaonStatus = ${quote(status)}`);
    if (search) clauses.push(`(KaonRunKey STARTS_WITH ${quote(search)} OR WorkflowId STARTS_WITH ${quote(search)})`);
    if (since && Number.isFinite(Number(since))) clauses.push(`StartTime >= ${quote(new Date(Number(since)).toISOString())}`);
    if (before && Number.isFinite(Number(before))) clauses.push(`StartTime < ${quote(new Date(Number(before)).toISOString())}`);
    if (q.get('children') !== '1') clauses.push('ParentWorkflowId IS NULL');
    const limit = Math.min(200, Math.max(1, Number(q.get('limit') ?? 50) || 50));
    const runs: ReturnType<typeof summary>[] = [];
    for await (const w of temporal.workflow.list({ query: clauses.join(' AND '), pageSize: limit })) {
      runs.push(summary(w));
      if (runs.length >= limit) break;
    }
    // The next page: runs that started before the last one shown.
    return { runs, next: runs.length === limit ? runs[runs.length - 1]!.startTime : undefined };
  }

  async function run(id: string) {
    const d = await describe(id);
    const closed = d.status.name !== 'RUNNING';
    let h: RunHistory | undefined;
    const getH = async () => (h ??= await history(id, d.runId, closed));
    const [{ state, source }, hist] = await Promise.all([runState(id, getH, d.type, d.status.name), getH()]);
    const info = summary({ ...d, searchAttributes: d.searchAttributes });
    return {
      info: { ...info, ui: uiRun(id, d.runId), parent: d.raw.workflowExecutionInfo?.parentExecution?.workflowId || undefined },
      state,
      source,
      params: hist.params,
      result: hist.result,
      edges: hist.edges,
      timings: hist.steps.map(({ input: _i, output: _o, ...t }) => ({ ...t, ui: uiRun(id, d.runId) })),
      events: hist.events,
    };
  }

  async function artifactInfo(ref: ArtifactRef) {
    const [made, used] = await Promise.all([artifacts.producedBy(ref).catch(() => []), artifacts.usedBy(ref).catch(() => [])]);
    // Made from: the inputs of the put that produced these bytes, each with the step that produced that input.
    const inputs = [...new Map(made.flatMap((r) => r.inputs).map((i) => [i.sha256, i])).values()].slice(0, 50);
    const producers = await Promise.all(inputs.map((i) => artifacts.producedBy(i.sha256).then((rs) => rs[rs.length - 1]?.producer, () => undefined)));
    return {
      ref,
      producedFrom: inputs.map((i, n) => ({ ...i, ...(producers[n] ? { by: producers[n] } : {}) })),
      usedBy: used.map((r) => ({ sha256: r.ref.sha256, name: r.ref.name, by: r.producer })),
    };
  }

  const sweeps = createSweepApi({ temporal, artifacts, artifactInfo, uiRun });

  async function step(id: string, key: string) {
    const d = await describe(id);
    const closed = d.status.name !== 'RUNNING';
    const h = await history(id, d.runId, closed);
    const timing = [...h.steps].reverse().find((s) => s.key === key);
    const { state } = await runState(id, async () => h, d.type, d.status.name);
    const st = state.steps.find((s) => s.key === key);
    if (!timing && !st) throw new HttpError(404, `run ${id} has no step ${JSON.stringify(key)}. To fix: open the run and pick a step of its DAG`);
    const pending = (d.raw.pendingActivities ?? []).find((p) => p.activityId === key);
    // Its heartbeat details and last failure are raw payloads: ciphertext when a key is configured.
    if (pending) await decodeRaw(temporal.options.loadedDataConverter, pending);
    const own = (await artifacts.listByRun(id).catch(() => [] as ArtifactRef[])).filter((r) => r.producer.step === key);
    const cardShas = new Set((st?.cards ?? []).map((c) => c.sha256));
    const outputs = own.filter((r) => !cardShas.has(r.sha256)).slice(0, 200);
    const fixOf = (m: string | undefined) => (m && /To fix:/i.test(m) ? m.slice(m.search(/To fix:/i)) : undefined);
    const lastFailure = pending?.lastFailure ? { message: pending.lastFailure.message ?? '', ...(pending.lastFailure.cause?.message ? { message: `${pending.lastFailure.message}: ${pending.lastFailure.cause.message}` } : {}) } : undefined;
    const failure = timing?.failure ?? lastFailure ?? (st?.error ? { message: st.error } : undefined);
    // A k.map sweep's call is its coordinator: its input is the whole item list. The sweep page shows the items.
    const sweep = Boolean(st?.sweep) || timing?.step === 'kaon.map';
    return {
      run: id,
      key,
      step: timing?.step ?? st?.step,
      status: st?.status ?? timing?.status,
      state: st,
      ...(sweep ? { sweep: true } : {}),
      input: sweep ? undefined : timing?.input,
      output: timing?.output,
      attempts: Math.max(st?.attempts ?? 0, timing?.attempt ?? 0, pending?.attempt ?? 0),
      timing: timing ? { scheduledAt: timing.scheduledAt, startedAt: timing.startedAt, endedAt: timing.endedAt, split: timing.split } : undefined,
      failure: failure ? { ...failure, fix: fixOf(failure.message) } : undefined,
      logTail: (timing?.failure as { logTail?: string[] } | undefined)?.logTail ?? heartbeatTail(pending?.heartbeatDetails),
      artifacts: await Promise.all(outputs.map(artifactInfo)),
      inputs: await Promise.all(collectRefs(timing?.input).slice(0, 50).map(artifactInfo)),
      cards: st?.cards ?? [],
      ui: uiRun(id, d.runId),
      child: timing?.child,
    };
  }

  function heartbeatTail(details: { payloads?: unknown[] | null } | null | undefined): string[] | undefined {
    const p = details?.payloads?.[0];
    if (!p) return undefined;
    try {
      const v = temporal.options.loadedDataConverter.payloadConverter.fromPayload(p as never) as { tail?: unknown };
      return Array.isArray(v?.tail) ? (v.tail as string[]) : undefined;
    } catch {
      return undefined;
    }
  }

  async function refBySha(sha: string): Promise<ArtifactRef> {
    if (!SHA.test(sha)) throw new HttpError(400, `${JSON.stringify(sha)} is not a sha256. To fix: use a link from the Step page`);
    const made = await artifacts.producedBy(sha);
    const ref = made[made.length - 1]?.ref;
    if (!ref) throw new HttpError(404, `no artifact with sha256 ${sha} in the store. To fix: check KAON_ARTIFACTS points at the store the workers use`);
    return ref;
  }

  async function card(sha: string): Promise<CardDoc & { ref: ArtifactRef }> {
    const ref = await refBySha(sha);
    if (ref.mediaType !== CARD_MEDIA_TYPE) throw new HttpError(400, `artifact ${sha} is a ${ref.mediaType}, not a card`);
    const doc = JSON.parse((await artifacts.getBytes(ref, { maxBytes: 1024 * 1024 })).toString('utf8')) as CardDoc;
    return { ...doc, ref };
  }

  async function cards(q: URLSearchParams) {
    const id = q.get('run');
    let runs: { id: string; pipeline: string; startTime: number }[];
    if (id) {
      const d = await describe(id);
      runs = [{ id, pipeline: d.type, startTime: d.startTime.getTime() }];
    } else runs = (await listRuns(new URLSearchParams({ limit: String(Math.min(20, Number(q.get('limit') ?? 10) || 10)), ...(q.get('pipeline') ? { pipeline: q.get('pipeline')! } : {}) }))).runs;
    const out: { run: string; pipeline: string; step: string; startTime: number; card: CardDoc & { ref: ArtifactRef } }[] = [];
    for (const r of runs) {
      const d = await describe(r.id);
      const { state } = await runState(r.id, () => history(r.id, d.runId, d.status.name !== 'RUNNING'), d.type, d.status.name);
      for (const s of state.steps) for (const c of s.cards ?? []) out.push({ run: r.id, pipeline: r.pipeline, step: s.key, startTime: r.startTime, card: await card(c.sha256) });
    }
    return { cards: out };
  }

  /** A numeric step output (or logged metric) across the latest runs of a pipeline: one point per run and series. */
  async function metrics(q: URLSearchParams) {
    const pipeline = q.get('pipeline');
    if (!pipeline) throw new HttpError(400, 'the metrics API needs ?pipeline=. To fix: pick a pipeline on the Metrics page');
    const limit = Math.min(100, Math.max(1, Number(q.get('limit') ?? 30) || 30));
    const stepName = q.get('step');
    const field = q.get('field');
    const mark = q.get('mark');
    const runs = (await listRuns(new URLSearchParams({ pipeline, limit: String(limit) }))).runs.filter((r) => r.temporal !== 'RUNNING').reverse();
    const fields = new Map<string, Set<string>>();
    const points: { run: string; startTime: number; series: string; value: number; marked: boolean }[] = [];
    for (const r of runs) {
      const h = await history(r.id, r.runId, true);
      const succeeded = new Set(h.steps.filter((s) => s.status === 'succeeded').map((s) => splitKey(s.key)));
      const lastByKey = new Map<string, { step: string; values: Record<string, number> }>();
      for (const s of h.steps) {
        if (s.status !== 'succeeded' || s.child) continue;
        const values = numericFields(s.output);
        const { base, label } = splitKey(s.key);
        // A retrained step (`evaluate[JP]#3`): the last attempt of the loop counts for the run.
        lastByKey.set(`${base}[${label}]`, { step: s.step, values });
        const set = fields.get(s.step) ?? new Set<string>();
        for (const f of Object.keys(values)) set.add(f);
        fields.set(s.step, set);
      }
      // Metrics logged with ctx.metrics.log (StepState.metrics), when the run state has them.
      let state: RunState | undefined;
      try {
        state = (await runState(r.id, async () => h, pipeline, r.temporal)).state;
      } catch {
        state = undefined;
      }
      for (const s of state?.steps ?? []) {
        const logged = (s as { metrics?: { name: string; value: number; step?: number }[] }).metrics;
        if (!Array.isArray(logged) || logged.length === 0) continue;
        const { base, label } = splitKey(s.key);
        const entry = lastByKey.get(`${base}[${label}]`) ?? { step: s.step, values: {} };
        const set = fields.get(s.step) ?? new Set<string>();
        for (const m of logged) {
          if (typeof m.value !== 'number') continue;
          entry.values[`logged.${m.name}`] = m.value; // the last logged value of each name
          set.add(`logged.${m.name}`);
        }
        fields.set(s.step, set);
        lastByKey.set(`${base}[${label}]`, entry);
      }
      if (!stepName || !field) continue;
      for (const [k, e] of lastByKey) {
        if (e.step !== stepName || e.values[field] === undefined) continue;
        const { label } = splitKey(k);
        const marked = mark ? [...succeeded].some((s) => s.base === mark && s.label === label) : false;
        points.push({ run: r.id, startTime: r.startTime, series: label || stepName, value: e.values[field], marked });
      }
    }
    return {
      pipeline,
      runs: runs.map((r) => ({ id: r.id, startTime: r.startTime, status: r.status })),
      fields: Object.fromEntries([...fields].map(([k, v]) => [k, [...v].sort()])),
      steps: [...new Set(runs.length ? [...fields.keys()] : [])].sort(),
      points,
    };
  }

  async function compare(ids: string[]) {
    if (ids.length < 2) throw new HttpError(400, 'compare needs two or more runs. To fix: tick runs on the Runs page and press Compare');
    return {
      runs: await Promise.all(
        ids.slice(0, 6).map(async (id) => {
          const d = await describe(id);
          const closed = d.status.name !== 'RUNNING';
          const h = await history(id, d.runId, closed);
          const { state } = await runState(id, async () => h, d.type, d.status.name);
          const arts = await artifacts.listByRun(id).catch(() => [] as ArtifactRef[]);
          const steps: Record<string, { status: string; cached: boolean; metrics: Record<string, number> }> = {};
          for (const s of state.steps) steps[s.key] = { status: s.status, cached: s.status === 'cached', metrics: {} };
          for (const t of h.steps) {
            const e = steps[t.key] ?? (steps[t.key] = { status: t.status, cached: Boolean(t.reused), metrics: {} });
            if (t.reused) e.cached = true;
            if (t.status === 'succeeded' && !t.child) e.metrics = numericFields(t.output);
          }
          return {
            info: summary({ ...d, searchAttributes: d.searchAttributes }),
            params: h.params,
            steps,
            artifacts: arts.filter((a) => a.mediaType !== CARD_MEDIA_TYPE).slice(0, 500).map((a) => ({ key: `${a.producer.step} ${a.name ?? ''}`.trim(), sha256: a.sha256, size: a.size })),
          };
        }),
      ),
    };
  }

  async function gates() {
    const runs = (await listRuns(new URLSearchParams({ status: 'waiting', limit: '100' }))).runs;
    const out: { run: string; pipeline: string; gate: unknown; ui: string | undefined }[] = [];
    await Promise.all(
      runs.map(async (r) => {
        try {
          const state = await kaon.run(r.id).progress();
          for (const g of state.gates ?? []) if (g.status === 'waiting') out.push({ run: r.id, pipeline: r.pipeline, gate: g, ui: r.ui });
        } catch {
          // A run that cannot answer its query (no worker) is listed with its gates unknown.
          out.push({ run: r.id, pipeline: r.pipeline, gate: null, ui: r.ui });
        }
      }),
    );
    return { gates: out };
  }

  async function decide(req: http.IncomingMessage) {
    const body = (await readBody(req)) as { run?: unknown; gate?: unknown; decision?: unknown; comment?: unknown; by?: unknown };
    if (typeof body.run !== 'string' || typeof body.gate !== 'string' || (body.decision !== 'approve' && body.decision !== 'reject')) {
      throw new HttpError(400, 'a decision needs {"run": "<run id>", "gate": "<gate>", "decision": "approve" | "reject"}. To fix: send those fields');
    }
    const handle: RunHandle = kaon.run(body.run);
    const o = { by: typeof body.by === 'string' && body.by ? body.by : 'kaon board', ...(typeof body.comment === 'string' && body.comment ? { comment: body.comment } : {}) };
    try {
      const gate = body.decision === 'approve' ? await handle.approve(body.gate, o) : await handle.reject(body.gate, o);
      return { gate };
    } catch (err) {
      if (err instanceof KaonError && (err.code === ErrorCode.refused || err.code === ErrorCode.notFound)) throw new HttpError(409, err.message);
      throw err;
    }
  }

  async function schedules() {
    const [list, triggers] = await Promise.all([kaon.schedules.list().catch((err: Error) => ({ error: err.message })), kaon.triggers().catch((err: Error) => ({ error: err.message }))]);
    return { schedules: list, triggers };
  }

  /** Server-sent events: the run's summary and state, pushed when they change (checked once a second). */
  function live(id: string, req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    let last = '';
    let stopped = false;
    const tick = async () => {
      if (stopped) return;
      try {
        const d = await describe(id);
        const { state } = await runState(id, () => history(id, d.runId, d.status.name !== 'RUNNING'), d.type, d.status.name);
        const body = JSON.stringify({ info: summary({ ...d, searchAttributes: d.searchAttributes }), state });
        if (body !== last) {
          last = body;
          res.write(`data: ${body}\n\n`);
        }
        if (d.status.name !== 'RUNNING') {
          res.write('event: closed\ndata: {}\n\n');
          res.end();
          stopped = true;
          return;
        }
      } catch (err) {
        res.write(`event: failure\ndata: ${JSON.stringify({ error: (err as Error).message })}\n\n`);
      }
      if (!stopped) timer = setTimeout(() => void tick(), 1000);
    };
    let timer: NodeJS.Timeout = setTimeout(() => void tick(), 0);
    req.on('close', () => {
      stopped = true;
      clearTimeout(timer);
    });
  }

  async function serveArtifact(sha: string, download: boolean, res: http.ServerResponse): Promise<void> {
    const ref = await refBySha(sha);
    const stream = await artifacts.getStream(ref);
    const name = (ref.name ?? ref.sha256).split('/').pop()!.replace(/[^A-Za-z0-9._-]/g, '_');
    res.writeHead(200, {
      'content-type': ref.mediaType,
      'content-length': String(ref.size),
      'x-content-type-options': 'nosniff',
      'x-kaon-sha256': ref.sha256,
      // Artifacts come from user code: an SVG or HTML artifact must never run script in the board's origin.
      'content-security-policy': "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox",
      'content-disposition': `${download ? 'attachment' : 'inline'}; filename="${name}"`,
    });
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  async function serveStatic(p: string, res: http.ServerResponse): Promise<boolean> {
    const file = p === '/' || p === '/index.html' ? 'index.html' : p.startsWith('/assets/') ? p.slice('/assets/'.length) : undefined;
    if (!file || file.includes('..') || file.includes('/')) return false;
    const full = path.join(opts.assetsDir, file);
    const st = await stat(full).catch(() => undefined);
    if (!st?.isFile()) return false;
    res.writeHead(200, { 'content-type': STATIC_TYPES[path.extname(full)] ?? 'application/octet-stream', 'content-length': String(st.size), 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    createReadStream(full).pipe(res);
    return true;
  }

  const host = opts.host ?? '127.0.0.1';
  const loopback = LOOPBACK_NAMES.has(host.replace(/^\[|\]$/g, '')) || host === '::1';

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://board');
    const p = url.pathname;
    const q = url.searchParams;
    // On loopback, only loopback names: a page on another site cannot read the board through DNS rebinding.
    if (loopback && !LOOPBACK_NAMES.has((req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase())) {
      json(res, 421, { error: `this board answers to 127.0.0.1 or localhost, not ${JSON.stringify(req.headers.host ?? '')}. To fix: open the URL kaon board printed, or start it with --host <address> to serve other names` });
      return;
    }
    if (p === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) return json(res, 200, { ok: true });
    // The printed URL: a right token sets the cookie and redirects to the page without it (the hash route stays).
    const given = q.get('token');
    if (given !== null && (p === '/' || p === '/index.html') && req.method === 'GET') {
      if (!tokenOk(given, token)) {
        json(res, 401, { error: 'wrong board token in the URL. To fix: open the URL `kaon board` printed last (a new board makes a new token unless KAON_BOARD_TOKEN or KAON_BOARD_TOKEN_FILE fixes it)' });
        return;
      }
      res.writeHead(303, { location: '/', 'set-cookie': `${cookieName}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' });
      res.end();
      return;
    }
    if (p.startsWith('/api/')) {
      const header = (Array.isArray(req.headers['x-kaon-token']) ? req.headers['x-kaon-token'][0] : req.headers['x-kaon-token']) ?? (/^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim());
      const fromCookie = cookie(req, cookieName);
      if (!tokenOk(header, token) && !tokenOk(fromCookie, token)) {
        res.setHeader('www-authenticate', 'Bearer');
        json(res, 401, { error: `the board's API needs its token, for reads too (they show decrypted run data). To fix: open the board with the URL \`kaon board\` printed (…/?token=…), which sets a cookie; or send Authorization: Bearer <token> ($KAON_BOARD_TOKEN)` });
        return;
      }
      const writes = req.method !== 'GET' && req.method !== 'HEAD';
      // A cookie rides along on any same-site request, forms included: a write must also prove it comes from the page.
      if (writes && !tokenOk(header, token) && req.headers['x-kaon-request'] !== 'board') {
        json(res, 403, { error: 'a state-changing request with the cookie alone is refused (it could come from a form on another page). To fix: send the header X-Kaon-Request: board, as the board\'s page does, or Authorization: Bearer <token>' });
        return;
      }
      if (writes) {
        if (req.method === 'POST' && p === '/api/gates/decide') return json(res, 200, await decide(req));
        return json(res, 404, { error: `no ${req.method} ${p}` });
      }
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: `method ${req.method} is not allowed` });
    if (p === '/api/info') return json(res, 200, { namespace, ui: opts.ui, taskQueue: kaon.taskQueue });
    if (p === '/api/runs') return json(res, 200, await listRuns(q));
    if (p === '/api/pipelines') {
      const seen = new Set<string>();
      for await (const w of temporal.workflow.list({ query: 'KaonPipeline IS NOT NULL', pageSize: 200 })) {
        seen.add(summary(w).pipeline);
        if (seen.size >= 100) break;
      }
      return json(res, 200, { pipelines: [...seen].sort() });
    }
    if (p === '/api/run') return json(res, 200, await run(required(q, 'id')));
    if (p === '/api/run/live') return live(required(q, 'id'), req, res);
    if (p === '/api/step') return json(res, 200, await step(required(q, 'id'), required(q, 'key')));
    if (p === '/api/sweep') return json(res, 200, await sweeps.page(q));
    if (p === '/api/sweep/item') return json(res, 200, await sweeps.item(q));
    if (p === '/api/cards') return json(res, 200, await cards(q));
    if (p.startsWith('/api/card/')) return json(res, 200, await card(p.slice('/api/card/'.length)));
    if (p.startsWith('/api/artifact/')) return serveArtifact(p.slice('/api/artifact/'.length), q.get('download') === '1', res);
    if (p === '/api/metrics') return json(res, 200, await metrics(q));
    if (p === '/api/compare') return json(res, 200, await compare(required(q, 'ids').split(',').filter(Boolean)));
    if (p === '/api/gates') return json(res, 200, await gates());
    if (p === '/api/schedules') return json(res, 200, await schedules());
    if (p.startsWith('/api/')) return json(res, 404, { error: `no API ${p}` });
    if (await serveStatic(p, res)) return;
    json(res, 404, { error: `no page ${p}; the board's pages live under / (#/runs, #/run?id=…)` });
  }

  function required(q: URLSearchParams, name: string): string {
    const v = q.get(name);
    if (!v) throw new HttpError(400, `missing ?${name}=. To fix: use the links of the board's pages`);
    return v;
  }

  if (!existsSync(path.join(opts.assetsDir, 'index.html'))) {
    throw new KaonError({ code: ErrorCode.config, what: `the board's front end is not built (no ${path.join(opts.assetsDir, 'index.html')})`, fix: 'run `npm run build:board` in the Kaon checkout' });
  }
  let cookieName = boardCookieName(opts.port ?? 0);
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const status = err instanceof HttpError || err instanceof SweepApiError ? err.status : 500;
      json(res, status, { error: err instanceof Error ? err.message : String(err) });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new KaonError({ code: ErrorCode.config, what: `the board cannot listen on ${host}:${opts.port ?? 0}: ${err.message}`, fix: 'pick another --port (0 = any free one) or stop what uses it', cause: err })),
    );
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const addr = server.address() as { port: number };
  cookieName = boardCookieName(addr.port);
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
  const url = `http://${shown}:${addr.port}/`;
  return {
    url,
    tokenUrl: `${url}?token=${encodeURIComponent(token)}`,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function collectRefs(v: unknown, out: ArtifactRef[] = []): ArtifactRef[] {
  if (v && typeof v === 'object') {
    if ((v as { kind?: unknown }).kind === 'kaon.artifact') out.push(v as ArtifactRef);
    else for (const x of Object.values(v)) collectRefs(x, out);
  }
  return out;
}
