// `--params`: inline JSON, `@file`, or a path ending in .json.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCode, KaonError } from '../definition/errors';
import { rethrowSystemError } from '../definition/system-errors';

const FIX = `pass a JSON object, e.g. --params '{"seed": 3}', or a file: --params @params.json`;

function readJsonFile(file: string, cwd: string): unknown {
  const abs = path.resolve(cwd, file);
  if (!existsSync(abs)) {
    throw new KaonError({ code: ErrorCode.invalidParams, what: `--params file ${abs} does not exist`, fix: `check the path (relative paths start at ${cwd}); ${FIX}` });
  }
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    rethrowSystemError(err, { doing: 'reading the --params file', setting: '--params', path: abs });
  }
  return parseJson(text, `--params file ${abs}`);
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new KaonError({ code: ErrorCode.invalidParams, what: `${where} is not valid JSON: ${(err as Error).message}`, fix: FIX });
  }
}

/** Parse the `--params` value; absent means `{}` (the schema's defaults apply). */
export function parseParams(value: string | undefined, cwd: string): unknown {
  if (value === undefined) return {};
  const v = value.trim();
  if (v.startsWith('@')) return readJsonFile(v.slice(1), cwd);
  if (/^[[{"]/.test(v)) return parseJson(v, '--params');
  if (v.endsWith('.json')) return readJsonFile(v, cwd);
  return parseJson(v, '--params');
}
