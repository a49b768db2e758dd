// Verification records of local blobs: after a blob has been hashed and found to match, a small record of its
// identity (size, mtime in ns, inode, device) lets the next verified read skip hashing it again. Any change to the
// file (a write, truncate, touch, replacement by another file) changes its mtime or inode, and the blob is hashed
// again. ctime is not recorded: hard-linking a blob into a step's work dir changes it, and that is not a change of
// the bytes.
//
// Racy stamps (as in git's index): a file whose mtime is within RACY_MS of the moment the hash started could still
// be written in the same tick of the filesystem clock without its mtime changing. Such a blob is hashed but not
// recorded, so a record is only ever written for a file whose mtime is clearly in the past.
import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Files modified this recently are not recorded (covers coarse filesystem clocks, up to FAT's 2 s). */
export const RACY_MS = 2500;

export interface VerificationRecord {
  sha256: string;
  size: string;
  mtimeNs: string;
  ino: string;
  dev: string;
}

export function recordOf(sha256: string, st: BigIntStats): VerificationRecord {
  return { sha256, size: String(st.size), mtimeNs: String(st.mtimeNs), ino: String(st.ino), dev: String(st.dev) };
}

/** Whether the file described by `st` is the one that was verified (same identity, same size, same mtime). */
export function matches(rec: VerificationRecord | undefined, sha256: string, st: BigIntStats): boolean {
  if (!rec) return false;
  const now = recordOf(sha256, st);
  return rec.sha256 === now.sha256 && rec.size === now.size && rec.mtimeNs === now.mtimeNs && rec.ino === now.ino && rec.dev === now.dev;
}

/** Same file, unchanged between two stats (nothing wrote to it while it was hashed). */
export function unchanged(a: BigIntStats, b: BigIntStats): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ino === b.ino && a.dev === b.dev;
}

/** Whether a file with this mtime may be recorded by a hash that started at `startedMs`. */
export function recordable(st: BigIntStats, startedMs: number): boolean {
  return Number(st.mtimeNs / 1_000_000n) < startedMs - RACY_MS;
}

export async function readRecord(file: string): Promise<VerificationRecord | undefined> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as Partial<VerificationRecord> | null;
    if (v && typeof v.sha256 === 'string' && typeof v.size === 'string' && typeof v.mtimeNs === 'string' && typeof v.ino === 'string' && typeof v.dev === 'string') {
      return v as VerificationRecord;
    }
    return undefined;
  } catch {
    return undefined; // none yet, or unreadable: hash instead
  }
}

/**
 * Write a record atomically (temp + rename). Not fsynced: losing one after a crash only costs a hash. Best effort:
 * a store that cannot keep records (read-only mount) still serves verified reads, by hashing every time.
 */
export async function writeRecord(file: string, rec: VerificationRecord): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file).slice(0, 16)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(tmp, JSON.stringify(rec));
    await rename(tmp, file);
  } catch {
    await rm(tmp, { force: true }).catch(() => undefined);
  }
}
