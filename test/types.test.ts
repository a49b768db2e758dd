// Type tests: the public API infers types from zod schemas end to end. Checked by `tsc` (npm test runs it);
// the runtime assertions keep node's runner honest about the values used.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expectTypeOf } from 'expect-type';
import type { Sweep } from '../src/definition';
import { z } from 'zod';
import type { KaonClient, RunHandle } from '../src/client';
import { defineStep, type PipelineParams, type PipelineResult, type StepInput, type StepOutput } from '../src/definition';
import { implementStep, type StepContext } from '../src/execution';
import { definePipeline, type Kaon, type Settled } from '../src/workflow';

const train = defineStep({
  name: 'typesTrain',
  version: 1,
  input: z.object({ rows: z.number().int(), rate: z.number().default(0.1) }),
  output: z.object({ accuracy: z.number(), labels: z.array(z.string()) }),
});

const pipeline = definePipeline({
  name: 'types-pipeline',
  params: z.object({ countries: z.array(z.string()), rows: z.number().default(10) }),
  async run(p, k) {
    expectTypeOf(p).toEqualTypeOf<{ countries: string[]; rows: number }>();
    expectTypeOf(k).toEqualTypeOf<Kaon<{ countries: string[]; rows?: number | undefined }>>();
    expectTypeOf(k.continueAsNew).parameter(0).toEqualTypeOf<{ countries: string[]; rows?: number | undefined }>();
    const one = await k.step(train, { rows: p.rows });
    expectTypeOf(one).toEqualTypeOf<{ accuracy: number; labels: string[] }>();
    const many = await k.foreach(p.countries, { concurrency: 2 }, (c) => k.step(train, { rows: c.length }));
    expectTypeOf(many).toEqualTypeOf<{ accuracy: number; labels: string[] }[]>();
    const settled = await k.foreach(p.countries, { onFailure: 'ignore' }, async (c) => c.length);
    expectTypeOf(settled).toEqualTypeOf<Settled<string, number>[]>();
    const both = await k.parallel({ a: () => k.step(train, { rows: 1 }), b: async () => 'x' as const });
    expectTypeOf(both).toEqualTypeOf<{ a: { accuracy: number; labels: string[] }; b: 'x' }>();
    // @ts-expect-error — rows must be a number
    await k.step(train, { rows: 'many' });
    // k.map: the Sweep carries the step's output type, and input() is checked against the step's input.
    const sweep = await k.map(train, p.countries, { input: (c, i) => ({ rows: c.length + i }), batch: 10 });
    expectTypeOf(sweep).toEqualTypeOf<Sweep<{ accuracy: number; labels: string[] }>>();
    // @ts-expect-error — input() must return the step's input
    await k.map(train, p.countries, { input: (c) => ({ rows: c }) });
    return { best: one.accuracy };
  },
});

test('step and pipeline types are inferred from their zod schemas', () => {
  expectTypeOf<StepInput<typeof train>>().toEqualTypeOf<{ rows: number; rate?: number | undefined }>();
  expectTypeOf<StepOutput<typeof train>>().toEqualTypeOf<{ accuracy: number; labels: string[] }>();
  expectTypeOf<PipelineParams<typeof pipeline>>().toEqualTypeOf<{ countries: string[]; rows?: number | undefined }>();
  expectTypeOf<PipelineResult<typeof pipeline>>().toEqualTypeOf<{ best: number }>();

  const impl = implementStep(train, (input, ctx) => {
    // The implementation sees parsed input: defaults applied.
    expectTypeOf(input).toEqualTypeOf<{ rows: number; rate: number }>();
    expectTypeOf(ctx).toEqualTypeOf<StepContext>();
    return { accuracy: input.rate, labels: [] };
  });
  // @ts-expect-error — the implementation must return the output schema's shape
  implementStep(train, () => ({ accuracy: 'high' }));

  type Start = (c: KaonClient) => Promise<RunHandle<{ best: number }>>;
  const start: Start = (c) => c.start(pipeline, { countries: ['US'] });
  // @ts-expect-error — params are checked against the pipeline's schema at compile time too
  const bad: Start = (c) => c.start(pipeline, { countries: 'US' });

  assert.equal(pipeline.kaon.name, 'types-pipeline');
  assert.equal(impl.def, train);
  assert.equal(typeof start, 'function');
  assert.equal(typeof bad, 'function');
});
