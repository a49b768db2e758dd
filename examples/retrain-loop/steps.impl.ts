import { implementStep } from 'kaon/worker';
import { retrainDay } from './steps';

// Synthetic: the metric drifts with the day; a model is promoted when it beats the champion.
export const retrainDayImpl = implementStep(retrainDay, ({ day, champion }) => {
  const ndcg = 0.3 + 0.1 * Math.sin(day / 9) + day / 2000;
  return { ndcg, promoted: ndcg > champion };
});
