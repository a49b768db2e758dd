// The runtime's side of the data seam: the store settings that depend on where the project (and .kaon/) is.
import { createArtifactStore, type ArtifactStore, type ArtifactStoreOptions } from '../data/store';
import { kaonHome } from './paths';

/**
 * The artifact store workers, local runs and the CLI use: `url`, else $KAON_ARTIFACTS, else
 * `<kaonHome()>/artifacts`, with `.kaon/` for spools and copies.
 */
export function defaultArtifactStore(url?: string, opts: ArtifactStoreOptions = {}): ArtifactStore {
  return createArtifactStore(url, { home: kaonHome(), ...opts });
}
