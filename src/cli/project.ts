// Project loading: where the pipelines and steps live (flags > package.json "kaon" block > conventions),
// and loading them. Pipelines are found by value, so export names do not matter.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { ErrorCode, KaonError, parseOrThrow } from '../definition/errors';
import { isEventDef, type EventDef } from '../definition/events';
import { didYouMean } from '../definition/params';
import { escapeForEcho } from './echo';
import { isPipeline, type Pipeline } from '../definition/pipeline';
import { projectRoot } from '../runtime/paths';
import type { OptionSpec } from './command';
import { loadUserModule, resolveUserModule } from './user-modules';

export const DEFAULT_DEMO = { pipeline: 'retrain-recommender', params: {} } as const;

const KaonBlock = z.object({
  workflows: z.string().min(1).optional(),
  activities: z.string().min(1).optional(),
  demo: z.object({ pipeline: z.string().min(1).default(DEFAULT_DEMO.pipeline), params: z.unknown().default({}) }).optional(),
});

export interface Project {
  root: string;
  /** Absolute path of the pipelines module (workflow code). */
  workflows: string;
  /** Absolute path of the steps module (implementations and contracts). */
  activities: string;
  demo: { pipeline: string; params: unknown };
}

export const PROJECT_OPTIONS: Record<string, OptionSpec> = {
  workflows: { type: 'string', value: 'file', description: 'module exporting the pipelines (default workflows/index.ts)' },
  activities: { type: 'string', value: 'file', description: 'module exporting the steps (default activities/index.ts)' },
};

function readKaonBlock(root: string): z.infer<typeof KaonBlock> {
  const file = path.join(root, 'package.json');
  if (!existsSync(file)) return {};
  let pkg: unknown;
  try {
    pkg = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new KaonError({ code: ErrorCode.config, what: `${file} is not valid JSON: ${(err as Error).message}`, fix: 'fix the JSON syntax of package.json' });
  }
  const block = (pkg as { kaon?: unknown } | null)?.kaon;
  if (block === undefined) return {};
  if (typeof block === 'object' && block !== null && !Array.isArray(block)) {
    // zod would drop an unknown key: a typo ("workflow") then silently loads the default module.
    const known = Object.keys(KaonBlock.shape);
    const unknown = Object.keys(block).filter((k) => !known.includes(k));
    if (unknown.length > 0) {
      throw new KaonError({
        code: ErrorCode.config,
        what: `the "kaon" block of ${file} has unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `${JSON.stringify(escapeForEcho(k))}${didYouMean(k, known)}`).join(', ')}; the valid keys are ${known.join(', ')}`,
        fix: 'rename or remove the key, e.g. "kaon": { "workflows": "workflows/index.ts", "activities": "activities/index.ts" }',
      });
    }
  }
  return parseOrThrow(KaonBlock, block, {
    code: ErrorCode.config,
    subject: `the "kaon" block of ${file}`,
    fix: 'write e.g. "kaon": { "workflows": "workflows/index.ts", "activities": "activities/index.ts", "demo": { "pipeline": "ml-demo", "params": {} } }',
  });
}

/** Resolve the project's modules: `--workflows`/`--activities` (relative to cwd), else package.json, else conventions. */
export function resolveProject(cwd: string, flags: { workflows?: string | undefined; activities?: string | undefined } = {}): Project {
  const root = projectRoot(cwd);
  const block = readKaonBlock(root);
  return {
    root,
    workflows: flags.workflows ? path.resolve(cwd, flags.workflows) : path.resolve(root, block.workflows ?? 'workflows/index.ts'),
    activities: flags.activities ? path.resolve(cwd, flags.activities) : path.resolve(root, block.activities ?? 'activities/index.ts'),
    demo: block.demo ?? { ...DEFAULT_DEMO },
  };
}

function loadModule(file: string, what: 'workflows' | 'activities'): Record<string, unknown> {
  let resolved: string;
  try {
    resolved = resolveUserModule(file);
  } catch {
    throw new KaonError({
      code: ErrorCode.notFound,
      what: `no ${what} module at ${file}`,
      fix: `create it, pass --${what} <file>, or set "kaon": { "${what}": "<file>" } in the project's package.json`,
    });
  }
  try {
    return loadUserModule(resolved);
  } catch (err) {
    throw new KaonError({
      code: ErrorCode.config,
      what: `loading the ${what} module ${resolved} failed: ${(err as Error).message?.split('\n')[0] ?? String(err)}`,
      fix: 'fix the error in that module (KAON_DEBUG=1 prints the stack trace)',
      cause: err,
    });
  }
}

/** The pipelines the workflows module exports, by their `kaon.name`. */
export function loadPipelines(file: string): Map<string, Pipeline> {
  const mod = loadModule(file, 'workflows');
  const byName = new Map<string, Pipeline>();
  for (const [exported, v] of Object.entries(mod)) {
    if (!isPipeline(v)) continue;
    const prev = byName.get(v.kaon.name);
    if (prev && prev !== v) {
      throw new KaonError({ code: ErrorCode.invalidDefinition, what: `two pipelines in ${file} are named "${v.kaon.name}" (one exported as ${exported})`, fix: 'give every pipeline a unique name; the name is the Temporal workflow type' });
    }
    byName.set(v.kaon.name, v);
  }
  if (byName.size === 0) {
    throw new KaonError({
      code: ErrorCode.config,
      what: `${file} exports no pipelines`,
      fix: 'export the values returned by definePipeline(...) from that module (e.g. `export { mlDemo } from "./demo"`)',
    });
  }
  return byName;
}

/** The events a workflows module exports (defineEvent values: what k.waitFor waits for). */
export function loadEvents(file: string): EventDef[] {
  return Object.values(loadModule(file, 'workflows')).filter(isEventDef);
}

export function loadActivities(file: string): Record<string, unknown> {
  return loadModule(file, 'activities');
}

export function findPipeline(pipelines: ReadonlyMap<string, Pipeline>, name: string, file: string): Pipeline {
  const p = pipelines.get(name);
  if (p) return p;
  throw new KaonError({
    code: ErrorCode.notFound,
    what: `no pipeline named "${name}" in ${file} (known: ${[...pipelines.keys()].sort().join(', ')})`,
    fix: 'use one of the known names, or pass --workflows <file> with the module that exports it',
  });
}
