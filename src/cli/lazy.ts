// Modules the CLI loads on first use, so `kaon help` does not pay for the SDK (a second or more to load).
// require, not import(): the CLI is CommonJS, and under tsx's CommonJS hook (Kaon run from its sources) import()
// goes through the ESM loader, which does not resolve extensionless TypeScript paths.
/* eslint-disable @typescript-eslint/no-require-imports */
export const temporalClient = () => require('@temporalio/client') as typeof import('@temporalio/client');
export const temporalWorker = () => require('@temporalio/worker') as typeof import('@temporalio/worker');
export const kaonClient = () => require('../client') as typeof import('../client');
export const artifactStore = () => require('../data/store') as typeof import('../data/store');
export const memoTable = () => require('../data/memo') as typeof import('../data/memo');
export const devServer = () => require('../runtime/dev-server') as typeof import('../runtime/dev-server');
export const localStep = () => require('../runtime/local-step') as typeof import('../runtime/local-step');
export const workerHost = () => require('./worker-host') as typeof import('./worker-host');
