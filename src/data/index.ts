/**
 * Data seam — where bytes live: a content-addressed artifact store (local folder or S3), lineage of every
 * artifact, and the memo table that step caching and resume build on. Runs on workers and clients, never in
 * workflow code (refs travel through workflows; bytes do not).
 *
 * One setting picks the backend: KAON_ARTIFACTS=file:///abs/folder or s3://bucket/prefix (S3-compatible
 * servers: KAON_S3_ENDPOINT; credentials and region: the standard AWS variables). Default: .kaon/artifacts.
 *
 * Refs: `uri` is `file:///…/sha256/ab/<sha256>` or `s3://bucket/prefix/sha256/ab/<sha256>`; the store finds a blob
 * by its sha256, writes atomically, and verifies the sha256 on every read.
 *
 * @example
 * const store = createArtifactStore(process.env.KAON_ARTIFACTS, { home: '/srv/project/.kaon' }); // or defaultArtifactStore() (kaon/worker)
 * const producer = { pipeline: 'retrain', runId, step: 'train[US]', attempt: 1 };
 * const model = await store.put({ path: '/tmp/model.pt' }, { name: 'model.pt', producer, inputs: [features] });
 * const file = await store.getPath(model);          // verified local file
 * const from = await store.producedBy(model);       // lineage: producer + inputs
 *
 * const memo = createMemoTable(store);
 * const key = memoKey({ step: 'train', version: 1, input: { features, country: 'US' } });
 * const hit = await memo.get(key);                  // undefined unless all its artifacts still exist
 */
export { createArtifactStore, type ArtifactStore, type ArtifactStoreOptions, type ArtifactStat, type ArtifactTarget, type PutMeta } from './store';
export type { ArtifactSource, RecordStore } from './backend';
export type { S3Options } from './s3-backend';
export { LineageRecord, LineageInput } from './lineage';
export { createMemoTable, memoKey, findArtifactRefs, MemoEntry, type MemoTable, type MemoPut, type MemoKeyInput } from './memo';
export { canonicalJson } from './canonical';
export { validateArtifactName, MAX_NAME_LENGTH } from './names';
export { AesGcmCodec, kaonDataConverter, parseKeyFile, readKeyFile, keyringFromEnv, decodePayload, decodeRaw, encryptionSummary, ENCRYPTED_FAILURES_PATH, KEY_FILE_ENV, KEY_ID_METADATA, ENCRYPTED_ENCODING, type Keyring, type EncryptionKey } from './codec';
