// Events of the reference pipelines: typed values shared by the pipelines that wait for them and the services
// that emit them (`kaon.emit(viewingHistory, …)`, `kaon emit viewing-history --payload …`).
import { z } from 'zod';
import { defineEvent } from 'kaon';

/** A day of viewing history has landed for a country: the recommender loop retrains on it. */
export const viewingHistory = defineEvent(
  'viewing-history',
  z.object({
    country: z.string().regex(/^[A-Z]{2}$/, 'a two-letter country code such as "JP"'),
    /** The partition that landed (YYYY-MM-DD). */
    date: z.iso.date(),
    /** Where the data is; the synthetic ingest step only records it. */
    uri: z.string().optional(),
  }),
);
