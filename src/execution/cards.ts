// Cards: markdown and images a step publishes (a model card, a comparison plot). A card is a JSON artifact
// (CardDoc) whose images are artifacts of their own; the run state links it from the step (StepState.cards).
import path from 'node:path';
import type { ArtifactRef } from '../definition/artifact-ref';
import { ErrorCode, KaonError } from '../definition/errors';
import { CARD_MEDIA_TYPE, type CardDoc } from '../observe/run-state';
import type { StepArtifacts } from './implement';

/** An image of a card: a file, or bytes with a name (its extension gives the media type). */
export type CardImage = string | { path: string; name?: string } | { bytes: Uint8Array | string; name: string };

export interface CardInput {
  title: string;
  /** Markdown; an image is shown where it names the image, `![plot](metrics.png)`, else after the text. */
  markdown: string;
  images?: readonly CardImage[];
}

const IMAGE_TYPES: Record<string, string> = { '.png': 'image/png', '.svg': 'image/svg+xml', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.gif': 'image/gif', '.webp': 'image/webp' };
const MAX_MARKDOWN = 64 * 1024;
const MAX_IMAGES = 20;

function bad(where: string, what: string, fix: string): KaonError {
  return new KaonError({ code: ErrorCode.badInput, what: `${where}: ${what}`, fix, retryable: false });
}

/** Validate a card, store its images and its JSON; returns the card artifact's ref. Nothing is stored if it is invalid. */
export async function storeCard(put: StepArtifacts['put'], card: CardInput, where: string): Promise<ArtifactRef> {
  if (typeof card !== 'object' || card === null) throw bad(where, `a card must be an object, got ${typeof card}`, 'call card({ title, markdown, images })');
  if (typeof card.title !== 'string' || !card.title.trim() || card.title.length > 200) throw bad(where, `card title ${JSON.stringify(card.title)} is not valid`, 'give a title of 1–200 characters');
  if (typeof card.markdown !== 'string') throw bad(where, `the markdown of card "${card.title}" is ${typeof card.markdown}, not a string`, 'pass the card text as a markdown string');
  if (Buffer.byteLength(card.markdown) > MAX_MARKDOWN) throw bad(where, `the markdown of card "${card.title}" is over ${MAX_MARKDOWN / 1024} KiB`, 'keep a card short; put large tables in an artifact and link to it');
  const images = card.images ?? [];
  if (!Array.isArray(images) || images.length > MAX_IMAGES) throw bad(where, `card "${card.title}" has ${Array.isArray(images) ? images.length : 'no list of'} images (at most ${MAX_IMAGES})`, 'pass images as a list of file paths');
  const planned = images.map((img) => {
    const name = typeof img === 'string' ? path.basename(img) : (img.name ?? ('path' in img ? path.basename(img.path) : ''));
    const mediaType = IMAGE_TYPES[path.extname(name).toLowerCase()];
    if (!mediaType) throw bad(where, `image ${JSON.stringify(name)} of card "${card.title}" is not a PNG, SVG, JPEG, GIF or WebP file`, 'save the plot as .png or .svg (matplotlib: fig.savefig("plot.png"))');
    return { name, mediaType, source: typeof img === 'string' ? { path: img } : 'path' in img ? { path: img.path } : { bytes: img.bytes } };
  });
  const names = planned.map((p) => p.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw bad(where, `card "${card.title}" has two images named ${JSON.stringify(dup)}`, 'give each image a distinct file name');
  const stored: CardDoc['images'] = [];
  for (const p of planned) stored.push({ name: p.name, ref: await put(p.source, { name: p.name, mediaType: p.mediaType }) });
  const doc: CardDoc = { kind: 'kaon.card', title: card.title, markdown: card.markdown, images: stored };
  const slug = card.title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60) || 'card';
  return put({ bytes: JSON.stringify(doc) }, { name: `card-${slug}.json`, mediaType: CARD_MEDIA_TYPE });
}
