// Sandbox code: zod's format schemas, checked as the workflow bundle compiled them. Kaon bundles this module with the
// same webpack configuration as pipelines, evaluates it at worker start (runtime/bundle.ts), and tests run it inside
// a real workflow (test/reliability/zod-formats.test.ts). A bundler that resolves a namespace re-export to a
// same-named top-level export (webpack 5.113.0 turned `z.iso.date` into `z.date`) fails one of these checks.
import { z } from 'zod';

/** One format schema: a value it must accept and one it must refuse. */
interface FormatCase {
  name: string;
  schema: () => z.ZodType;
  good: unknown;
  bad: unknown;
}

/** The formats checked: every `z.iso.*` (the namespace that shadows top-level names) and the common string formats. */
export const FORMAT_CASES: readonly FormatCase[] = [
  { name: 'z.iso.date()', schema: () => z.iso.date(), good: '2026-11-21', bad: '2026-13-40' },
  { name: 'z.iso.datetime()', schema: () => z.iso.datetime(), good: '2026-11-21T08:30:00Z', bad: '2026-11-21' },
  { name: 'z.iso.time()', schema: () => z.iso.time(), good: '08:30:00', bad: '25:00' },
  { name: 'z.iso.duration()', schema: () => z.iso.duration(), good: 'P1DT2H', bad: '1 day' },
  { name: 'z.date()', schema: () => z.date(), good: new Date(0), bad: '2026-11-21' },
  { name: 'z.email()', schema: () => z.email(), good: 'ada@example.com', bad: 'ada@' },
  { name: 'z.url()', schema: () => z.url(), good: 'https://example.com/a', bad: 'not a url' },
  { name: 'z.uuid()', schema: () => z.uuid(), good: '123e4567-e89b-42d3-a456-426614174000', bad: '123e4567' },
  { name: 'z.ipv4()', schema: () => z.ipv4(), good: '10.0.0.1', bad: '10.0.0.256' },
  { name: 'z.string().date()', schema: () => z.string().date(), good: '2026-11-21', bad: 'yesterday' },
  { name: 'z.string().datetime()', schema: () => z.string().datetime(), good: '2026-11-21T08:30:00Z', bad: '2026-11-21' },
];

/** The cases whose schema accepted the bad value or refused the good one, as `z.iso.date(): refused "2026-11-21"`. */
export function formatFailures(): string[] {
  const failures: string[] = [];
  for (const c of FORMAT_CASES) {
    let schema: z.ZodType;
    try {
      schema = c.schema();
    } catch (err) {
      failures.push(`${c.name}: threw ${String(err)}`);
      continue;
    }
    if (!schema.safeParse(c.good).success) failures.push(`${c.name}: refused ${JSON.stringify(c.good)}`);
    if (schema.safeParse(c.bad).success) failures.push(`${c.name}: accepted ${JSON.stringify(c.bad)}`);
  }
  return failures;
}
