import { createHash } from 'node:crypto';
import { isArtifactRef } from '../definition/artifact-ref';
import { ErrorCode, KaonError } from '../definition/errors';

/**
 * Canonical JSON: object keys sorted, `undefined` members dropped (as JSON.stringify does), and every
 * ArtifactRef replaced by its sha256 alone. Two values that mean the same data give the same text, and the same
 * bytes produced by different runs (different uri/producer) count as equal — what memo keys and lineage ids need.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(normalise(value, '(root)', new Set()));
}

export function sha256Hex(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

function normalise(value: unknown, where: string, seen: Set<object>): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (typeof value === 'bigint') {
    throw new KaonError({
      code: ErrorCode.badInput,
      what: `cannot hash a bigint at ${where}`,
      fix: 'pass it as a string or a number; step inputs must be plain JSON data',
    });
  }
  if (isArtifactRef(value)) return { 'kaon.artifact': (value as { sha256: unknown }).sha256 };
  const obj = value as object;
  if (seen.has(obj)) {
    throw new KaonError({ code: ErrorCode.badInput, what: `cannot hash a circular structure at ${where}`, fix: 'pass plain JSON data (no cycles)' });
  }
  const toJSON = (obj as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return normalise(toJSON.call(obj), where, seen);
  if (obj instanceof Map || obj instanceof Set || ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer) {
    throw new KaonError({
      code: ErrorCode.badInput,
      what: `cannot hash a ${obj.constructor.name} at ${where}: it has no JSON form`,
      fix: 'convert it to a plain object or array (or store bytes as an artifact and pass its ArtifactRef)',
    });
  }
  seen.add(obj);
  try {
    if (Array.isArray(obj)) return obj.map((v, i) => normalise(v, `${where}[${i}]`, seen) ?? null);
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(obj).sort()) {
      const v = normalise((obj as Record<string, unknown>)[key], `${where}.${key}`, seen);
      if (v !== undefined) out[key] = v;
    }
    return out;
  } finally {
    seen.delete(obj);
  }
}
