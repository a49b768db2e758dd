// Suggestions for a mistyped name, without zod: the CLI uses them before it loads anything heavy.

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** ` (did you mean "x"?)` for the known word closest to `word`, or '' when none is close. */
export function didYouMean(word: string, known: readonly string[]): string {
  const best = known.map((n) => [n, distance(word.toLowerCase(), n.toLowerCase())] as const).sort((a, b) => a[1] - b[1])[0];
  return best && best[1] <= Math.max(2, Math.floor(word.length / 3)) ? ` (did you mean "${best[0]}"?)` : '';
}
