// The pipelines this project's workers run. Workflow code: deterministic, imports step contracts only.
export { mlDemo } from './demo';
export { retrainRecommender } from './recommender';
