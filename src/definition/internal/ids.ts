// Temporal ids (workflow, activity, schedule) and task queues must stay within 255 characters. Names, run keys and
// schedule ids have a maximum length checked where they are written; ids composed from unbounded parts (foreach
// labels, nested child keys) are shortened deterministically. Pure and sandbox-safe: workflow code uses it.

/** The longest workflow, activity or schedule id Kaon builds. */
export const MAX_ID = 255;
/** Pipeline and step names (the workflow and activity types). */
export const MAX_NAME = 100;
/** A run key: the run's id is `<pipeline>--<run key>` (100 + 2 + 150 ≤ 255). */
export const MAX_RUN_KEY = 150;
/** A schedule id: its runs are `<pipeline>--<schedule id>-<timestamp>` (100 + 2 + 130 + 21 ≤ 255). */
export const MAX_SCHEDULE_ID = 130;
/** Task queue names (step `queue`, KAON_TASK_QUEUE, --task-queue). */
export const MAX_QUEUE = 200;

/** 64 bits of FNV-1a in two 32-bit lanes, as 16 hex digits: deterministic in any JS runtime. */
export function shortHash(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c ^ (i & 0xff), 0x01000193) >>> 0;
  }
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

/**
 * `id` itself when it fits in `max`, else its readable start, `~` and a hash of the whole id: still unique
 * (collisions are 1 in 2^64) and the same on every replay, so a resumed run finds the old run's children.
 */
export function boundedId(id: string, max = MAX_ID): string {
  if (id.length <= max) return id;
  return `${id.slice(0, max - 17)}~${shortHash(id)}`;
}

/**
 * The start of an artifact name built from a step key (`<key>.results.jsonl`): ≤ 200 characters, and a foreach
 * label's control characters, slashes and backslashes become `_` (an artifact name refuses them). Names need not
 * be unique: artifacts are found by hash.
 */
export function artifactBase(key: string): string {
  return boundedId(key, 200).replace(/[\u0000-\u001f\u007f-\u009f/\\]/g, '_');
}
