// Kaon's own metrics: a small registry (counters, histograms) rendered as Prometheus text, and the sink the
// execution seam reports to. The worker host serves it (kaon worker --metrics); nothing here opens a socket.

export type Labels = Readonly<Record<string, string>>;

/** Step durations in seconds: from a cache hit (ms) to a long training step (hours). */
export const STEP_DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400];

interface CounterFamily {
  kind: 'counter';
  help: string;
  series: Map<string, { labels: Labels; value: number }>;
}

interface HistogramFamily {
  kind: 'histogram';
  help: string;
  buckets: readonly number[];
  series: Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>;
}

type Family = CounterFamily | HistogramFamily;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A series' identity: its labels in name order (NUL cannot occur in a name; values are escaped by JSON). */
function seriesKey(labels: Labels): string {
  let key = '';
  for (const k of Object.keys(labels).sort()) key += `${k}\u0000${JSON.stringify(labels[k])}\u0000`;
  return key;
}

function escapeValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function renderLabels(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.keys(labels).sort().map((k) => `${k}="${escapeValue(labels[k]!)}"`);
  if (extra) pairs.push(`${extra[0]}="${escapeValue(extra[1])}"`);
  return pairs.length ? `{${pairs.join(',')}}` : '';
}

function num(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return Number.isNaN(v) ? 'NaN' : String(v);
}

/** A Prometheus registry of counters and histograms, rendered in the text exposition format (0.0.4). */
export class MetricsRegistry {
  private readonly families = new Map<string, Family>();

  private family<F extends Family>(name: string, make: () => F): F {
    const existing = this.families.get(name);
    if (existing) {
      if (existing.kind !== make().kind) throw new Error(`metric ${name} is already registered as a ${existing.kind}`);
      return existing as F;
    }
    if (!NAME.test(name)) throw new Error(`metric name ${JSON.stringify(name)} is not valid in Prometheus`);
    const f = make();
    this.families.set(name, f);
    return f;
  }

  private static check(labels: Labels): void {
    for (const k of Object.keys(labels)) if (!LABEL.test(k) || k === 'le') throw new Error(`label name ${JSON.stringify(k)} is not valid`);
  }

  /** Declare a counter (it renders HELP/TYPE even before its first increment). */
  counter(name: string, help: string): { inc(labels?: Labels, by?: number): void } {
    const f = this.family<CounterFamily>(name, () => ({ kind: 'counter', help, series: new Map() }));
    return {
      inc: (labels = {}, by = 1) => {
        if (!(by >= 0)) throw new Error(`counter ${name} can only go up (got ${by})`);
        const key = seriesKey(labels);
        let s = f.series.get(key);
        if (!s) {
          MetricsRegistry.check(labels);
          s = { labels: { ...labels }, value: 0 };
          f.series.set(key, s);
        }
        s.value += by;
      },
    };
  }

  histogram(name: string, help: string, buckets: readonly number[] = STEP_DURATION_BUCKETS): { observe(labels: Labels, value: number): void } {
    const sorted = [...buckets].sort((a, b) => a - b);
    const f = this.family<HistogramFamily>(name, () => ({ kind: 'histogram', help, buckets: sorted, series: new Map() }));
    return {
      observe: (labels, value) => {
        const key = seriesKey(labels);
        let s = f.series.get(key);
        if (!s) {
          MetricsRegistry.check(labels);
          s = { labels: { ...labels }, counts: f.buckets.map(() => 0), sum: 0, count: 0 };
          f.series.set(key, s);
        }
        // Cumulative buckets: a value counts in every bucket whose bound it does not exceed.
        f.buckets.forEach((b, i) => {
          if (value <= b) s.counts[i]! += 1;
        });
        s.sum += value;
        s.count += 1;
      },
    };
  }

  /** The registry in Prometheus text format, families and series in a stable order. */
  render(): string {
    const out: string[] = [];
    for (const name of [...this.families.keys()].sort()) {
      const f = this.families.get(name)!;
      out.push(`# HELP ${name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${f.kind}`);
      const series = [...f.series.values()].sort((a, b) => seriesKey(a.labels).localeCompare(seriesKey(b.labels)));
      for (const s of series) {
        if (f.kind === 'counter') {
          out.push(`${name}${renderLabels(s.labels)} ${num((s as { value: number }).value)}`);
          continue;
        }
        const h = s as { labels: Labels; counts: number[]; sum: number; count: number };
        f.buckets.forEach((b, i) => out.push(`${name}_bucket${renderLabels(h.labels, ['le', num(b)])} ${h.counts[i]}`));
        out.push(`${name}_bucket${renderLabels(h.labels, ['le', '+Inf'])} ${h.count}`, `${name}_sum${renderLabels(h.labels)} ${num(h.sum)}`, `${name}_count${renderLabels(h.labels)} ${h.count}`);
      }
    }
    return out.length ? `${out.join('\n')}\n` : '';
  }
}

/** How one step execution (an activity attempt) ended. */
export type StepOutcome = 'succeeded' | 'failed' | 'cancelled' | 'cached' | 'resumed';

/**
 * What the execution seam reports. Labels are bounded by construction: step names, queues and pipeline names,
 * never a run id or a step key with an item index.
 */
export interface KaonMetrics {
  /** One activity attempt of a step finished (every attempt, so retries show as failed + succeeded). */
  stepFinished(e: { step: string; queue: string; status: StepOutcome; seconds: number; attempt: number }): void;
  /** A cacheable step (or sweep item) looked up the cross-run cache. */
  cacheLookup(step: string, hit: boolean): void;
  /** Artifact bytes steps wrote into the store ('in') or read out of it ('out'). */
  artifactBytes(direction: 'in' | 'out', bytes: number): void;
  /** One k.map sweep item finished. */
  sweepItem(e: { pipeline: string; step: string; status: 'succeeded' | 'failed' | 'cached' }): void;
}

/** The sink over a registry: Kaon's metric families, declared up front so a scrape shows them from the start. */
export function createKaonMetrics(registry: MetricsRegistry = new MetricsRegistry()): KaonMetrics & { registry: MetricsRegistry } {
  const duration = registry.histogram('kaon_step_duration_seconds', 'Duration of step activity attempts, by step, queue and how the attempt ended (succeeded, failed, cancelled, cached, resumed).');
  const attempts = registry.counter('kaon_step_attempts_total', 'Step activity attempts, counted as each ends, by step and queue (retries included).');
  const retries = registry.counter('kaon_step_retries_total', 'Step activity attempts after the first (Temporal retries), by step and queue.');
  const hits = registry.counter('kaon_cache_hits_total', 'Cross-run cache lookups that reused an earlier output, by step.');
  const misses = registry.counter('kaon_cache_misses_total', 'Cross-run cache lookups that found nothing usable (the step ran), by step.');
  const bytes = registry.counter('kaon_artifact_bytes_total', 'Artifact bytes steps wrote into the store (direction="in") and read from it (direction="out").');
  const items = registry.counter('kaon_sweep_items_total', 'k.map sweep items finished, by pipeline, step and status; rate() gives items per second.');
  return {
    registry,
    stepFinished: ({ step, queue, status, seconds, attempt }) => {
      duration.observe({ step, queue, status }, seconds);
      attempts.inc({ step, queue });
      if (attempt > 1) retries.inc({ step, queue });
    },
    cacheLookup: (step, hit) => (hit ? hits : misses).inc({ step }),
    artifactBytes: (direction, n) => bytes.inc({ direction }, n),
    sweepItem: ({ pipeline, step, status }) => items.inc({ pipeline, step, status }),
  };
}

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse Prometheus text into samples (the subset Kaon and the Temporal SDK emit: no timestamps, no exemplars). */
export function parsePrometheusText(text: string): ParsedSample[] {
  const samples: ParsedSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const v = m[3]!;
    samples.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return samples;
}
