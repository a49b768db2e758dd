// Everything the worker registers: step contracts (Python steps resolve from their python() descriptor)
// and TS implementations.
export * from './demo';
export * from './demo.impl';
export * from './recommender';
export * from './recommender.impl';
