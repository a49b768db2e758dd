import { z } from 'zod';

/** Who produced an artifact. */
export const Producer = z.object({
  pipeline: z.string(),
  runId: z.string(),
  step: z.string(),
  attempt: z.number().int().min(0),
  /** Set when `kaon step run` made it on a developer's machine, outside any Temporal run. */
  local: z.literal(true).optional(),
});

/**
 * A reference to bytes in the artifact store. Steps exchange these, never bytes (invariant 4).
 * `uri` is content-addressed: same bytes, same uri.
 */
export const ArtifactRef = z.object({
  kind: z.literal('kaon.artifact'),
  uri: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256'),
  size: z.number().int().min(0),
  mediaType: z.string().min(1),
  name: z.string().optional(),
  producer: Producer,
});
export type ArtifactRef = z.infer<typeof ArtifactRef>;
export type Producer = z.infer<typeof Producer>;

export function isArtifactRef(v: unknown): v is ArtifactRef {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'kaon.artifact';
}
