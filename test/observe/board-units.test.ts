// The board's pure parts: edges derived from a history's step calls, numeric fields for the Metrics page, and
// card validation (a bad card stores nothing).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ArtifactRef } from '../../src/definition/artifact-ref';
import { storeCard } from '../../src/execution';
import { deriveEdges, type StepTiming } from '../../src/observe/board/history';
import { numericFields } from '../../src/observe/board/server';

const ref = (step: string, runId = 'run-1'): ArtifactRef => ({ kind: 'kaon.artifact', uri: 'file:///x', sha256: 'a'.repeat(64), size: 1, mediaType: 'application/octet-stream', producer: { pipeline: 'p', runId, step, attempt: 1 } });
const call = (key: string, input: unknown, output?: unknown): StepTiming => ({ key, step: key.replace(/\[.*$/, ''), status: 'succeeded', input, output });

test('edges: artifact producers and passed-on outputs are data edges; the step that woke the workflow is an order edge', () => {
  const metrics = { ndcgAtK: 0.31, recallAtK: 0.42, lift: 0.8 };
  const steps = [
    call('ingest', { date: 'd' }, { data: ref('ingest') }),
    call('validate', { data: ref('ingest') }, { ok: true }),
    call('train[US]', { data: ref('ingest'), rank: 4 }, { model: ref('train[US]') }),
    call('evaluate[US]', { model: ref('train[US]') }, metrics),
    call('decide', { candidates: [{ country: 'US', metrics }] }, { ok: true }),
    // An artifact of another run is no edge of this one.
    call('report', { old: ref('ingest', 'run-0') }, {}),
  ];
  const woken = new Map([['train[US]', ['validate']], ['report', ['decide']]]);
  const edges = deriveEdges('run-1', steps, woken).map((e) => `${e.from}->${e.to} ${e.kind}`);
  assert.deepEqual(edges.sort(), [
    'decide->report order',
    'evaluate[US]->decide data',
    'ingest->train[US] data',
    'ingest->validate data',
    'train[US]->evaluate[US] data',
    'validate->train[US] order',
  ]);
});

test('numeric fields: nested numbers by path, artifact refs and strings left out', () => {
  assert.deepEqual(numericFields({ ndcgAtK: 0.3, baseline: { ndcgAtK: 0.1 }, model: ref('t'), name: 'x', k: 20 }), { ndcgAtK: 0.3, 'baseline.ndcgAtK': 0.1, k: 20 });
});

test('a card with an image that is not an image, or two images of one name, is refused before anything is stored', async () => {
  const puts: string[] = [];
  const put = async (_s: unknown, meta?: { name?: string }) => {
    puts.push(meta?.name ?? '');
    return ref('s');
  };
  await assert.rejects(storeCard(put, { title: 'Model card', markdown: 'x', images: [{ name: 'model.npz', bytes: 'x' }] }, 'card of step "s"'), /image "model\.npz" of card "Model card" is not a PNG, SVG.*To fix: save the plot as \.png or \.svg/s);
  await assert.rejects(storeCard(put, { title: 'Model card', markdown: 'x', images: [{ name: 'a.png', bytes: 'x' }, { name: 'a.png', bytes: 'y' }] }, 'card of step "s"'), /two images named "a\.png"/);
  await assert.rejects(storeCard(put, { title: '', markdown: 'x' }, 'card of step "s"'), /card title "" is not valid/);
  assert.deepEqual(puts, []);
  await storeCard(put, { title: 'Model card US', markdown: '![p](p.svg)', images: [{ name: 'p.svg', bytes: '<svg/>' }] }, 'card of step "s"');
  assert.deepEqual(puts, ['p.svg', 'card-model-card-us.json']);
});
