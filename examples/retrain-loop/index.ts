export * from './steps';
export * from './steps.impl';
