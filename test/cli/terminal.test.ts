// Terminal rendering of run states: exact tables, bars and plain change lines.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RunState, StepState } from '../../src/observe';
import { diffLines, formatClock, formatDuration, renderBars, renderPlain, renderTable, stripAnsi } from '../../src/observe';

const T = 1_000_000;
const NOW = T + 12_300;

function sample(): RunState {
  return {
    pipeline: 'ml-demo',
    status: 'running',
    startedAt: T,
    failedItems: [],
    steps: [
      { key: 'generateDataset', step: 'generateDataset', status: 'succeeded', attempts: 1, startedAt: T, endedAt: T + 1200 },
      { key: 'train[US]', step: 'train', status: 'running', attempts: 1, startedAt: T + 2000, progress: { fraction: 0.4, message: 'epoch 4/10' } },
      { key: 'train[BR]', step: 'train', status: 'running', attempts: 2, startedAt: T + 2000 },
      { key: 'train[DE]', step: 'train', status: 'waiting', attempts: 1, startedAt: T + 2000, note: 'waiting for worker' },
      { key: 'train[FR]', step: 'train', status: 'failed', attempts: 3, startedAt: T + 2000, endedAt: T + 5000, error: 'boom\n    at stack' },
      { key: 'profile', step: 'profile', status: 'cached', attempts: 0, startedAt: T, endedAt: T, reusedFrom: { from: 'cache', runId: 'abcdef1234567' } },
    ],
  };
}

describe('formatting helpers', () => {
  test('durations read naturally at every scale', () => {
    assert.equal(formatDuration(400), '0.4s');
    assert.equal(formatDuration(12_345), '12.3s');
    assert.equal(formatDuration(125_000), '2m05s');
    assert.equal(formatDuration(3_720_000), '1h02m');
    assert.equal(formatDuration(-5), '0.0s');
  });

  test('clock is local HH:MM:SS', () => {
    assert.equal(formatClock(new Date(2026, 10, 22, 9, 5, 3)), '09:05:03');
  });
});

describe('renderTable', () => {
  test('one aligned row per step with icon, attempts, time and detail', () => {
    assert.equal(
      renderTable(sample(), NOW),
      [
        'ml-demo running · 6 steps: 1 succeeded, 2 running, 1 waiting, 1 failed, 1 cached · 12.3s',
        '',
        'STEP             STATUS       ATTEMPTS  TIME     DETAIL',
        'generateDataset  ✓ succeeded  1         1.2s',
        'train[US]        ▶ running    1         10.3s    40% epoch 4/10',
        'train[BR]        ▶ running    2         10.3s',
        'train[DE]        ◌ waiting    1         10.3s    waiting for worker',
        'train[FR]        ✗ failed     3         3.0s     boom',
        'profile          ↺ cached     0         0.0s     cache of abcdef12',
      ].join('\n'),
    );
  });

  test('a failed run shows its error and failed items', () => {
    const s: RunState = {
      ...sample(),
      status: 'failed',
      endedAt: T + 20_000,
      error: '1 of 4 items failed\nmore',
      failedItems: [{ key: 'FR', error: 'boom\nstack' }],
    };
    const lines = renderTable(s, NOW).split('\n');
    assert.equal(lines[0], 'ml-demo failed · 6 steps: 1 succeeded, 2 running, 1 waiting, 1 failed, 1 cached · 20.0s');
    assert.equal(lines[1], 'error: 1 of 4 items failed');
    assert.deepEqual(lines.slice(-2), ['failed items (1):', '  FR: boom']);
  });

  test('a run without steps says so', () => {
    const s: RunState = { pipeline: 'p', status: 'running', startedAt: T, steps: [], failedItems: [] };
    assert.equal(renderTable(s, T + 500), ['p running · 0 steps · 0.5s', '', 'STEP  STATUS       ATTEMPTS  TIME     DETAIL', '(no steps yet)'].join('\n'));
  });
});

describe('renderBars', () => {
  test('bars show fraction, icon, attempts, elapsed and message within the width', () => {
    const out = renderBars(sample(), NOW, 80);
    assert.equal(
      out,
      [
        'ml-demo running · 6 steps: 1 succeeded, 2 running, 1 waiting, 1 failed, 1 cache…',
        '✓ generateDataset [████████████████████] 100%    1.2s',
        '▶ train[US]       [████████░░░░░░░░░░░░]  40%   10.3s  epoch 4/10',
        // No fraction yet: an indeterminate block, positioned by the clock (floor(NOW / 250) % 18 = 17).
        '▶ train[BR]       [░░░░░░░░░░░░░░░░░▒▒▒]        10.3s  attempt 2',
        '◌ train[DE]       [                    ]        10.3s  waiting for worker',
        '✗ train[FR]       [░░░░░░░░░░░░░░░░░░░░]         3.0s  attempt 3  boom',
        '↺ profile         [████████████████████] 100%    0.0s  cache of abcdef12',
      ].join('\n'),
    );
    assert.ok(out.split('\n').every((l) => l.length <= 80));
    assert.ok(!out.includes('\u001b'), 'no escape codes without color');
  });

  test('the indeterminate block moves with the clock', () => {
    const row = (now: number) => renderBars(sample(), now, 80).split('\n')[3]!;
    assert.notEqual(row(NOW), row(NOW + 250));
    assert.match(row(NOW + 250), /\[▒▒▒░{17}\]/);
  });

  test('colour wraps pieces in ANSI codes but never changes the visible text', () => {
    const plain = renderBars(sample(), NOW, 80);
    const colored = renderBars(sample(), NOW, 80, { color: true });
    assert.ok(colored.includes('\u001b[32m✓ \u001b[0m'), 'succeeded icon in green');
    assert.ok(colored.includes('\u001b[31m✗ \u001b[0m'), 'failed icon in red');
    assert.equal(stripAnsi(colored), plain);
  });

  test('narrow terminals: every line fits', () => {
    for (const width of [20, 40, 60]) {
      for (const line of renderBars(sample(), NOW, width).split('\n')) assert.ok(line.length <= width, `${JSON.stringify(line)} fits ${width}`);
    }
  });

  test('large fan-outs: unfinished steps first, the rest summarised in one line', () => {
    const steps: StepState[] = Array.from({ length: 50 }, (_, i) => ({ key: `item[${i}]`, step: 'item', status: 'succeeded', attempts: 1, startedAt: T, endedAt: T + 100 }));
    steps[3] = { ...steps[3]!, status: 'running', endedAt: undefined, progress: { fraction: 0.5 } } as StepState;
    const lines = renderBars({ pipeline: 'fan', status: 'running', startedAt: T, steps, failedItems: [] }, NOW, 80, { maxRows: 5 }).split('\n');
    assert.equal(lines.length, 1 + 5 + 1);
    assert.match(lines[1]!, /^▶ item\[3\] /);
    assert.deepEqual(lines.slice(2, 6).map((l) => l.split(' ')[1]), ['item[46]', 'item[47]', 'item[48]', 'item[49]']);
    assert.equal(lines[6], '… 45 more steps (45 succeeded)');
  });
});

describe('renderPlain and diffLines', () => {
  test('one stable line per step, the run first while it runs', () => {
    assert.deepEqual(renderPlain(sample(), NOW), [
      'ml-demo running',
      'generateDataset succeeded in 1.2s',
      'train[US] running 40% epoch 4/10',
      'train[BR] running (attempt 2)',
      'train[DE] waiting for worker',
      'train[FR] failed after 3 attempts: boom',
      'profile cached (cache of abcdef12)',
    ]);
    // Stable: the clock alone changes nothing, so a watcher prints nothing new.
    assert.deepEqual(diffLines(renderPlain(sample(), NOW), renderPlain(sample(), NOW + 5000)), []);
  });

  test('diffLines yields exactly the changed lines, in order', () => {
    const before = sample();
    const after = sample();
    after.steps[1]!.progress = { fraction: 0.5, message: 'epoch 5/10' };
    after.steps[3] = { ...after.steps[3]!, status: 'running', note: undefined } as StepState;
    assert.deepEqual(diffLines(renderPlain(before, NOW), renderPlain(after, NOW)), ['train[US] running 50% epoch 5/10', 'train[DE] running']);
  });

  test('the end of the run comes last, with its time', () => {
    const done: RunState = {
      pipeline: 'ml-demo',
      status: 'succeeded',
      startedAt: T,
      endedAt: T + 20_000,
      failedItems: [],
      steps: [{ key: 'train[US]', step: 'train', status: 'succeeded', attempts: 2, startedAt: T, endedAt: T + 19_000 }],
    };
    const lines = renderPlain(done, NOW);
    assert.deepEqual(lines, ['train[US] succeeded in 19.0s after 2 attempts', 'ml-demo succeeded in 20.0s']);
    assert.deepEqual(diffLines(renderPlain(sample(), NOW), lines), lines);
  });
});
