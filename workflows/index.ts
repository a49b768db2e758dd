// The pipelines this project's workers run. Workflow code: deterministic, imports step contracts only.
export { mlDemo } from './demo';
export { retrainRecommender, retrainCountry } from './recommender';
export { recommenderLoop } from './recommender-loop';
// Events the pipelines wait for (kaon emit validates payloads with these).
export { viewingHistory } from './events';
