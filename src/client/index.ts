/**
 * kaon/client — the thin client: start, steer and find runs. Depends on @temporalio/client and zod only.
 *
 * @example
 * const kaon = await connect();
 * const run = await kaon.start(mlDemo, { seed: 7, rows: 2000 }, { runKey: '2026-11-22' });
 * console.log(await run.progress());
 * console.log(await run.result());
 */
export { connect, KaonClient, type ConnectOptions, type StartOptions, type ListOptions, type ResumeOptions } from './kaon-client';
export { RunHandle, RunFailedError, type RunStatusInfo, type TemporalStatus, type DecisionOptions } from './run-handle';
export { connectionConfig, DEFAULT_TASK_QUEUE } from './connection';
export { kaonDataConverter, readKeyFile, AesGcmCodec, ENCRYPTED_FAILURES_PATH, KEY_FILE_ENV, type Keyring, type EncryptionKey } from '../data/codec';
export { checkRecordedInput, type StepCallRecord, type StepCallStatus } from './step-calls';
export { KaonDeployments, DEFAULT_DEPLOYMENT, type DeploymentInfo } from './deployments';
export { KaonSchedules, type ScheduleCreate, type ScheduleInfo, type OverlapPolicy } from './schedules';
export type { RunState, StepState, StepStatus, RunStatus, GateState } from '../observe/run-state';
export type { EventsView, PendingJoin } from '../definition/internal/protocol';
