// What the worker loads: contracts and implementations.
export * from './steps';
export * from './steps.impl';
