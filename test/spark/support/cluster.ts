// A Spark standalone cluster on loopback for the Spark tier: one master and one worker, started from the same
// pinned pyspark distribution the steps use. pyspark's wheel ships bin/spark-class but not sbin/start-master.sh,
// so they are started as start-master.sh/start-worker.sh would, by class name, in the foreground (we own the pids).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureSparkEnv } from '../../../src/execution/spark';
import { terminateGroup } from '../../../src/execution/process';

export interface StandaloneCluster {
  masterUrl: string;
  masterPid: number;
  workerPid: number;
  sparkHome: string;
  stop(): Promise<void>;
}

function startDaemon(sparkHome: string, args: string[], ready: RegExp, what: string, log: string[]): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(path.join(sparkHome, 'bin', 'spark-class'), args, {
    env: { ...process.env, SPARK_HOME: sparkHome, SPARK_LOCAL_IP: '127.0.0.1', SPARK_NO_DAEMONIZE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start in 180 s; its log:\n${log.slice(-30).join('\n')}`)), 180_000);
    const onData = (b: Buffer) => {
      for (const line of b.toString('utf8').split('\n')) {
        if (!line) continue;
        log.push(`${what}: ${line}`);
        if (log.length > 500) log.shift();
        const m = ready.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve({ child, match: m });
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}; its log:\n${log.slice(-30).join('\n')}`));
    });
  });
}

export async function startStandaloneCluster(home: string, log: string[] = []): Promise<StandaloneCluster> {
  const { sparkHome } = await ensureSparkEnv([], { home });
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'kaon-spark-worker-'));
  const started: ChildProcess[] = [];
  const stop = async () => {
    for (const c of started.reverse()) if (c.pid) await terminateGroup(c.pid, 10_000);
    rmSync(workDir, { recursive: true, force: true });
  };
  try {
    const master = await startDaemon(sparkHome, ['org.apache.spark.deploy.master.Master', '--host', '127.0.0.1', '--port', '0', '--webui-port', '0'], /Starting Spark master at (spark:\/\/[\d.]+:\d+)/, 'master', log);
    started.push(master.child);
    const masterUrl = master.match[1]!;
    const worker = await startDaemon(
      sparkHome,
      ['org.apache.spark.deploy.worker.Worker', '--host', '127.0.0.1', '--cores', '2', '--memory', '2g', '--webui-port', '0', '--work-dir', workDir, masterUrl],
      /Successfully registered with master/,
      'worker',
      log,
    );
    started.push(worker.child);
    return { masterUrl, masterPid: master.child.pid!, workerPid: worker.child.pid!, sparkHome, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Live (non-zombie) processes whose command line contains every one of `parts`. */
export function findProcesses(...parts: string[]): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
      if (parts.every((p) => cmd.includes(p))) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}
