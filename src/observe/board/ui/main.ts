// The Kaon board's front end: hash-routed pages over the board's JSON API. Bundled by esbuild (npm run build:board).
import { Graph, layout } from '@dagrejs/dagre';
import { append, clear, h, s, type Child } from './dom';
import { renderMarkdown } from './markdown';

// ---- types of the API (the server's shapes, kept loose: the page only reads them) ----
interface StepState {
  key: string;
  step: string;
  status: string;
  attempts: number;
  startedAt?: number;
  endedAt?: number;
  error?: string;
  note?: string;
  foreach?: number;
  progress?: { fraction?: number; message?: string };
  sweep?: { total: number; running: number; succeeded: number; failed: number; cached: number; notRun: number; rate: number };
  cards?: Ref[];
  reusedFrom?: { from: string; runId: string };
}
interface RunState {
  pipeline: string;
  status: string;
  summary?: string;
  startedAt: number;
  endedAt?: number;
  steps: StepState[];
  foreach?: { id: number; total: number; parent?: number }[];
  gates?: { gate: string; status: string; requestedAt: number; by?: string; comment?: string }[];
  error?: string;
}
interface Ref {
  sha256: string;
  name?: string;
  size: number;
  mediaType: string;
  producer: { pipeline: string; runId: string; step: string; attempt: number };
}
interface RunInfo {
  id: string;
  runId: string;
  pipeline: string;
  status: string;
  temporal: string;
  runKey?: string;
  step?: string;
  startTime: number;
  closeTime?: number;
  ui?: string;
  parent?: string;
}
interface Timing {
  key: string;
  step: string;
  status: string;
  scheduledAt?: number;
  startedAt?: number;
  endedAt?: number;
  attempt?: number;
  wokeAt?: number;
  child?: string;
  reused?: unknown;
  failure?: { message: string };
  split?: { orchestrationMs: number; queueMs: number; codeMs: number; retriesIncluded: boolean };
}
interface RunView {
  info: RunInfo;
  state: RunState;
  source: string;
  params: unknown;
  result: unknown;
  edges: { from: string; to: string; kind: string }[];
  timings: Timing[];
  events: number;
}
interface CardDoc {
  title: string;
  markdown: string;
  images: { name: string; ref: Ref }[];
  ref: Ref;
}

// ---- plumbing ----
// Reads and writes carry the board's token as an HttpOnly cookie, set when the page was opened with the URL
// `kaon board` printed (…/?token=…): this script never sees the token. Writes add a header a cross-site form cannot.
async function api<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(path, init);
  const body = (await res.json().catch(() => ({ error: `HTTP ${res.status}` }))) as T & { error?: string };
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

const main = document.getElementById('main')!;
const put = (...c: Child[]) => append(main, c);
let cleanup: (() => void)[] = [];
function onLeave(fn: () => void): void {
  cleanup.push(fn);
}

function route(): { page: string; q: URLSearchParams } {
  const hash = location.hash.replace(/^#\/?/, '') || 'runs';
  const [page, query] = hash.split('?');
  return { page: page || 'runs', q: new URLSearchParams(query ?? '') };
}
function link(page: string, q: Record<string, string | undefined> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v) p.set(k, v);
  const qs = p.toString();
  return `#/${page}${qs ? `?${qs}` : ''}`;
}

function ago(t: number | undefined): string {
  if (!t) return '';
  const d = (Date.now() - t) / 1000;
  if (d < 60) return `${d.toFixed(0)}s ago`;
  if (d < 3600) return `${(d / 60).toFixed(0)}m ago`;
  if (d < 86400) return `${(d / 3600).toFixed(1)}h ago`;
  return new Date(t).toISOString().slice(0, 16).replace('T', ' ');
}
function dur(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}
function size(b: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB'];
  let v = b;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
}
const badge = (status: string) => h('span', { class: `badge status-${status.replace(/\s+/g, '-')}`, 'data-status': status }, status);
const jsonBlock = (v: unknown) => h('pre', { class: 'json' }, v === undefined ? '—' : JSON.stringify(v, null, 2));
function errorBox(err: unknown): HTMLElement {
  return h('div', { class: 'error' }, err instanceof Error ? err.message : String(err));
}
function uiLink(url: string | undefined, text = 'Temporal Web UI ↗'): HTMLElement | null {
  return url ? h('a', { href: url, target: '_blank', rel: 'noopener', class: 'ui-link' }, text) : null;
}

// ---- Runs ----
async function runsPage(q: URLSearchParams): Promise<void> {
  const pipelines = await api<{ pipelines: string[] }>('/api/pipelines').catch(() => ({ pipelines: [] as string[] }));
  const filter = { pipeline: q.get('pipeline') ?? '', status: q.get('status') ?? '', q: q.get('q') ?? '', since: q.get('since') ?? '' };
  const apply = () => (location.hash = link('runs', filter));
  const sel = (name: keyof typeof filter, options: [string, string][]) =>
    h('select', { name, onchange: (e: Event) => ((filter[name] = (e.target as HTMLSelectElement).value), apply()) }, options.map(([v, t]) => h('option', { value: v, selected: filter[name] === v }, t)));
  const search = h('input', { type: 'search', name: 'q', placeholder: 'run key or id…', value: filter.q, onchange: (e: Event) => ((filter.q = (e.target as HTMLInputElement).value), apply()) });
  const chosen = new Set<string>();
  const compareBtn = h('button', { disabled: true, onclick: () => (location.hash = link('compare', { ids: [...chosen].join(',') })) }, 'Compare');
  const tbody = h('tbody');
  const more = h('button', { class: 'more' }, 'Older runs');
  put(
    h('h1', {}, 'Runs'),
    h('div', { class: 'filters' },
      sel('pipeline', [['', 'all pipelines'], ...pipelines.pipelines.map((p): [string, string] => [p, p])]),
      sel('status', [['', 'any status'], ...['running', 'waiting', 'paused', 'succeeded', 'failed', 'cancelled'].map((x): [string, string] => [x, x])]),
      sel('since', [['', 'any time'], ['3600000', 'last hour'], ['86400000', 'last 24 h'], ['604800000', 'last 7 days'], ['2592000000', 'last 30 days']]),
      search, compareBtn, h('span', { class: 'live-dot', title: 'refreshed every 2 s' }, 'live')),
    h('table', { class: 'runs' }, h('thead', {}, h('tr', {}, h('th'), h('th', {}, 'run'), h('th', {}, 'pipeline'), h('th', {}, 'status'), h('th', {}, 'current step'), h('th', {}, 'started'), h('th', {}, 'took'), h('th'))), tbody),
    more,
  );
  let pages = 1;
  const load = async () => {
    const base: Record<string, string> = { limit: String(50 * pages) };
    if (filter.pipeline) base.pipeline = filter.pipeline;
    if (filter.status) base.status = filter.status;
    if (filter.q) base.q = filter.q;
    if (filter.since) base.since = String(Date.now() - Number(filter.since));
    const { runs, next } = await api<{ runs: RunInfo[]; next?: number }>(`/api/runs?${new URLSearchParams(base)}`);
    clear(tbody);
    if (runs.length === 0) tbody.append(h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'No runs match. Start one with `kaon run <pipeline>` or `npm run demo`.')));
    for (const r of runs) {
      const box = h('input', { type: 'checkbox', checked: chosen.has(r.id), onchange: (e: Event) => {
        if ((e.target as HTMLInputElement).checked) chosen.add(r.id);
        else chosen.delete(r.id);
        compareBtn.disabled = chosen.size < 2;
      } });
      tbody.append(h('tr', { 'data-run': r.id },
        h('td', {}, box),
        h('td', {}, h('a', { href: link('run', { id: r.id }) }, r.id), r.runKey ? h('div', { class: 'dim' }, `key ${r.runKey}`) : null),
        h('td', {}, r.pipeline),
        h('td', {}, badge(r.status)),
        h('td', {}, r.temporal === 'RUNNING' ? (r.step ?? '') : ''),
        h('td', { title: new Date(r.startTime).toISOString() }, ago(r.startTime)),
        h('td', {}, dur((r.closeTime ?? Date.now()) - r.startTime)),
        h('td', {}, uiLink(r.ui, 'Web UI ↗'))));
    }
    more.style.display = next ? '' : 'none';
  };
  more.onclick = () => {
    pages++;
    void load();
  };
  await load();
  const timer = setInterval(() => void load().catch(() => undefined), 2000);
  onLeave(() => clearInterval(timer));
}

// ---- Run: DAG, Gantt, time split ----
interface DagNode {
  id: string;
  label: string;
  sub: string;
  status: string;
  kind: 'step' | 'foreach' | 'sweep' | 'child';
  fraction?: number;
  counts?: Record<string, number>;
  keys: string[];
  child?: string;
}

function topForeach(state: RunState, id: number): number {
  let cur = state.foreach?.[id];
  while (cur?.parent !== undefined) cur = state.foreach?.[cur.parent];
  return cur?.id ?? id;
}
const labelOf = (key: string) => /\[(.*)\](?:#\d+)?$/.exec(key)?.[1] ?? key;
const baseOf = (key: string) => key.replace(/\[.*$/, '').replace(/#\d+$/, '');

/** Run state → DAG nodes: a foreach (all its items' steps) is ONE node with counts; so is a k.map sweep. */
export function dagNodes(view: RunView): { nodes: DagNode[]; nodeOf: Map<string, string> } {
  const { state } = view;
  const childOf = new Map(view.timings.filter((t) => t.child).map((t) => [t.key, t.child!]));
  const nodes = new Map<string, DagNode>();
  const nodeOf = new Map<string, string>();
  const groups = new Map<number, StepState[]>();
  for (const st of state.steps) {
    if (st.foreach !== undefined) {
      const g = topForeach(state, st.foreach);
      groups.set(g, [...(groups.get(g) ?? []), st]);
      nodeOf.set(st.key, `foreach:${g}`);
      if (!nodes.has(`foreach:${g}`)) nodes.set(`foreach:${g}`, { id: `foreach:${g}`, label: '', sub: '', status: 'running', kind: 'foreach', keys: [] });
      continue;
    }
    nodeOf.set(st.key, st.key);
    const n: DagNode = { id: st.key, label: st.key, sub: st.step !== st.key ? st.step : '', status: st.status, kind: 'step', keys: [st.key] };
    if (st.sweep) {
      const w = st.sweep;
      n.kind = 'sweep';
      n.counts = { total: w.total, succeeded: w.succeeded, failed: w.failed, running: w.running, cached: w.cached, notRun: w.notRun };
      n.fraction = w.total ? (w.succeeded + w.failed + w.notRun) / w.total : 0;
      n.sub = `${w.succeeded + w.failed}/${w.total} items · ${w.failed} failed · ${w.cached} cached`;
    } else if (childOf.has(st.key)) {
      n.kind = 'child';
      n.child = childOf.get(st.key)!;
      n.sub = `child pipeline ${st.step}`;
    } else if (st.attempts > 1) n.sub = `${st.step} · ${st.attempts} attempts`;
    if (st.progress?.fraction !== undefined && st.status === 'running') n.fraction = st.progress.fraction;
    nodes.set(n.id, n);
  }
  for (const [g, steps] of groups) {
    const n = nodes.get(`foreach:${g}`)!;
    const total = state.foreach?.[g]?.total ?? new Set(steps.map((x) => labelOf(x.key))).size;
    const byLabel = new Map<string, StepState[]>();
    for (const st of steps) byLabel.set(labelOf(st.key), [...(byLabel.get(labelOf(st.key)) ?? []), st]);
    let failed = 0;
    let running = 0;
    let done = 0;
    for (const list of byLabel.values()) {
      if (list.some((x) => x.status === 'failed')) failed++;
      else if (list.some((x) => ['running', 'waiting', 'pending'].includes(x.status))) running++;
      else done++;
    }
    const bases = [...new Set(steps.map((x) => baseOf(x.key)))];
    n.label = `foreach × ${total}`;
    n.sub = bases.join(' → ');
    n.counts = { total, succeeded: done, failed, running, pending: Math.max(0, total - byLabel.size) };
    n.fraction = total ? (done + failed) / total : 0;
    n.status = failed && running === 0 && done + failed === total ? 'failed' : done + failed === total ? (failed ? 'failed' : 'succeeded') : 'running';
    n.keys = steps.map((x) => x.key);
  }
  return { nodes: [...nodes.values()], nodeOf };
}

function drawDag(container: HTMLElement, view: RunView, onPick: (n: DagNode) => void): void {
  const { nodes, nodeOf } = dagNodes(view);
  const g = new Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 46, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: n.kind === 'step' ? 170 : 210, height: n.kind === 'step' ? 44 : 62 });
  const edges = new Map<string, { from: string; to: string; kind: string }>();
  for (const e of view.edges) {
    const from = nodeOf.get(e.from);
    const to = nodeOf.get(e.to);
    if (!from || !to || from === to) continue;
    const id = `${from}\u0000${to}`;
    const prev = edges.get(id);
    if (!prev || (prev.kind === 'order' && e.kind === 'data')) edges.set(id, { from, to, kind: e.kind });
  }
  for (const e of edges.values()) g.setEdge(e.from, e.to);
  layout(g);
  const gl = g.graph();
  // Edge routes may bend outside the nodes' box: measure them too, and shift everything into view.
  const xs: number[] = [];
  const ys: number[] = [];
  for (const id of g.nodes()) {
    const p = g.node(id);
    xs.push(p.x - p.width / 2, p.x + p.width / 2);
    ys.push(p.y - p.height / 2, p.y + p.height / 2);
  }
  for (const e of edges.values()) {
    for (const p of g.edge(e.from, e.to)?.points ?? []) {
      xs.push(p.x);
      ys.push(p.y);
    }
  }
  const minX = Math.min(0, ...xs) - 8;
  const minY = Math.min(0, ...ys) - 8;
  const svg = s('svg', { class: 'dag', width: Math.max(gl.width ?? 400, ...xs) - minX + 8, height: Math.max(gl.height ?? 100, ...ys) - minY + 8, viewBox: `${minX} ${minY} ${Math.max(gl.width ?? 400, ...xs) - minX + 8} ${Math.max(gl.height ?? 100, ...ys) - minY + 8}`, 'data-nodes': nodes.length, 'data-edges': edges.size });
  svg.append(s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#78909c' }))));
  for (const e of edges.values()) {
    const pts = g.edge(e.from, e.to)?.points ?? [];
    const d = pts.map((p: { x: number; y: number }, i: number) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
    svg.append(s('path', { d, class: `edge edge-${e.kind}`, 'data-from': e.from, 'data-to': e.to, 'marker-end': 'url(#arrow)' }));
  }
  for (const n of nodes) {
    const p = g.node(n.id);
    const w = p.width;
    const hgt = p.height;
    const x = p.x - w / 2;
    const y = p.y - hgt / 2;
    const grp = s('g', { class: `node node-${n.kind} status-${n.status}`, 'data-node': n.id, 'data-kind': n.kind, 'data-status': n.status, transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`, onclick: () => onPick(n) },
      s('rect', { width: w, height: hgt, rx: 6 }),
      s('text', { x: 8, y: 17, class: 'node-label' }, n.label.length > 26 ? `${n.label.slice(0, 25)}…` : n.label),
      s('text', { x: 8, y: 33, class: 'node-sub' }, n.sub.length > 32 ? `${n.sub.slice(0, 31)}…` : n.sub),
    );
    if (n.counts) {
      const c = n.counts;
      grp.append(s('text', { x: 8, y: 48, class: 'node-counts', 'data-total': c.total, 'data-succeeded': c.succeeded, 'data-failed': c.failed, 'data-running': c.running }, `${c.succeeded} ok · ${c.failed} failed · ${c.running} running${c.pending ? ` · ${c.pending} to start` : ''}`));
    }
    if (n.fraction !== undefined) {
      grp.append(s('rect', { x: 8, y: hgt - 9, width: w - 16, height: 4, class: 'bar-bg' }), s('rect', { x: 8, y: hgt - 9, width: Math.max(0, Math.min(1, n.fraction)) * (w - 16), height: 4, class: 'bar', 'data-fraction': n.fraction.toFixed(3) }));
    }
    grp.append(s('title', {}, `${n.label} — ${n.status}${n.kind === 'foreach' ? ' (click to list its items)' : n.kind === 'child' ? ' (click to expand the child pipeline)' : ''}`));
    svg.append(grp);
  }
  clear(container);
  container.append(svg);
}

function gantt(view: RunView): HTMLElement {
  const rows = view.timings.filter((t) => t.scheduledAt !== undefined);
  const MAX = 150;
  const shown = rows.slice(0, MAX);
  const t0 = Math.min(...shown.map((t) => t.wokeAt ?? t.scheduledAt!), view.state.startedAt || Infinity);
  const t1 = Math.max(...shown.map((t) => t.endedAt ?? Date.now()));
  const span = Math.max(1, t1 - t0);
  const W = 560;
  const x = (t: number) => ((t - t0) / span) * W;
  const table = h('table', { class: 'gantt' }, h('thead', {}, h('tr', {}, h('th', {}, 'step'), h('th', {}, 'attempts'), h('th', { class: 'timeline' }, `timeline (${dur(span)})`), h('th', {}, 'orchestration'), h('th', {}, 'queue wait'), h('th', {}, 'user code'))));
  const tb = h('tbody');
  for (const t of shown) {
    const bar = s('svg', { width: W, height: 14 });
    const woke = t.wokeAt ?? t.scheduledAt!;
    bar.append(s('rect', { x: x(woke), y: 3, width: Math.max(1, x(t.scheduledAt!) - x(woke)), height: 8, class: 'seg-orch' }));
    if (t.startedAt !== undefined) {
      bar.append(s('rect', { x: x(t.scheduledAt!), y: 3, width: Math.max(1, x(t.startedAt) - x(t.scheduledAt!)), height: 8, class: (t.attempt ?? 1) > 1 ? 'seg-retry' : 'seg-queue' }));
      bar.append(s('rect', { x: x(t.startedAt), y: 3, width: Math.max(1, x(t.endedAt ?? Date.now()) - x(t.startedAt)), height: 8, class: `seg-code status-${t.status.replace(/\s+/g, '-')}` }));
    } else bar.append(s('rect', { x: x(t.scheduledAt!), y: 3, width: Math.max(1, x(t.endedAt ?? Date.now()) - x(t.scheduledAt!)), height: 8, class: 'seg-queue' }));
    const sp = t.split;
    tb.append(h('tr', { 'data-key': t.key },
      h('td', {}, h('a', { href: link('step', { id: view.info.id, key: t.key }) }, t.key)),
      h('td', { class: (t.attempt ?? 1) > 1 ? 'retried' : '' }, String(t.attempt ?? (t.reused ? 0 : '')), (t.attempt ?? 1) > 1 ? ' (retried)' : ''),
      h('td', { class: 'timeline' }, bar),
      h('td', {}, dur(sp?.orchestrationMs)),
      h('td', {}, sp ? `${dur(sp.queueMs)}${sp.retriesIncluded ? ' incl. earlier attempts' : ''}` : ''),
      h('td', {}, dur(sp?.codeMs))));
  }
  table.append(tb);
  return h('div', {},
    h('p', { class: 'legend' }, h('span', { class: 'sw seg-orch' }), 'orchestration (the workflow task that scheduled the step) ', h('span', { class: 'sw seg-queue' }), 'queue wait (until a worker started it) ', h('span', { class: 'sw seg-retry' }), 'earlier attempts + retry backoff ', h('span', { class: 'sw seg-code' }), 'user code (the last attempt)'),
    table,
    rows.length > MAX ? h('p', { class: 'dim' }, `First ${MAX} of ${rows.length} step calls; the rest are in the Web UI.`) : null);
}

async function runPage(q: URLSearchParams): Promise<void> {
  const id = q.get('id')!;
  let view = await api<RunView>(`/api/run?id=${encodeURIComponent(id)}`);
  const head = h('div', { class: 'run-head' });
  const dagBox = h('div', { class: 'dag-box' });
  const detail = h('div', { class: 'detail' });
  const ganttBox = h('div');
  const gatesBox = h('div');
  put(head, gatesBox, h('h2', {}, 'DAG'), h('p', { class: 'dim' }, 'Edges: solid = an input of the step came from that step (an artifact it produced or its output value); dashed = scheduled when that step finished. A foreach is one node; click it for its items, a child pipeline to expand it.'), dagBox, detail, h('h2', {}, 'Attempts and time split'), ganttBox);
  const renderHead = () => {
    clear(head);
    const cards = view.state.steps.reduce((n, x) => n + (x.cards?.length ?? 0), 0);
    append(head, [
      h('h1', {}, view.info.pipeline, ' ', h('span', { id: 'run-status' }, badge(view.state.status))),
      h('p', {}, h('code', {}, view.info.id), ' · started ', ago(view.info.startTime), ' · ', dur((view.state.endedAt ?? view.info.closeTime ?? Date.now()) - view.info.startTime), ' · ', uiLink(view.info.ui), view.info.parent ? [' · child of ', h('a', { href: link('run', { id: view.info.parent }) }, view.info.parent)] : null),
      h('p', {}, cards ? h('a', { href: link('cards', { run: view.info.id }) }, `${cards} card${cards > 1 ? 's' : ''}`) : 'no cards', ' · ', view.state.summary ?? '', view.source === 'history' ? h('span', { class: 'dim' }, ' (rebuilt from history: no worker answered the progress query)') : null),
      view.state.error ? h('div', { class: 'error' }, view.state.error) : null,
      h('details', {}, h('summary', {}, 'params'), jsonBlock(view.params)),
    ]);
    clear(gatesBox);
    const waiting = (view.state.gates ?? []).filter((g) => g.status === 'waiting');
    if (waiting.length) gatesBox.append(h('div', { class: 'gate-note' }, `Waiting for approval: ${waiting.map((g) => g.gate).join(', ')} — `, h('a', { href: link('gates') }, 'Gates page')));
  };
  const pick = (n: DagNode) => {
    clear(detail);
    if (n.kind === 'foreach') {
      const labels = [...new Set(n.keys.map(labelOf))];
      const PAGE = 50;
      let page = 0;
      const list = h('div');
      const show = () => {
        clear(list);
        for (const l of labels.slice(page * PAGE, (page + 1) * PAGE)) {
          const mine = new Set(n.keys);
          const steps = view.state.steps.filter((x) => mine.has(x.key) && labelOf(x.key) === l);
          list.append(h('div', { class: 'branch' }, h('strong', {}, l), ' ', steps.map((x) => [h('a', { href: link('step', { id: view.info.id, key: x.key }), class: `chip status-${x.status}` }, x.key), ' '])));
        }
        list.append(h('p', {}, page > 0 ? h('button', { onclick: () => (page--, show()) }, '← previous') : null, ` items ${page * PAGE + 1}–${Math.min(labels.length, (page + 1) * PAGE)} of ${labels.length} `, (page + 1) * PAGE < labels.length ? h('button', { onclick: () => (page++, show()) }, 'next →') : null));
      };
      show();
      detail.append(h('h3', {}, `${n.label}: ${n.sub}`), list);
    } else if (n.kind === 'child' && n.child) {
      const box = h('div', { class: 'child-dag' }, 'loading…');
      detail.append(h('h3', {}, 'child pipeline ', h('a', { href: link('run', { id: n.child }) }, n.child)), box);
      void api<RunView>(`/api/run?id=${encodeURIComponent(n.child)}`).then((cv) => drawDag(box, cv, (cn) => (location.hash = link('step', { id: n.child!, key: cn.keys[0] ?? cn.id }))), (err: unknown) => box.replaceChildren(errorBox(err)));
    } else if (n.kind === 'sweep') location.hash = link('sweep', { id: view.info.id, key: n.id });
    else location.hash = link('step', { id: view.info.id, key: n.keys[0] ?? n.id });
  };
  renderHead();
  drawDag(dagBox, view, pick);
  ganttBox.append(gantt(view));
  if (view.info.temporal !== 'RUNNING') return;
  // Live: the server pushes the state when it changes (checked once a second); the layout follows new steps.
  const es = new EventSource(`/api/run/live?id=${encodeURIComponent(id)}`);
  let refreshing = false;
  es.onmessage = (m: MessageEvent<string>) => {
    const data = JSON.parse(m.data) as { info: RunInfo; state: RunState };
    const grew = data.state.steps.length !== view.state.steps.length;
    view = { ...view, state: data.state, info: { ...view.info, ...data.info, ui: view.info.ui } };
    renderHead();
    drawDag(dagBox, view, pick);
    if (grew && !refreshing) {
      // New steps: fetch the edges and timings again (they come from history).
      refreshing = true;
      void api<RunView>(`/api/run?id=${encodeURIComponent(id)}`).then((v) => {
        view = { ...v, state: view.state.steps.length > v.state.steps.length ? view.state : v.state };
        drawDag(dagBox, view, pick);
        ganttBox.replaceChildren(gantt(view));
      }).finally(() => (refreshing = false));
    }
  };
  es.addEventListener('closed', () => {
    es.close();
    void api<RunView>(`/api/run?id=${encodeURIComponent(id)}`).then((v) => {
      view = v;
      renderHead();
      drawDag(dagBox, view, pick);
      ganttBox.replaceChildren(gantt(view));
    });
  });
  onLeave(() => es.close());
}

// ---- Step ----
interface ArtifactInfo {
  ref: Ref;
  producedFrom: { sha256: string; name?: string; uri: string; by?: Ref['producer'] }[];
  usedBy: { sha256: string; name?: string; by: Ref['producer'] }[];
}
function artifactTable(list: ArtifactInfo[], run: string): HTMLElement {
  if (!list.length) return h('p', { class: 'dim' }, 'none');
  const who = (p: Ref['producer']) => (p.runId === run ? h('a', { href: link('step', { id: p.runId, key: p.step }) }, p.step) : h('span', {}, h('a', { href: link('step', { id: p.runId, key: p.step }) }, `${p.step}`), ` of ${p.runId}`));
  return h('table', { class: 'artifacts' }, h('thead', {}, h('tr', {}, h('th', {}, 'artifact'), h('th', {}, 'size'), h('th', {}, 'sha256'), h('th', {}, 'made from'), h('th', {}, 'used by'))),
    h('tbody', {}, list.map((a) => h('tr', { 'data-sha256': a.ref.sha256 },
      h('td', {}, h('a', { href: `/api/artifact/${a.ref.sha256}?download=1`, download: a.ref.name?.split('/').pop() ?? a.ref.sha256, class: 'download' }, a.ref.name ?? a.ref.sha256.slice(0, 12)), h('div', { class: 'dim' }, a.ref.mediaType)),
      h('td', {}, size(a.ref.size)),
      h('td', {}, h('code', { title: a.ref.sha256 }, a.ref.sha256.slice(0, 12))),
      h('td', { class: 'lineage-up' }, a.producedFrom.length ? a.producedFrom.map((i) => h('div', {}, i.name ?? i.sha256.slice(0, 12), ' ← ', i.by ? who(i.by) : 'outside any run')) : '—'),
      h('td', { class: 'lineage-down' }, a.usedBy.length ? a.usedBy.slice(0, 20).map((u) => h('div', {}, u.name ?? u.sha256.slice(0, 12), ' by ', who(u.by))) : '—')))));
}

async function stepPage(q: URLSearchParams): Promise<void> {
  const id = q.get('id')!;
  const key = q.get('key')!;
  const st = await api<{
    run: string; key: string; step?: string; status?: string; input: unknown; output: unknown; attempts: number;
    timing?: { scheduledAt?: number; startedAt?: number; endedAt?: number; split?: Timing['split'] };
    failure?: { message: string; fix?: string; type?: string; nonRetryable?: boolean; issues?: string[] };
    logTail?: string[]; artifacts: ArtifactInfo[]; inputs: ArtifactInfo[]; cards: Ref[]; ui?: string; child?: string; state?: StepState; sweep?: boolean;
  }>(`/api/step?id=${encodeURIComponent(id)}&key=${encodeURIComponent(key)}`);
  if (st.sweep) {
    // A sweep's call is its coordinator (step kaon.map): its page is the item table.
    history.replaceState(null, '', link('sweep', { id, key }));
    return sweepPage(new URLSearchParams({ id, key }));
  }
  put(
    h('p', {}, h('a', { href: link('run', { id }) }, `← run ${id}`)),
    h('h1', {}, key, ' ', badge(st.status ?? 'unknown')),
    h('p', {}, `step ${st.step ?? ''} · `, h('span', { class: 'attempts' }, `${st.attempts} attempt${st.attempts === 1 ? '' : 's'}`), st.timing?.split ? ` · orchestration ${dur(st.timing.split.orchestrationMs)}, queue wait ${dur(st.timing.split.queueMs)}${st.timing.split.retriesIncluded ? ' (incl. earlier attempts and backoff)' : ''}, user code ${dur(st.timing.split.codeMs)} (last attempt)` : '', ' · ', uiLink(st.ui), st.child ? [' · ', h('a', { href: link('run', { id: st.child }) }, 'child run')] : null,
      st.state?.reusedFrom ? h('span', {}, ` · reused (${st.state.reusedFrom.from}) from `, h('a', { href: link('run', { id: st.state.reusedFrom.runId }) }, st.state.reusedFrom.runId)) : null),
    st.failure ? h('div', { class: 'failure' },
      h('h2', {}, 'Error', st.failure.type ? ` (${st.failure.type}${st.failure.nonRetryable ? ', not retried' : ''})` : ''),
      h('pre', { class: 'failure-message' }, st.failure.fix ? st.failure.message.slice(0, st.failure.message.indexOf(st.failure.fix)).trim() : st.failure.message),
      st.failure.fix ? h('div', { class: 'to-fix' }, st.failure.fix) : null,
      st.failure.issues?.length ? h('ul', {}, st.failure.issues.map((i) => h('li', {}, i))) : null) : null,
    st.logTail?.length ? h('div', {}, h('h2', {}, 'Log tail'), h('pre', { class: 'log-tail' }, st.logTail.join('\n'))) : null,
    st.cards.length ? h('div', {}, h('h2', {}, 'Cards'), h('div', { class: 'cards', id: 'step-cards' })) : null,
    h('h2', {}, 'Artifacts it produced'), artifactTable(st.artifacts, id),
    h('h2', {}, 'Input artifacts'), artifactTable(st.inputs, id),
    h('div', { class: 'io' }, h('div', {}, h('h2', {}, 'Input'), jsonBlock(st.input)), h('div', {}, h('h2', {}, 'Output'), jsonBlock(st.output))),
  );
  const box = document.getElementById('step-cards');
  if (box) for (const c of st.cards) box.append(await cardView(c.sha256, { run: id, step: key }));
}

// ---- Sweep: an item table, one page of rows in the DOM ----
interface SweepSignature {
  id: string;
  text: string;
  count: number;
  first: number;
  example: string;
}
interface SweepRow {
  i: number;
  state: string;
  cached?: boolean;
  resumed?: boolean;
  preview: string;
}
interface SweepView {
  run: string;
  key: string;
  coordinator: string;
  temporal: string;
  target: string;
  targetKind: 'step' | 'pipeline';
  onFailure: string;
  batch: number;
  inputs: 'inline' | 'manifest';
  from: 'results' | 'shards';
  results?: Ref;
  durationMs?: number;
  ui?: string;
  total: number;
  counts: { ok: number; failed: number; skipped: number; cancelled: number; pending: number; cached: number; resumed: number };
  matched: number;
  offset: number;
  limit: number;
  rows: SweepRow[];
  signatures: SweepSignature[];
  ms: number;
}
interface SweepItem {
  i: number;
  total: number;
  target: string;
  state: string;
  cached: boolean;
  resumed: boolean;
  input: unknown;
  output: unknown;
  error?: string;
  artifacts: ArtifactInfo[];
  inputArtifacts: ArtifactInfo[];
  attempts?: { shard: string; shardUi?: string; activityId?: string; attempts?: number; status?: string; failure?: string; child?: string; ui?: string; items?: { first: number; last: number } };
}

const fill = (el: Element, ...c: Child[]) => {
  clear(el);
  append(el, c);
};
const SWEEP_STATES: [string, string][] = [['', 'all'], ['ok', 'ok'], ['failed', 'failed'], ['not-run', 'not run'], ['cached', 'cached'], ['pending', 'pending']];
const itemBadge = (state: string) => h('span', { class: `badge status-${state === 'ok' ? 'succeeded' : state}`, 'data-status': state }, state);

async function sweepPage(q: URLSearchParams): Promise<void> {
  const id = q.get('id')!;
  const key = q.get('key')!;
  const sel = { state: q.get('state') ?? '', sig: q.get('sig') ?? '', offset: Number(q.get('offset') ?? 0) || 0, limit: Math.min(500, Math.max(1, Number(q.get('limit') ?? 100) || 100)), item: q.get('item') ?? '' };
  const head = h('div', { class: 'run-head' });
  const chips = h('div', { class: 'filters state-chips' });
  const sigBox = h('div', { class: 'signatures' });
  const pager = h('div', { class: 'pager' });
  const tbody = h('tbody');
  const table = h('table', { class: 'sweep-items' }, h('thead', {}, h('tr', {}, h('th', {}, 'item'), h('th', {}, 'state'), h('th', {}, 'output / error'))), tbody);
  const detail = h('div', { class: 'sweep-detail' });
  put(h('p', {}, h('a', { href: link('run', { id }) }, `← run ${id}`)), head, chips, sigBox, pager, h('div', { class: 'sweep-layout' }, h('div', { class: 'sweep-table' }, table), detail));
  const sync = () => history.replaceState(null, '', link('sweep', { id, key, state: sel.state, sig: sel.sig, offset: sel.offset ? String(sel.offset) : '', limit: sel.limit !== 100 ? String(sel.limit) : '', item: sel.item }));
  let view: SweepView | undefined;
  let loading = 0;

  const renderHead = (v: SweepView) => {
    const c = v.counts;
    const status = v.temporal === 'RUNNING' ? 'running' : v.temporal === 'COMPLETED' ? (c.failed && v.onFailure !== 'ignore' ? 'failed' : 'succeeded') : v.temporal.toLowerCase();
    fill(head, 
      h('h1', {}, `sweep ${v.key} `, h('span', { id: 'sweep-status' }, badge(status))),
      h('p', {}, `${v.targetKind} ${v.target} over ${v.total} items (${v.inputs} inputs${v.batch > 1 ? `, batches of ${v.batch}` : ''}, on failure: ${v.onFailure})`, v.durationMs !== undefined ? ` · took ${dur(v.durationMs)}` : '', ' · ', uiLink(v.ui, 'coordinator in the Web UI ↗'),
        v.results ? [' · ', h('a', { href: `/api/artifact/${v.results.sha256}?download=1`, class: 'download' }, 'results manifest')] : null),
      v.from === 'shards' ? h('p', { class: 'dim' }, 'The sweep has no results manifest yet: rows come from the shards that finished; the other items are pending.') : null,
    );
    const count: Record<string, number> = { '': v.total, ok: c.ok, failed: c.failed, 'not-run': c.skipped + c.cancelled, cached: c.cached, pending: c.pending };
    fill(chips, ...SWEEP_STATES.filter(([s]) => s === '' || s === sel.state || count[s]).map(([s, label]) =>
      h('button', { class: `chip-filter${sel.state === s && !sel.sig ? ' active' : ''}`, 'data-state': s || 'all', 'data-count': count[s] ?? 0, onclick: () => { sel.state = s; sel.sig = ''; sel.offset = 0; void load(); } }, `${label} `, h('span', { class: 'count' }, String(count[s] ?? 0)))));
    clear(sigBox);
    if (v.signatures.length) {
      const shown = v.signatures.slice(0, 20);
      append(sigBox, [h('h2', {}, `Failures by error (${v.signatures.length} kind${v.signatures.length > 1 ? 's' : ''})`), h('ul', {}, shown.map((g) =>
        h('li', { class: `signature${sel.sig === g.id ? ' active' : ''}`, 'data-sig': g.id, 'data-count': g.count, title: g.example, onclick: () => { sel.state = 'failed'; sel.sig = sel.sig === g.id ? '' : g.id; sel.offset = 0; void load(); } },
          h('span', { class: 'sig-count' }, String(g.count)), ' × ', h('code', { class: 'sig-text' }, g.text), h('span', { class: 'dim' }, ` first: item ${g.first}`)))),
      v.signatures.length > shown.length ? h('p', { class: 'dim' }, `and ${v.signatures.length - shown.length} more kinds`) : null]);
    }
  };

  const renderRows = (v: SweepView) => {
    const last = v.offset + v.rows.length;
    const go = (offset: number) => () => {
      sel.offset = Math.max(0, offset);
      void load();
    };
    fill(pager, 
      h('button', { class: 'prev', disabled: v.offset === 0, onclick: go(v.offset - v.limit) }, '← previous'),
      h('span', { class: 'range', 'data-matched': v.matched }, v.matched ? ` items ${v.offset + 1}–${last} of ${v.matched}${sel.state || sel.sig ? ` matching (${v.total} in all)` : ''} ` : ' no items match '),
      h('button', { class: 'next', disabled: last >= v.matched, onclick: go(v.offset + v.limit) }, 'next →'),
      v.matched > v.limit ? h('button', { class: 'last', onclick: go(Math.floor((v.matched - 1) / v.limit) * v.limit) }, 'last') : null,
      h('span', { class: 'dim' }, ` served in ${dur(v.ms)}`));
    // Exactly this page's rows: the table never holds more than one page.
    fill(tbody, ...v.rows.map((r) => h('tr', { 'data-i': r.i, 'data-state': r.state, class: `item-row${String(r.i) === sel.item ? ' selected' : ''}`, onclick: () => { sel.item = String(r.i); sync(); for (const tr of tbody.children) tr.classList.toggle('selected', tr === tbodyRow(r.i)); void showItem(r.i); } },
      h('td', {}, h('a', { href: link('sweep', { id, key, item: String(r.i) }), onclick: (e: Event) => e.preventDefault() }, String(r.i))),
      h('td', {}, itemBadge(r.state), r.cached ? h('span', { class: 'chip status-cached' }, r.resumed ? 'resumed' : 'cached') : null),
      h('td', { class: r.state === 'ok' ? 'preview' : 'preview error-preview' }, r.preview))));
    if (!v.rows.length) tbody.append(h('tr', {}, h('td', { colspan: 3, class: 'empty' }, 'No items match.')));
    table.setAttribute('data-filter', `${sel.state}|${sel.sig}|${v.offset}`);
  };
  const tbodyRow = (i: number) => tbody.querySelector(`tr[data-i="${i}"]`);

  async function load(): Promise<void> {
    sync();
    const mine = ++loading;
    table.setAttribute('data-busy', '1');
    const params = new URLSearchParams({ run: id, key, offset: String(sel.offset), limit: String(sel.limit) });
    if (sel.state) params.set('state', sel.state);
    if (sel.sig) params.set('sig', sel.sig);
    try {
      const v = await api<SweepView>(`/api/sweep?${params}`);
      if (mine !== loading) return;
      view = v;
      renderHead(v);
      renderRows(v);
    } finally {
      if (mine === loading) table.removeAttribute('data-busy');
    }
  }

  async function showItem(i: number): Promise<void> {
    fill(detail, h('p', { class: 'dim' }, `loading item ${i}…`));
    try {
      const it = await api<SweepItem>(`/api/sweep/item?${new URLSearchParams({ run: id, key, i: String(i) })}`);
      if (sel.item !== String(i)) return;
      const a = it.attempts;
      const fix = it.error && /To fix:/i.test(it.error) ? it.error.slice(it.error.search(/To fix:/i)) : undefined;
      fill(detail, h('div', { class: 'sweep-item', 'data-i': it.i },
        h('h2', {}, `item ${it.i} of ${it.total} `, itemBadge(it.state), it.cached ? h('span', { class: 'chip status-cached' }, it.resumed ? 'resumed' : 'cached') : null),
        a ? h('p', { class: 'item-attempts' },
          a.child ? ['child run ', h('a', { href: link('run', { id: a.child }) }, a.child), ' · ', uiLink(a.ui)]
            : [h('code', {}, a.activityId ?? ''), ` · `, h('span', { class: 'attempt-count', 'data-attempts': a.attempts ?? 0 }, `${a.attempts ?? 0} attempt${a.attempts === 1 ? '' : 's'}`), ` · call ${a.status ?? ''}`, a.items ? ` (one call for items ${a.items.first}–${a.items.last})` : '', ' · shard ', uiLink(a.shardUi, `${a.shard.split('/').pop()} ↗`) ?? a.shard.split('/').pop()!]) : null,
        it.error ? h('div', { class: 'failure' }, h('h3', {}, 'Error'), h('pre', { class: 'item-error' }, fix ? it.error.slice(0, it.error.indexOf(fix)).trim() : it.error), fix ? h('div', { class: 'to-fix' }, fix) : null) : null,
        a?.failure && a.failure !== it.error ? h('p', { class: 'dim' }, `last attempt's failure: ${a.failure}`) : null,
        h('h3', {}, 'Input'), h('pre', { class: 'json item-input' }, JSON.stringify(it.input, null, 2) ?? '—'),
        h('h3', {}, 'Output'), h('pre', { class: 'json item-output' }, it.output === undefined ? '—' : JSON.stringify(it.output, null, 2)),
        h('h3', {}, 'Artifacts in its output'), artifactTable(it.artifacts, id),
        it.inputArtifacts.length ? [h('h3', {}, 'Artifacts in its input'), artifactTable(it.inputArtifacts, id)] : null));
    } catch (err) {
      fill(detail, errorBox(err));
    }
  }

  await load();
  if (sel.item) void showItem(Number(sel.item));
  if (view?.temporal === 'RUNNING') {
    // Live: the page in view refreshes while the sweep runs (a request per 2 s, one page of rows).
    const timer = setInterval(() => {
      if (view?.temporal !== 'RUNNING') return clearInterval(timer);
      void load().catch(() => undefined);
    }, 2000);
    onLeave(() => clearInterval(timer));
  }
}

// ---- Cards ----
async function cardView(sha: string, where: { run: string; step: string }): Promise<HTMLElement> {
  const doc = await api<CardDoc>(`/api/card/${sha}`);
  const byName = new Map(doc.images.map((i) => [i.name, `/api/artifact/${i.ref.sha256}`]));
  const used = new Set<string>();
  const body = renderMarkdown(doc.markdown, (n) => byName.get(n), used);
  const rest = doc.images.filter((i) => !used.has(i.name)).map((i) => h('img', { src: byName.get(i.name)!, alt: i.name, class: 'card-image', 'data-name': i.name }));
  return h('article', { class: 'card', 'data-card': sha }, h('h3', {}, doc.title), h('p', { class: 'dim' }, h('a', { href: link('step', { id: where.run, key: where.step }) }, where.step), ' of ', h('a', { href: link('run', { id: where.run }) }, where.run)), body, rest);
}

async function cardsPage(q: URLSearchParams): Promise<void> {
  const run = q.get('run') ?? undefined;
  const { cards } = await api<{ cards: { run: string; step: string; card: CardDoc }[] }>(`/api/cards?${new URLSearchParams(run ? { run } : { limit: '10' })}`);
  put(h('h1', {}, 'Cards', run ? [' of ', h('a', { href: link('run', { id: run }) }, run)] : ' of the latest runs'));
  if (!cards.length) put(h('p', { class: 'dim' }, 'No cards yet. A step publishes one with ctx.card({ title, markdown, images }) or kaon_step.card(title, markdown, images=[…]).'));
  const grid = h('div', { class: 'cards' });
  put(grid);
  for (const c of cards.slice(0, 60)) grid.append(await cardView(c.card.ref.sha256, { run: c.run, step: c.step }));
}

// ---- Metrics ----
async function metricsPage(q: URLSearchParams): Promise<void> {
  const pipelines = (await api<{ pipelines: string[] }>('/api/pipelines')).pipelines;
  const pipeline = q.get('pipeline') ?? pipelines[0] ?? '';
  const sel = { pipeline, step: q.get('step') ?? '', field: q.get('field') ?? '', mark: q.get('mark') ?? '', limit: q.get('limit') ?? '30' };
  put(h('h1', {}, 'Metrics across runs'));
  if (!pipeline) {
    put(h('p', {}, 'No runs yet.'));
    return;
  }
  const first = await api<{ fields: Record<string, string[]>; steps: string[] }>(`/api/metrics?${new URLSearchParams({ pipeline, limit: sel.limit })}`);
  if (!sel.step) sel.step = first.steps.includes('evaluateRecommender') ? 'evaluateRecommender' : (first.steps[0] ?? '');
  if (!sel.field) sel.field = (first.fields[sel.step] ?? []).includes('ndcgAtK') ? 'ndcgAtK' : (first.fields[sel.step]?.[0] ?? '');
  if (!q.get('mark') && first.steps.includes('publishModel')) sel.mark = 'publish';
  const go = () => (location.hash = link('metrics', sel));
  const select = (name: keyof typeof sel, values: string[]) => h('select', { name, onchange: (e: Event) => ((sel[name] = (e.target as HTMLSelectElement).value), name === 'step' ? (sel.field = '') : null, go()) }, values.map((v) => h('option', { value: v, selected: v === sel[name] }, v || '—')));
  put(h('div', { class: 'filters' }, select('pipeline', pipelines), select('step', first.steps), select('field', first.fields[sel.step] ?? []), h('label', {}, ' mark runs whose step ', h('input', { name: 'mark', value: sel.mark, size: 10, onchange: (e: Event) => ((sel.mark = (e.target as HTMLInputElement).value), go()) }), ' succeeded for the series (champion)'), select('limit', ['10', '30', '100'])));
  const data = await api<{ runs: { id: string; startTime: number }[]; points: { run: string; startTime: number; series: string; value: number; marked: boolean }[] }>(`/api/metrics?${new URLSearchParams(sel)}`);
  put(plot(data.runs, data.points, `${sel.step} ${sel.field}`));
}

const COLORS = ['#1565c0', '#2e7d32', '#c62828', '#6a1b9a', '#ef6c00', '#00838f', '#5d4037', '#ad1457'];
function plot(runs: { id: string; startTime: number }[], points: { run: string; series: string; value: number; marked: boolean }[], title: string): HTMLElement {
  if (!points.length) return h('p', { class: 'dim' }, 'No numeric values for this step and field in the latest finished runs.');
  const W = 760, H = 320, L = 60, R = 110, T = 20, B = 40;
  const idx = new Map(runs.map((r, i) => [r.id, i]));
  const vals = points.map((p) => p.value);
  let lo = Math.min(...vals);
  let hi = Math.max(...vals);
  if (lo === hi) {
    lo -= 1e-6;
    hi += 1e-6;
  }
  const pad = (hi - lo) * 0.08;
  lo -= pad;
  hi += pad;
  const x = (i: number) => L + (runs.length <= 1 ? (W - L - R) / 2 : (i / (runs.length - 1)) * (W - L - R));
  const y = (v: number) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const svg = s('svg', { class: 'plot', width: W, height: H, 'data-runs': runs.length, 'data-points': points.length });
  svg.append(s('text', { x: L, y: 14, class: 'plot-title' }, title));
  for (let k = 0; k <= 4; k++) {
    const v = lo + ((hi - lo) * k) / 4;
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }), s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, v.toPrecision(3)));
  }
  svg.append(s('text', { x: (W - R + L) / 2, y: H - 8, 'text-anchor': 'middle', class: 'tick' }, `the last ${runs.length} finished runs, oldest → newest`));
  const series = [...new Set(points.map((p) => p.series))].sort();
  series.forEach((name, si) => {
    const color = COLORS[si % COLORS.length]!;
    const ps = points.filter((p) => p.series === name).sort((a, b) => idx.get(a.run)! - idx.get(b.run)!);
    svg.append(s('path', { d: ps.map((p, i) => `${i ? 'L' : 'M'}${x(idx.get(p.run)!).toFixed(1)},${y(p.value).toFixed(1)}`).join(' '), stroke: color, fill: 'none', 'stroke-width': 1.5 }));
    // The champion: the latest run whose marking step succeeded for this series.
    const champion = [...ps].reverse().find((p) => p.marked);
    for (const p of ps) {
      const cx = x(idx.get(p.run)!);
      const cy = y(p.value);
      const pt = s('circle', { cx, cy, r: p === champion ? 6 : 3.5, fill: p.marked ? color : '#fff', stroke: color, 'stroke-width': 1.5, class: `point${p === champion ? ' champion' : ''}`, 'data-run': p.run, 'data-series': name, 'data-value': p.value, onclick: () => (location.hash = link('run', { id: p.run })) }, s('title', {}, `${name}: ${p.value} — ${p.run}${p === champion ? ' (champion)' : p.marked ? ' (published)' : ''}`));
      svg.append(pt);
      if (p === champion) svg.append(s('text', { x: cx + 8, y: cy - 8, class: 'champion-label', fill: color }, '★ champion'));
    }
    svg.append(s('text', { x: W - R + 10, y: T + 14 + si * 16, fill: color, class: 'legend-item' }, name));
  });
  return h('div', {}, svg, h('p', { class: 'dim' }, 'Filled points: runs whose marking step succeeded for the series (published); the large one is the latest such (champion). Click a point to open its run.'));
}

// ---- Compare ----
async function comparePage(q: URLSearchParams): Promise<void> {
  const ids = (q.get('ids') ?? '').split(',').filter(Boolean);
  const { runs } = await api<{ runs: { info: RunInfo; params: unknown; steps: Record<string, { status: string; cached: boolean; metrics: Record<string, number> }>; artifacts: { key: string; sha256: string; size: number }[] }[] }>(`/api/compare?ids=${encodeURIComponent(ids.join(','))}`);
  const flat = (v: unknown, p = '', out: Record<string, string> = {}) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) flat(x, p ? `${p}.${k}` : k, out);
    else out[p || 'value'] = JSON.stringify(v);
    return out;
  };
  const heads = h('tr', {}, h('th'), runs.map((r) => h('th', {}, h('a', { href: link('run', { id: r.info.id }) }, r.info.id), h('div', {}, badge(r.info.status)))));
  const table = (title: string, rows: [string, (string | HTMLElement)[]][], cls: string) =>
    h('div', {}, h('h2', {}, title), rows.length ? h('table', { class: `compare ${cls}` }, h('thead', {}, heads.cloneNode(true)), h('tbody', {}, rows.map(([k, cells]) => h('tr', { 'data-row': k }, h('th', {}, k), cells.map((c) => h('td', {}, c)))))) : h('p', { class: 'dim' }, 'no differences'));
  const params = runs.map((r) => flat(r.params));
  const pkeys = [...new Set(params.flatMap((p) => Object.keys(p)))].sort();
  const pdiff = pkeys.filter((k) => new Set(params.map((p) => p[k])).size > 1).map((k): [string, string[]] => [k, params.map((p) => p[k] ?? '—')]);
  const metricRows: [string, string[]][] = [];
  const stepKeys = [...new Set(runs.flatMap((r) => Object.keys(r.steps)))];
  for (const k of stepKeys) {
    const fields = [...new Set(runs.flatMap((r) => Object.keys(r.steps[k]?.metrics ?? {})))].sort();
    for (const f of fields) {
      const vals = runs.map((r) => r.steps[k]?.metrics[f]);
      if (new Set(vals.map(String)).size > 1) metricRows.push([`${k} ${f}`, vals.map((v) => (v === undefined ? '—' : String(Number(v.toPrecision(6)))))]);
    }
  }
  const cacheRows = stepKeys.filter((k) => new Set(runs.map((r) => `${r.steps[k]?.status}:${r.steps[k]?.cached}`)).size > 1 || runs.some((r) => r.steps[k]?.cached)).map((k): [string, HTMLElement[]] => [k, runs.map((r) => (r.steps[k] ? h('span', { class: `chip status-${r.steps[k]!.cached ? 'cached' : r.steps[k]!.status}` }, r.steps[k]!.cached ? 'cached' : r.steps[k]!.status === 'succeeded' ? 're-run' : r.steps[k]!.status) : h('span', { class: 'dim' }, '—')))]);
  const akeys = [...new Set(runs.flatMap((r) => r.artifacts.map((a) => a.key)))].sort();
  const artRows = akeys.filter((k) => new Set(runs.map((r) => r.artifacts.find((a) => a.key === k)?.sha256 ?? '')).size > 1).map((k): [string, HTMLElement[]] => [k, runs.map((r) => {
    const a = r.artifacts.find((x) => x.key === k);
    return a ? h('a', { href: `/api/artifact/${a.sha256}?download=1`, title: a.sha256 }, h('code', {}, a.sha256.slice(0, 12))) : h('span', { class: 'dim' }, '—');
  })]);
  put(h('h1', {}, `Compare ${runs.length} runs`), table('Params that differ', pdiff, 'params'), table('Metrics that differ (numeric step outputs)', metricRows, 'metrics'), table('Cached or re-run steps', cacheRows, 'cache'), table('Artifacts that differ by sha256', artRows, 'artifacts-diff'));
}

// ---- Schedules & triggers ----
async function schedulesPage(): Promise<void> {
  const data = await api<{ schedules: { id: string; pipeline: string; paused: boolean; next: string[]; recent: { scheduledAt: string; runId: string }[]; running: string[] }[] | { error: string }; triggers: { joins: { trigger: string; key: string; arrived: { event: string }[]; waitingFor: string[] }[]; waiting: { run: string; event: string }[]; errors: string[] } | { error: string } }>('/api/schedules');
  put(h('h1', {}, 'Schedules and triggers'));
  if ('error' in data.schedules) put(errorBox(data.schedules.error));
  else if (!data.schedules.length) put(h('p', { class: 'dim' }, 'No schedules. Create one with `kaon schedule create`.'));
  else put(h('table', { class: 'schedules' }, h('thead', {}, h('tr', {}, h('th', {}, 'schedule'), h('th', {}, 'pipeline'), h('th', {}, 'next runs'), h('th', {}, 'recent runs'))), h('tbody', {}, data.schedules.map((sc) => h('tr', {}, h('td', {}, sc.id, sc.paused ? ' (paused)' : ''), h('td', {}, sc.pipeline), h('td', {}, sc.next.slice(0, 3).map((n) => h('div', {}, new Date(n).toISOString().slice(0, 16)))), h('td', {}, sc.recent.slice(-5).map((r) => h('div', {}, h('a', { href: link('run', { id: r.runId }) }, new Date(r.scheduledAt).toISOString().slice(0, 16))))))))));
  put(h('h2', {}, 'Pending joins and waiting runs'));
  if ('error' in data.triggers) put(errorBox(data.triggers.error));
  else {
    const t = data.triggers;
    put(
      t.joins.length ? h('ul', {}, t.joins.map((j) => h('li', {}, `${j.trigger} [${j.key}]: has ${j.arrived.map((a) => a.event).join(', ') || 'nothing'}, waits for ${j.waitingFor.join(', ')}`))) : h('p', { class: 'dim' }, 'no pending joins'),
      t.waiting.length ? h('ul', {}, t.waiting.map((w) => h('li', {}, h('a', { href: link('run', { id: w.run }) }, w.run), ` waits for event ${w.event}`))) : h('p', { class: 'dim' }, 'no run waits in k.waitFor'),
      t.errors.length ? h('div', { class: 'error' }, t.errors.join('\n')) : null);
  }
}

// ---- Gates ----
async function gatesPage(): Promise<void> {
  const { gates } = await api<{ gates: { run: string; pipeline: string; gate: { gate: string; requestedAt: number; timeoutAt?: number; details?: unknown } | null; ui?: string }[] }>('/api/gates');
  put(h('h1', {}, 'Gates'));
  if (!gates.length) put(h('p', { class: 'dim' }, 'No run waits for an approval.'));
  for (const g of gates) {
    const msg = h('span', { class: 'decision-result' });
    const comment = h('input', { placeholder: 'comment', name: 'comment' });
    const decide = async (decision: 'approve' | 'reject') => {
      try {
        const r = await api<{ gate: { status: string } }>('/api/gates/decide', { method: 'POST', headers: { 'content-type': 'application/json', 'x-kaon-request': 'board' }, body: JSON.stringify({ run: g.run, gate: g.gate?.gate, decision, comment: comment.value }) });
        msg.replaceChildren(badge(r.gate.status));
      } catch (err) {
        msg.replaceChildren(errorBox(err));
      }
    };
    put(h('div', { class: 'gate', 'data-run': g.run },
      h('h3', {}, g.gate ? g.gate.gate : '(unknown gate)', ' — ', h('a', { href: link('run', { id: g.run }) }, g.run), ' ', uiLink(g.ui)),
      g.gate ? h('p', {}, `requested ${ago(g.gate.requestedAt)}`, g.gate.timeoutAt ? `, times out ${new Date(g.gate.timeoutAt).toISOString()}` : '') : h('p', { class: 'dim' }, 'no worker answered the query'),
      g.gate?.details !== undefined ? jsonBlock(g.gate.details) : null,
      g.gate ? h('p', {}, comment, ' ', h('button', { class: 'approve', onclick: () => void decide('approve') }, 'Approve'), ' ', h('button', { class: 'reject', onclick: () => void decide('reject') }, 'Reject'), ' ', msg) : null));
  }
}

// ---- shell ----
const PAGES: Record<string, (q: URLSearchParams) => Promise<void>> = { runs: runsPage, run: runPage, step: stepPage, sweep: sweepPage, cards: cardsPage, metrics: metricsPage, compare: comparePage, schedules: schedulesPage, gates: gatesPage };

async function render(): Promise<void> {
  for (const fn of cleanup) fn();
  cleanup = [];
  clear(main);
  const { page, q } = route();
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('data-page') === page);
  const fn = PAGES[page];
  main.setAttribute('data-page', page);
  main.removeAttribute('data-ready');
  try {
    if (!fn) throw new Error(`no page "${page}"`);
    await fn(q);
  } catch (err) {
    put(errorBox(err));
  }
  main.setAttribute('data-ready', '1');
}

window.addEventListener('hashchange', () => void render());
void render();
