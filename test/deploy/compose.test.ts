// docker-compose.yml and deploy/: no Docker engine here, so the file is checked for what `docker compose up`
// would need: pinned images, real dependency targets, healthchecks behind service_healthy, a worker command the
// CLI accepts, envconfig variable names Temporal reads, Kaon's search attributes, and a buildable Dockerfile.
// When Go is installed, compose-go (the loader Docker Compose uses) validates it against the Compose Spec.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { parse } from 'yaml';
import { parseCommandArgs } from '../../src/cli/args';
import { list } from '../../src/cli/command';
import { workerCommand } from '../../src/cli/commands/worker';
import { SA } from '../../src/definition/internal/protocol';

const ROOT = path.resolve(__dirname, '..', '..');
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');

interface Service {
  image?: string;
  build?: { context?: string; dockerfile?: string; target?: string } | string;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string> | string[];
  depends_on?: Record<string, { condition?: string }> | string[];
  ports?: (string | { target: number; published?: string | number; host_ip?: string })[];
  volumes?: (string | { type: string; source?: string; target: string })[];
  healthcheck?: { test?: string[] | string; disable?: boolean };
  deploy?: { replicas?: number };
  restart?: string;
  profiles?: string[];
}

interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

const compose = parse(readFileSync(COMPOSE_FILE, 'utf8')) as Compose;
const services = compose.services;
const WORKERS = ['kaon-worker', 'kaon-worker-python'];

function service(name: string): Service {
  const s = services[name];
  assert.ok(s, `docker-compose.yml has no service "${name}"`);
  return s;
}

function env(s: Service): Record<string, string> {
  if (Array.isArray(s.environment)) {
    return Object.fromEntries(s.environment.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  }
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
}

function dependsOn(s: Service): Record<string, string> {
  if (Array.isArray(s.depends_on)) return Object.fromEntries(s.depends_on.map((d) => [d, 'service_started']));
  return Object.fromEntries(Object.entries(s.depends_on ?? {}).map(([k, v]) => [k, v.condition ?? 'service_started']));
}

function argv(v: string[] | string | undefined): string[] {
  assert.ok(Array.isArray(v), `expected exec form (a list), got ${JSON.stringify(v)}`);
  return v;
}

/** `name:tag` with a version-like tag (has a digit, not `latest`), no digest-less floating names, no variables. */
function assertPinned(image: string, where: string): void {
  assert.doesNotMatch(image, /\$/, `${where}: image ${image} is set through a variable; pin it in the file`);
  const m = /^(?<name>[a-z0-9]+(?:[._/-][a-z0-9]+)*):(?<tag>[\w][\w.-]{0,127})(?:@sha256:[0-9a-f]{64})?$/.exec(image);
  assert.ok(m?.groups, `${where}: image ${image} has no tag; pin a version (name:1.2.3)`);
  assert.notEqual(m.groups.tag, 'latest', `${where}: image ${image} uses latest; pin a version`);
  assert.match(m.groups.tag!, /\d/, `${where}: image ${image} tag is not a version`);
}

interface Dockerfile {
  path: string;
  stages: { name: string | undefined; from: string; instructions: { op: string; args: string }[] }[];
}

function readDockerfile(file: string): Dockerfile {
  // Join continuation lines, drop comments and the parser directive.
  const lines = readFileSync(file, 'utf8').replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages: Dockerfile['stages'] = [];
  for (const line of lines) {
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `${file}: cannot read line ${JSON.stringify(line)}`);
    const op = m[1]!.toUpperCase();
    const args = m[2]!;
    if (op === 'FROM') {
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(f, `${file}: bad FROM ${args}`);
      stages.push({ name: f[2], from: f[1]!, instructions: [] });
    } else {
      assert.ok(stages.length > 0 || op === 'ARG', `${file}: ${op} before the first FROM`);
      stages.at(-1)?.instructions.push({ op, args });
    }
  }
  return { path: file, stages };
}

/** The effective CMD/ENTRYPOINT of a stage, following `FROM <earlier stage>`. */
function effective(df: Dockerfile, target: string, op: 'CMD' | 'ENTRYPOINT'): string[] | undefined {
  const stage = df.stages.find((s) => s.name === target);
  assert.ok(stage, `${df.path} has no stage "${target}"`);
  const own = stage.instructions.filter((i) => i.op === op).at(-1);
  if (own) {
    const parsed = JSON.parse(own.args) as unknown;
    assert.ok(Array.isArray(parsed) && parsed.every((x) => typeof x === 'string'), `${op} of ${target} must be exec form: ${own.args}`);
    return parsed as string[];
  }
  return df.stages.some((s) => s.name === stage.from) ? effective(df, stage.from, op) : undefined;
}

describe('docker-compose.yml', () => {
  test('has the Temporal stack, the UI, the search-attribute job and the workers', () => {
    for (const name of ['postgresql', 'temporal', 'temporal-setup', 'temporal-ui', ...WORKERS]) service(name);
    assert.match(service('temporal').image!, /^temporalio\/(auto-setup|server):/);
    assert.match(service('temporal-ui').image!, /^temporalio\/ui:/);
    assert.match(service('postgresql').image!, /^postgres:/);
    assert.equal(env(service('temporal')).DB, 'postgres12');
    assert.equal(env(service('temporal')).POSTGRES_SEEDS, 'postgresql');
  });

  test('the optional mlflow service: pinned to the release the tests use, on a profile, its UI on loopback, checked for readiness', () => {
    const m = service('mlflow');
    assert.deepEqual(m.profiles, ['mlflow']);
    const version = /MLFLOW_VERSION = '([\d.]+)'/.exec(readFileSync(path.join(ROOT, 'test/support/mlflow-server.ts'), 'utf8'))?.[1];
    assert.equal(m.image, `ghcr.io/mlflow/mlflow:v${version}`);
    const cmd = argv(m.command);
    assert.deepEqual(cmd.slice(0, 2), ['mlflow', 'server']);
    assert.ok(cmd.includes('--artifacts-destination'), 'serves artifacts, so model versions carry their files');
    assert.match(cmd[cmd.indexOf('--allowed-hosts') + 1] ?? '', /(^|,)mlflow:5000(,|$)/, 'workers reach it as mlflow:5000');
    assert.deepEqual(m.ports, ['127.0.0.1:5000:5000']);
    assert.match(argv(m.healthcheck?.test).join(' '), /\/health/);
    for (const w of WORKERS) assert.equal(env(service(w)).MLFLOW_TRACKING_URI, '${MLFLOW_TRACKING_URI:-}', `${w}: MLflow off unless set`);
  });

  test('every pulled image is pinned to a version tag', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.build) continue; // built locally: its Dockerfile's FROM lines are checked below
      assert.ok(s.image, `service ${name} has neither image nor build`);
      assertPinned(s.image, `service ${name}`);
    }
    assert.equal(service('temporal-setup').image!.split(':')[1]!.split('-')[0], service('temporal').image!.split(':')[1], 'admin-tools and server versions differ');
  });

  test('depends_on targets exist and their conditions can be met', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [target, condition] of Object.entries(dependsOn(s))) {
        const t = services[target];
        assert.ok(t, `service ${name} depends on "${target}", which is not defined`);
        assert.ok(['service_started', 'service_healthy', 'service_completed_successfully'].includes(condition), `${name} → ${target}: unknown condition ${condition}`);
        if (condition === 'service_healthy') assert.ok(t.healthcheck?.test && !t.healthcheck.disable, `${name} waits for ${target} to be healthy, but ${target} has no healthcheck`);
        if (condition === 'service_completed_successfully') assert.ok(!['always', 'unless-stopped'].includes(t.restart ?? ''), `${name} waits for ${target} to complete, but ${target} restarts forever`);
      }
    }
    assert.equal(dependsOn(service('temporal')).postgresql, 'service_healthy');
    for (const w of WORKERS) {
      assert.equal(dependsOn(service(w)).temporal, 'service_healthy', w);
      assert.equal(dependsOn(service(w))['temporal-setup'], 'service_completed_successfully', `${w} must start after the search attributes exist`);
    }
  });

  test('healthchecks use the exec or shell form and check readiness, not just a process', () => {
    for (const name of ['postgresql', 'temporal']) {
      const t = service(name).healthcheck?.test;
      assert.ok(Array.isArray(t) && (t[0] === 'CMD' || t[0] === 'CMD-SHELL') && t.length >= 2, `${name}: healthcheck.test must be ["CMD", ...] or ["CMD-SHELL", "..."]`);
    }
    assert.match(argv(service('postgresql').healthcheck?.test).join(' '), /pg_isready/);
    // The namespace exists only after auto-setup registered it: workers must not start before.
    assert.match(argv(service('temporal').healthcheck?.test).join(' '), /temporal operator namespace describe .*--address temporal:7233/);
  });

  test('workers run `kaon worker` with options the CLI accepts, and route the python queue to their own service', () => {
    const queuesOf = (name: string): string[] | undefined => {
      const cmd = argv(service(name).command);
      assert.deepEqual(cmd.slice(0, 3), ['node', 'bin/kaon.js', 'worker'], `${name}: command`);
      const parsed = parseCommandArgs(workerCommand, cmd.slice(3));
      assert.equal(parsed.positionals.length, 0);
      return list(parsed.values, 'queues');
    };
    assert.ok(existsSync(path.join(ROOT, 'bin/kaon.js')));
    assert.deepEqual(queuesOf('kaon-worker-python'), ['python']);
    const main = queuesOf('kaon-worker');
    assert.ok(main === undefined || (main.includes('default') && !main.includes('python')), `kaon-worker serves ${String(main)}`);
    const replicas = service('kaon-worker').deploy?.replicas;
    assert.ok(Number.isInteger(replicas) && replicas! >= 2, `kaon-worker should run N >= 2 replicas, has ${String(replicas)}`);
    assert.ok(Number.isInteger(service('kaon-worker-python').deploy?.replicas));
  });

  test('worker variables are Temporal envconfig names (or Kaon settings Kaon reads) and resolve to the server', () => {
    // The names Temporal's envconfig reads, taken from the installed package itself.
    const lib = path.dirname(require.resolve('@temporalio/envconfig'));
    const known = new Set(readdirSync(lib).filter((f) => f.endsWith('.js')).flatMap((f) => readFileSync(path.join(lib, f), 'utf8').match(/TEMPORAL_[A-Z_]+/g) ?? []));
    assert.ok(known.has('TEMPORAL_ADDRESS') && known.has('TEMPORAL_NAMESPACE'));
    const kaonSources = readAll(path.join(ROOT, 'src'));
    for (const w of WORKERS) {
      const vars = env(service(w));
      for (const k of Object.keys(vars)) {
        if (k.startsWith('TEMPORAL_')) assert.ok(known.has(k) || k.startsWith('TEMPORAL_GRPC_META_'), `${w}: ${k} is not a Temporal envconfig variable (known: ${[...known].sort().join(', ')})`);
        else if (k.startsWith('KAON_') || k.startsWith('MLFLOW_')) assert.ok(kaonSources.includes(k), `${w}: Kaon reads no variable named ${k}`);
        else assert.fail(`${w}: ${k} is neither a TEMPORAL_* envconfig variable nor a KAON_* or MLFLOW_* setting`);
      }
      // What the worker will actually connect to, through the same envconfig loader Kaon uses.
      const cfg = loadClientConnectConfig({ overrideEnvVars: vars, disableFile: true });
      assert.equal(cfg.connectionOptions.address, 'temporal:7233', w);
      assert.equal(cfg.namespace, 'default', w);
      assert.ok(services.temporal, 'TEMPORAL_ADDRESS names the temporal service');
    }
  });

  test('prometheus scrapes every worker service on the port its `kaon worker --metrics` listens on', () => {
    const prom = service('prometheus');
    assertPinned(prom.image!, 'service prometheus');
    const mount = (prom.volumes ?? []).map(String).find((v) => v.endsWith(':/etc/prometheus/prometheus.yml:ro'));
    assert.ok(mount, 'the config is mounted read-only');
    const config = parse(readFileSync(path.join(ROOT, mount.split(':')[0]!), 'utf8')) as { scrape_configs: { dns_sd_configs?: { names: string[]; type: string; port: number }[] }[] };
    const sd = config.scrape_configs.flatMap((c) => c.dns_sd_configs ?? []);
    for (const w of WORKERS) {
      const parsed = parseCommandArgs(workerCommand, argv(service(w).command).slice(3));
      const listen = parsed.values.metrics;
      assert.equal(typeof listen, 'string', `${w} runs with --metrics`);
      assert.match(listen as string, /^0\.0\.0\.0:\d+$/, `${w}: inside a container the endpoint must listen beyond loopback`);
      const port = Number((listen as string).split(':')[1]);
      assert.ok(sd.some((d) => d.names.includes(w) && d.type === 'A' && d.port === port), `prometheus finds ${w} replicas on :${port}`);
    }
  });

  test('artifacts live on a shared volume mounted where KAON_ARTIFACTS points, in every worker', () => {
    const declared = Object.keys(compose.volumes ?? {});
    for (const w of WORKERS) {
      const url = env(service(w)).KAON_ARTIFACTS;
      assert.ok(url !== undefined && url.startsWith('file:///'), `${w}: KAON_ARTIFACTS=${String(url)}`);
      const dir = new URL(url).pathname;
      const mount = (service(w).volumes ?? []).map((v) => (typeof v === 'string' ? v.split(':') : [v.source, v.target])).find(([, target]) => target === dir);
      assert.ok(mount, `${w}: nothing is mounted at ${dir}`);
      assert.ok(declared.includes(mount[0]!), `${w}: ${mount[0]} is not a named volume`);
    }
    const pg = service('postgresql').volumes?.map(String) ?? [];
    assert.ok(pg.some((v) => /^[\w-]+:\/var\/lib\/postgresql\/data$/.test(v) && declared.includes(v.split(':')[0]!)), 'postgres data on a named volume');
  });

  test('the server and the UI publish their ports', () => {
    const published = (name: string): { host: string | undefined; port: string; target: string }[] =>
      (service(name).ports ?? []).map((p) => {
        if (typeof p !== 'string') return { host: p.host_ip, port: String(p.published), target: String(p.target) };
        const parts = p.split(':');
        return { host: parts.length === 3 ? parts[0] : undefined, port: parts.at(-2)!, target: parts.at(-1)! };
      });
    assert.deepEqual(published('temporal').map((p) => [p.port, p.target]), [['7233', '7233']]);
    assert.deepEqual(published('temporal-ui').map((p) => [p.port, p.target]), [['8080', '8080']]);
    assert.equal(env(service('temporal-ui')).TEMPORAL_ADDRESS, 'temporal:7233');
  });

  test("registers every Kaon search attribute as Keyword, idempotently (the job's script, run against a fake CLI)", () => {
    const setup = service('temporal-setup');
    assert.deepEqual(argv(setup.entrypoint), ['/bin/sh', '-c']);
    const raw = argv(setup.command)[0]!;
    // Compose interpolates `$x`; the script's own variables must be escaped as `$$x`.
    assert.doesNotMatch(raw.replace(/\$\$/g, ''), /\$/, 'unescaped $ in the setup script: compose would interpolate it');
    const script = raw.replace(/\$\$/g, '$');

    const dir = mkdtempSync(path.join(tmpdir(), 'kaon-compose-'));
    try {
      const calls = path.join(dir, 'calls.log');
      // A stand-in `temporal` CLI: logs its argv; `list` shows one attribute as already registered.
      writeFileSync(path.join(dir, 'temporal'), `#!/bin/sh\necho "$*" >> ${JSON.stringify(calls)}\ncase "$*" in *"search-attribute list"*) printf 'Name Type\\nKaonPipeline Keyword\\nWorkflowId Keyword\\n';; esac\n`);
      chmodSync(path.join(dir, 'temporal'), 0o755);
      const r = spawnSync('/bin/sh', ['-c', script], { env: { PATH: `${dir}:/usr/bin:/bin`, ...env(setup) }, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const log = readFileSync(calls, 'utf8').trim().split('\n');
      const creates = log.filter((l) => l.includes('search-attribute create'));
      const created = creates.map((l) => /--name (\S+)/.exec(l)?.[1]).sort();
      assert.deepEqual(created, Object.values(SA).filter((n) => n !== 'KaonPipeline').sort());
      for (const l of creates) {
        assert.match(l, /--type Keyword\b/);
        assert.match(l, /--address temporal:7233 --namespace default/);
      }
      assert.match(r.stdout, /KaonPipeline already registered/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the worker Dockerfile exists, pins its base, copies what exists and runs `kaon worker` in exec form', () => {
    for (const w of WORKERS) {
      const b = service(w).build;
      assert.ok(b && typeof b === 'object', `${w}: build must name a dockerfile`);
      const context = path.resolve(ROOT, b.context ?? '.');
      const file = path.resolve(context, b.dockerfile ?? 'Dockerfile');
      assert.ok(existsSync(file), `${w}: ${file} does not exist`);
      const df = readDockerfile(file);
      const names = new Set(df.stages.map((s) => s.name));
      for (const s of df.stages) if (!names.has(s.from)) assertPinned(s.from, `${path.relative(ROOT, file)} FROM`);
      // BuildKit reads <Dockerfile>.dockerignore next to the Dockerfile: it must not drop what COPY needs.
      const ignoreFile = `${file}.dockerignore`;
      const ignored = existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')) : [];
      for (const s of df.stages) {
        for (const i of s.instructions.filter((x) => x.op === 'COPY' && !x.args.startsWith('--from'))) {
          for (const src of i.args.split(/\s+/).slice(0, -1)) {
            assert.ok(existsSync(path.join(context, src)), `COPY ${src}: not in the build context`);
            assert.ok(!ignored.some((p) => p === src || src.startsWith(`${p}/`)), `COPY ${src}: excluded by ${path.relative(ROOT, ignoreFile)}`);
          }
        }
      }
      const target = b.target ?? df.stages.at(-1)!.name!;
      const cmd = [...(effective(df, target, 'ENTRYPOINT') ?? []), ...(effective(df, target, 'CMD') ?? [])];
      assert.deepEqual(cmd.slice(0, 3), ['node', 'bin/kaon.js', 'worker'], `${w}: image command`);
      parseCommandArgs(workerCommand, cmd.slice(3));
    }
    const python = readDockerfile(path.join(ROOT, 'deploy/worker.Dockerfile')).stages.find((s) => s.name === 'worker-python');
    assert.match(python?.instructions.map((i) => i.args).join('\n') ?? '', /python3-venv/, 'python steps need python3 with venv');
  });

  test('the mounted Temporal dynamic config exists and has the shape the server reads', () => {
    const mount = (service('temporal').volumes ?? []).map(String).find((v) => v.includes('dynamicconfig'));
    assert.ok(mount, 'temporal mounts a dynamic config');
    const [src, target] = mount.split(':');
    const file = path.resolve(ROOT, src!);
    assert.ok(existsSync(file));
    assert.equal(`/etc/temporal/${env(service('temporal')).DYNAMIC_CONFIG_FILE_PATH}`, target);
    const dc = parse(readFileSync(file, 'utf8')) as Record<string, { value: unknown; constraints?: unknown }[]>;
    for (const [key, entries] of Object.entries(dc)) {
      assert.match(key, /^[a-z]+\.[A-Za-z.]+$/, key);
      assert.ok(Array.isArray(entries) && entries.every((e) => 'value' in e), `${key}: a list of { value, constraints }`);
    }
    assert.ok(Number(dc['history.transferProcessorMaxPollRPS']?.[0]?.value) > 20, 'sequential steps wait on the transfer queue at the default 20/s');
    assert.equal(dc['matching.enableFairness']?.[0]?.value, true, 'fairness keys are honoured, so a big sweep does not starve other runs');
  });
});

function readAll(dir: string): string {
  return readdirSync(dir).map((n) => path.join(dir, n)).map((p) => (statSync(p).isDirectory() ? readAll(p) : p.endsWith('.ts') ? readFileSync(p, 'utf8') : '')).join('\n');
}

/** compose-go, built once per version of deploy/compose-validate into .kaon/tools (Go modules from the Go proxy). */
function composeValidator(): string {
  const src = path.join(ROOT, 'deploy/compose-validate');
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(path.join(src, f)));
  const bin = path.join(ROOT, '.kaon/tools', `compose-validate-${hash.digest('hex').slice(0, 12)}`);
  if (!existsSync(bin)) {
    mkdirSync(path.dirname(bin), { recursive: true });
    execFileSync('go', ['build', '-o', bin, '.'], { cwd: src, stdio: ['ignore', 'inherit', 'inherit'], timeout: 600_000 });
  }
  return bin;
}

describe('docker-compose.yml against the Compose Specification (compose-go)', () => {
  const hasGo = spawnSync('go', ['version']).status === 0;
  const skip = hasGo ? false : 'Go is not installed: the spec check needs it (the structural checks above still ran)';
  // Interpolation defaults only: a developer's shell variables must not change the verdict.
  const cleanEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };

  test('validates, and the normalised project keeps the services and their conditions', { skip, timeout: 600_000 }, () => {
    const r = spawnSync(composeValidator(), [COMPOSE_FILE], { encoding: 'utf8', env: cleanEnv });
    assert.equal(r.status, 0, r.stderr);
    const project = JSON.parse(r.stdout) as { services: Record<string, { depends_on?: Record<string, { condition: string }>; deploy?: { replicas?: number } }> };
    // Services behind a profile (mlflow) are left out of a project loaded without that profile.
    assert.deepEqual(Object.keys(project.services).sort(), Object.keys(services).filter((n) => !services[n]!.profiles?.length).sort());
    assert.equal(project.services['kaon-worker']?.depends_on?.['temporal-setup']?.condition, 'service_completed_successfully');
    assert.equal(project.services['kaon-worker']?.deploy?.replicas, service('kaon-worker').deploy?.replicas);
  });

  test('rejects a file that breaks the spec (the check is real)', { skip, timeout: 600_000 }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kaon-compose-'));
    try {
      const bad = path.join(dir, 'docker-compose.yml');
      writeFileSync(bad, readFileSync(COMPOSE_FILE, 'utf8').replace('condition: service_completed_successfully', 'condition: service_finished'));
      const r = spawnSync(composeValidator(), [bad], { encoding: 'utf8', env: cleanEnv });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /condition/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
