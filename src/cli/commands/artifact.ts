import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, KaonError } from '../../definition/errors';
import { rethrowSystemError, systemErrorCode } from '../../definition/system-errors';
import { tempPathIn } from '../../data/streams';
import { say, str, usageError, type CommandSpec } from '../command';
import { humanSize, openStore } from '../store';

export const artifactCommand: CommandSpec = {
  name: 'artifact',
  summary: 'download one artifact: kaon artifact get <sha256|uri> -o <file>',
  args: [
    { name: 'action', required: true, description: 'get' },
    { name: 'ref', required: true, description: "the artifact's sha256 or uri (kaon artifacts <run> lists them)" },
  ],
  options: { output: { type: 'string', short: 'o', value: 'file', description: "where to write it ('-' for stdout); default: its name" } },
  async run({ io, values, positionals }) {
    const [action, target] = positionals as [string, string];
    if (action !== 'get') throw usageError('artifact', `unknown action "${action}"`, 'use `kaon artifact get <sha256|uri> -o <file>`');
    const sha = /([0-9a-f]{64})/.exec(target)?.[1];
    if (!sha) throw usageError('artifact', `"${target}" names no artifact`, 'pass the 64-hex sha256 or the uri printed by `kaon artifacts <run>`');
    const store = await openStore(io);
    const record = (await store.producedBy(sha))[0];
    if (!record || !(await store.exists(sha))) {
      throw new KaonError({ code: ErrorCode.artifactMissing, what: `artifact sha256:${sha.slice(0, 12)} is not in ${store.url}`, fix: 'check the sha256, and that KAON_ARTIFACTS names the store the workers wrote to' });
    }
    const ref = record.ref;
    const out = str(values, 'output') ?? path.basename(ref.name ?? sha);
    const source = await store.getStream(ref);
    if (out === '-') {
      // A real stream gets backpressure; a captured Output (tests, embedding) gets the chunks as they come.
      if (typeof (io.stdout as { on?: unknown }).on === 'function') await pipeline(source, io.stdout as NodeJS.WritableStream);
      else for await (const chunk of source) io.stdout.write(chunk as never);
      return 0;
    }
    const dest = path.resolve(io.cwd, out);
    const ctx = { doing: `writing artifact sha256:${sha.slice(0, 12)}`, setting: '-o', path: dest };
    if ((await stat(dest).catch(() => undefined))?.isDirectory()) {
      source.destroy();
      rethrowSystemError(Object.assign(new Error('EISDIR'), { code: 'EISDIR' }), { ...ctx, path: `${dest}${path.sep}` });
    }
    // A temp file of its own in the same folder, then rename: concurrent gets of one file each write whole
    // bytes and the last rename wins; a reader never sees half a file, and nothing partial stays behind.
    const tmp = tempPathIn(path.dirname(dest), path.basename(dest));
    try {
      // Verified while streaming; only a complete, matching file is renamed into place.
      await pipeline(source, createWriteStream(tmp, { flags: 'wx' }));
      await rename(tmp, dest);
    } catch (err) {
      source.destroy();
      await rm(tmp, { force: true }).catch(() => undefined); // under a file, even rm fails (ENOTDIR)
      rethrowSystemError(err, { ...ctx, ...(systemErrorCode(err) === 'ENOENT' ? { path: path.dirname(dest) } : {}) });
    }
    say(io.stdout, `wrote ${dest} (${humanSize(ref.size)}, sha256 verified)`);
    return 0;
  },
};
