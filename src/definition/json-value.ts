import { ErrorCode, KaonError } from './errors';

/** Deeper than this is refused: such values are bugs, and they overflow stacks on the way. */
export const MAX_DEPTH = 200;

function describePath(path: readonly (string | number)[]): string {
  if (path.length === 0) return 'the value itself';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z_$][\w$]*$/.test(p) ? `${i ? '.' : ''}${p}` : `[${JSON.stringify(p)}]`)).join('');
}

/** Why a value is not plain JSON, with what to pass instead; undefined when it is. */
function problemOf(v: unknown): string | undefined {
  switch (typeof v) {
    case 'bigint':
      return `a BigInt (${String(v)}n) is not JSON; pass a number, or a string if it needs more than 53 bits`;
    case 'function':
      return 'a function is not JSON (it would vanish); pass data';
    case 'symbol':
      return 'a Symbol is not JSON (it would vanish); pass a string';
    case 'number':
      return Number.isFinite(v) ? undefined : `${String(v)} is not JSON (it would become null); pass a finite number or null`;
    default:
      return undefined;
  }
}

/**
 * Refuse what JSON would silently drop or coerce: BigInt, functions, Symbols, NaN and ±Infinity, Map and Set,
 * Date objects, class instances with a toJSON of their own, circular references, getters that throw, and nesting
 * deeper than MAX_DEPTH. The error names the field. `subject` says what the value is ("params of pipeline x").
 */
export function assertJsonValue(value: unknown, subject: string, fix = 'pass plain JSON data: objects, arrays, strings, finite numbers, booleans and null', code: string = ErrorCode.invalidParams): void {
  const seen = new Set<object>();
  const fail = (path: (string | number)[], why: string): never => {
    throw new KaonError({ code: code as never, what: `${subject}: ${describePath(path)} ${why}`, fix });
  };
  const walk = (v: unknown, path: (string | number)[]): void => {
    if (path.length > MAX_DEPTH) fail(path.slice(0, 3), `nests deeper than ${MAX_DEPTH} levels`);
    const p = problemOf(v);
    if (p) fail(path, `is ${p}`);
    if (typeof v !== 'object' || v === null) return;
    if (seen.has(v)) fail(path, 'is a circular reference (the value contains itself)');
    if (v instanceof Date) fail(path, 'is a Date object, which JSON turns into a string; pass an ISO string (z.iso.datetime() or z.iso.date())');
    if (v instanceof Map || v instanceof Set) fail(path, `is a ${v instanceof Map ? 'Map' : 'Set'}, which JSON turns into {}; pass ${v instanceof Map ? 'an object or an array of [key, value] pairs' : 'an array'}`);
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) fail(path, 'is binary data; store it as an artifact and pass its ref');
    const proto = Object.getPrototypeOf(v) as unknown;
    if (!Array.isArray(v) && proto !== Object.prototype && proto !== null) {
      fail(path, `is an instance of ${(v as { constructor?: { name?: string } }).constructor?.name ?? 'a class'}; pass a plain object`);
    }
    seen.add(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) walk(v[i], [...path, i]);
    } else {
      for (const k of Object.keys(v)) {
        let child: unknown;
        try {
          child = (v as Record<string, unknown>)[k];
        } catch (err) {
          fail([...path, k], `has a getter that throws (${err instanceof Error ? err.message : String(err)})`);
        }
        walk(child, [...path, k]);
      }
      for (const s of Object.getOwnPropertySymbols(v)) fail(path, `has a Symbol key (${String(s)}), which JSON drops`);
    }
    seen.delete(v);
  };
  walk(value, []);
}
