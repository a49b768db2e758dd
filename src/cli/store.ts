// The artifact store as the CLI sees it: the same setting (KAON_ARTIFACTS) the workers use.
import path from 'node:path';
import type { ArtifactStore } from '../data/store';
import type { ArtifactRef } from '../definition/artifact-ref';
import { checkKaonHome } from '../runtime/paths';
import { artifactStore } from './lazy';

/** Async so that the store (and the S3 SDK behind it) loads only for commands that use it. */
export async function openStore(io: { cwd: string; env: NodeJS.ProcessEnv }): Promise<ArtifactStore> {
  const { createArtifactStore } = artifactStore();
  const home = io.env.KAON_HOME ? checkKaonHome(path.resolve(io.cwd, io.env.KAON_HOME)) : path.join(io.cwd, '.kaon');
  // Unset KAON_ARTIFACTS: the store is <home>/artifacts, and a bad path there is KAON_HOME's fault.
  const url = io.env.KAON_ARTIFACTS || `file://${path.join(home, 'artifacts')}`;
  return createArtifactStore(url, { localDir: home, setting: io.env.KAON_ARTIFACTS ? 'KAON_ARTIFACTS' : io.env.KAON_HOME ? 'KAON_HOME' : undefined });
}

export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** Lines of sweep manifests read from the workers' store, for the client's sweep-item lookups (`score[2]`). */
export function manifestReader(store: ArtifactStore): { line(ref: ArtifactRef, i: number): Promise<unknown> } {
  return {
    async line(ref, i) {
      const { createInterface } = await import('node:readline');
      const rl = createInterface({ input: await store.getStream(ref), crlfDelay: Infinity });
      let n = 0;
      try {
        for await (const text of rl) if (n++ === i) return JSON.parse(text) as unknown;
      } finally {
        rl.close();
      }
      return undefined;
    },
  };
}
