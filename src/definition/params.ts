import { z } from 'zod';
import { didYouMean } from './did-you-mean';
import { ErrorCode, KaonError } from './errors';

export { didYouMean };

/**
 * Top-level params a pipeline's object schema does not declare. zod would drop them silently, so a typo of a
 * defaulted field (`lerning_rate`) would run with the default: Kaon refuses them unless the pipeline opts out.
 */
export function checkUnknownParams(schema: z.ZodType, value: unknown, subject: string): void {
  if (!(schema instanceof z.ZodObject) || typeof value !== 'object' || value === null || Array.isArray(value)) return;
  const known = Object.keys(schema.shape);
  const unknown = Object.keys(value).filter((k) => !known.includes(k));
  if (unknown.length === 0) return;
  const hint = (k: string) => didYouMean(k, known);
  throw new KaonError({
    code: ErrorCode.invalidParams,
    what: `${subject} has unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"${hint(k)}`).join(', ')}; the schema declares ${known.join(', ') || 'none'}`,
    fix: "correct the field name; a pipeline that wants extra fields dropped can say definePipeline({ unknownParams: 'strip' })",
  });
}
