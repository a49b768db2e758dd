// `kaon deployment`: Worker Versioning. Which build of a worker deployment new runs start on.
import { DEFAULT_DEPLOYMENT } from '../../client/deployments';
import { ErrorCode, KaonError } from '../../definition/errors';
import { flag, say, str, type CommandSpec } from '../command';
import { withClient } from '../temporal';

export const deploymentCommand: CommandSpec = {
  name: 'deployment',
  summary: 'Worker Versioning: show a worker deployment, or make a build current (new runs start on it, loops move to it)',
  args: [
    { name: 'action', required: true, description: 'describe | current' },
    { name: 'build', required: false, description: 'current: the build id to make current' },
  ],
  options: {
    deployment: { type: 'string', value: 'name', description: 'the deployment (default $KAON_DEPLOYMENT or kaon)' },
    json: { type: 'boolean', description: 'describe: print JSON' },
  },
  notes: ['Examples:', '  kaon deployment describe', '  kaon deployment current 4f2c9e1   # after its workers started: kaon worker --build-id 4f2c9e1'],
  async run({ io, values, positionals }) {
    const [action, build] = positionals;
    const name = str(values, 'deployment') ?? io.env.KAON_DEPLOYMENT ?? DEFAULT_DEPLOYMENT;
    return withClient(io.env, async (kaon) => {
      if (action === 'current') {
        if (!build) throw new KaonError({ code: ErrorCode.config, what: 'kaon deployment current needs a build id', fix: 'kaon deployment current <build-id>' });
        await kaon.deployments.setCurrent(build, { deployment: name });
        say(io.stdout, `build ${build} is current in deployment ${name}: new runs start on it; loops move to it at their next continue-as-new`);
        return 0;
      }
      if (action !== 'describe') throw new KaonError({ code: ErrorCode.config, what: `unknown action ${JSON.stringify(action)}`, fix: 'use kaon deployment describe | current <build-id>' });
      const info = await kaon.deployments.describe(name);
      if (flag(values, 'json')) {
        say(io.stdout, JSON.stringify(info, null, 2));
        return 0;
      }
      if (!info) {
        say(io.stdout, `no worker of deployment ${name} has polled yet (start one: kaon worker --build-id <id>)`);
        return 0;
      }
      say(io.stdout, `deployment ${info.name}: current build ${info.current ?? 'none'}`);
      for (const v of info.versions) say(io.stdout, `  ${v.buildId}  ${v.status}${v.createdAt ? `  since ${v.createdAt.toISOString()}` : ''}`);
      return 0;
    });
  },
};
