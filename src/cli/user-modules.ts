// Loading a user's pipeline and step modules into the CLI process.
// - TypeScript modules go through tsx, registered on first need (JS modules need no tsx; bin/kaon.js has already
//   registered it when Kaon itself runs from its TypeScript sources).
// - `kaon`, `kaon/workflow`, `kaon/worker` and `kaon/client` imported by those modules always resolve to the Kaon
//   that is running (dist/ or src/), whatever the project's tsconfig paths or node_modules say: one copy of Kaon per
//   process, so its values (pipelines, errors, step registries) are the ones the CLI recognises.
import Module, { createRequire } from 'node:module';
import path from 'node:path';

const load = createRequire(__filename);

/** This Kaon's entry points, by package specifier (folders of src/ or dist/, whichever is running). */
const HERE = path.resolve(__dirname, '..');
export const KAON_ENTRIES: Readonly<Record<string, string>> = {
  kaon: path.join(HERE, 'definition', 'index'),
  'kaon/workflow': path.join(HERE, 'workflow', 'index'),
  'kaon/worker': path.join(HERE, 'runtime', 'index'),
  'kaon/client': path.join(HERE, 'client', 'index'),
};

type ResolveFilename = (request: string, ...rest: unknown[]) => string;
const NodeModule = Module as unknown as { _resolveFilename: ResolveFilename; _extensions: Record<string, unknown> };

let pinnedOver: ResolveFilename | undefined;

/** Wrap the current resolver (outermost, so it wins over tsx's tsconfig paths) unless already on top. */
function pinKaonImports(): void {
  if (pinnedOver && NodeModule._resolveFilename !== pinnedOver) pinnedOver = undefined;
  if (pinnedOver) return;
  const inner = NodeModule._resolveFilename;
  pinnedOver = function resolveKaon(this: unknown, request: string, ...rest: unknown[]): string {
    return inner.call(this, KAON_ENTRIES[request] ?? request, ...rest);
  };
  NodeModule._resolveFilename = pinnedOver;
}

const TS_FILE = /\.[cm]?tsx?$/;

function ensureTsx(): void {
  if (NodeModule._extensions['.ts']) return; // already registered (Kaon runs from source, or a previous module)
  (load('tsx/cjs/api') as { register(): unknown }).register();
}

/** Resolve a module file (TypeScript files need tsx to resolve extensionless imports). Throws when none. */
export function resolveUserModule(file: string): string {
  let resolved: string;
  try {
    resolved = load.resolve(file);
  } catch (err) {
    if (NodeModule._extensions['.ts']) throw err;
    ensureTsx(); // `--workflows examples/x/workflows` may name a .ts file without its extension
    resolved = load.resolve(file);
  }
  return resolved;
}

/** Load a resolved user module, with tsx if it is TypeScript and Kaon's own specifiers pinned. */
export function loadUserModule(resolved: string): Record<string, unknown> {
  if (TS_FILE.test(resolved)) ensureTsx();
  pinKaonImports();
  return load(resolved) as Record<string, unknown>;
}
