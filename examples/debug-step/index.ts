// What the worker (and `kaon step run`) loads: contracts and implementations.
export * from './steps';
export * from './steps.impl';
