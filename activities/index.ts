// Everything the worker registers: step contracts (for runner-based steps) and TS implementations.
export * from './demo';
export * from './demo.impl';
