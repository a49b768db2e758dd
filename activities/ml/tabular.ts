// Small, dependency-free tabular ML used by the demo pipeline. Pure functions: deterministic given a seed.

export interface Dataset {
  x: number[][];
  y: number[];
}

/** mulberry32: a tiny seeded PRNG, so the same seed gives the same dataset on any machine. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(r: () => number): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

const round = (v: number) => Math.round(v * 1e4) / 1e4;

/**
 * Binary classification data with a planted linear rule plus one interaction, and label noise:
 * logistic regression does well, naive Bayes decently, kNN in between. Rounded to keep payloads small.
 */
export function generate(seed: number, rows: number, features: number): Dataset {
  const r = rng(seed);
  const w = Array.from({ length: features }, () => gaussian(r) * 1.5);
  const x: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < rows; i++) {
    const row = Array.from({ length: features }, () => round(gaussian(r)));
    const z = row.reduce((s, v, j) => s + v * w[j]!, 0) + 0.5 * row[0]! * (row[1] ?? 0) + gaussian(r) * 0.75;
    x.push(row);
    y.push(z > 0 ? 1 : 0);
  }
  return { x, y };
}

export function split(data: Dataset, testFraction: number, seed: number): { train: Dataset; test: Dataset } {
  const r = rng(seed ^ 0x9e3779b9);
  const idx = data.y.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  const nTest = Math.round(idx.length * testFraction);
  const pick = (ids: number[]): Dataset => ({ x: ids.map((i) => data.x[i]!), y: ids.map((i) => data.y[i]!) });
  return { test: pick(idx.slice(0, nTest)), train: pick(idx.slice(nTest)) };
}

export function profile(data: Dataset): { rows: number; features: number; positiveRate: number; means: number[]; stds: number[] } {
  const n = data.x.length;
  const f = data.x[0]?.length ?? 0;
  const means = Array.from({ length: f }, (_, j) => data.x.reduce((s, r) => s + r[j]!, 0) / n);
  const stds = Array.from({ length: f }, (_, j) => Math.sqrt(data.x.reduce((s, r) => s + (r[j]! - means[j]!) ** 2, 0) / n));
  return { rows: n, features: f, positiveRate: data.y.reduce((s, v) => s + v, 0) / n, means: means.map(round), stds: stds.map(round) };
}

export type ModelKind = 'logistic' | 'naive-bayes' | 'knn';
export type Model =
  | { kind: 'logistic'; weights: number[]; bias: number }
  | { kind: 'naive-bayes'; prior: number; mean: [number[], number[]]; variance: [number[], number[]] }
  | { kind: 'knn'; k: number; train: Dataset };

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** Batch gradient descent with L2; `onEpoch` reports progress. */
export function trainLogistic(train: Dataset, epochs = 300, lr = 0.5, l2 = 1e-3, onEpoch?: (e: number, loss: number) => void): Model {
  const f = train.x[0]?.length ?? 0;
  const w = new Array<number>(f).fill(0);
  let b = 0;
  const n = train.x.length;
  for (let e = 0; e < epochs; e++) {
    const gw = new Array<number>(f).fill(0);
    let gb = 0;
    let loss = 0;
    for (let i = 0; i < n; i++) {
      const row = train.x[i]!;
      const p = sigmoid(row.reduce((s, v, j) => s + v * w[j]!, b));
      const err = p - train.y[i]!;
      loss -= train.y[i]! ? Math.log(Math.max(p, 1e-12)) : Math.log(Math.max(1 - p, 1e-12));
      for (let j = 0; j < f; j++) gw[j]! += err * row[j]!;
      gb += err;
    }
    for (let j = 0; j < f; j++) w[j] = w[j]! - lr * (gw[j]! / n + l2 * w[j]!);
    b -= (lr * gb) / n;
    onEpoch?.(e, loss / n);
  }
  return { kind: 'logistic', weights: w.map(round), bias: round(b) };
}

export function trainNaiveBayes(train: Dataset): Model {
  const f = train.x[0]?.length ?? 0;
  const stats = [0, 1].map((c) => {
    const rows = train.x.filter((_, i) => train.y[i] === c);
    const mean = Array.from({ length: f }, (_, j) => rows.reduce((s, r) => s + r[j]!, 0) / Math.max(rows.length, 1));
    const variance = Array.from({ length: f }, (_, j) => rows.reduce((s, r) => s + (r[j]! - mean[j]!) ** 2, 0) / Math.max(rows.length, 1) + 1e-6);
    return { mean: mean.map(round), variance: variance.map((v) => Math.max(round(v), 1e-4)) };
  });
  const prior = train.y.reduce((s, v) => s + v, 0) / train.y.length;
  return { kind: 'naive-bayes', prior: round(prior), mean: [stats[0]!.mean, stats[1]!.mean], variance: [stats[0]!.variance, stats[1]!.variance] };
}

export function trainKnn(train: Dataset, k = 15): Model {
  return { kind: 'knn', k, train };
}

/** Probability of class 1. */
export function predict(model: Model, row: number[]): number {
  switch (model.kind) {
    case 'logistic':
      return sigmoid(row.reduce((s, v, j) => s + v * model.weights[j]!, model.bias));
    case 'naive-bayes': {
      const ll = [0, 1].map((c) =>
        row.reduce((s, v, j) => {
          const mu = model.mean[c as 0 | 1][j]!;
          const va = model.variance[c as 0 | 1][j]!;
          return s - 0.5 * Math.log(2 * Math.PI * va) - (v - mu) ** 2 / (2 * va);
        }, Math.log(c ? model.prior : 1 - model.prior)),
      );
      return 1 / (1 + Math.exp(ll[0]! - ll[1]!));
    }
    case 'knn': {
      const d = model.train.x.map((r, i) => ({ d: r.reduce((s, v, j) => s + (v - row[j]!) ** 2, 0), y: model.train.y[i]! }));
      d.sort((a, b) => a.d - b.d);
      const top = d.slice(0, model.k);
      return top.reduce((s, t) => s + t.y, 0) / top.length;
    }
  }
}

export interface Metrics {
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  auc: number;
}

/** Threshold 0.5 metrics, and ROC AUC by the rank-sum (Mann-Whitney) formula with ties averaged. */
export function evaluate(model: Model, test: Dataset): Metrics {
  const p = test.x.map((r) => predict(model, r));
  let tp = 0, fp = 0, fn = 0, tn = 0;
  p.forEach((v, i) => {
    const yhat = v >= 0.5 ? 1 : 0;
    const y = test.y[i];
    if (yhat && y) tp++;
    else if (yhat && !y) fp++;
    else if (!yhat && y) fn++;
    else tn++;
  });
  const order = p.map((v, i) => ({ v, y: test.y[i]! })).sort((a, b) => a.v - b.v);
  let rankSum = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1]!.v === order[i]!.v) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) if (order[t]!.y) rankSum += avgRank;
    i = j + 1;
  }
  const pos = test.y.filter((y) => y === 1).length;
  const neg = test.y.length - pos;
  const auc = pos && neg ? (rankSum - (pos * (pos + 1)) / 2) / (pos * neg) : 0.5;
  const precision = tp + fp ? tp / (tp + fp) : 0;
  const recall = tp + fn ? tp / (tp + fn) : 0;
  return {
    accuracy: round((tp + tn) / test.y.length),
    precision: round(precision),
    recall: round(recall),
    f1: round(precision + recall ? (2 * precision * recall) / (precision + recall) : 0),
    auc: round(auc),
  };
}
