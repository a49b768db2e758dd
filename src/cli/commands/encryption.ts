// `kaon encryption`: mark a deployment (a Temporal namespace, or one task queue in it) as encrypted, so every
// client, CLI, board and worker without the key refuses to write there. The mark is namespace data, kept by
// Temporal itself: every host that reaches the namespace reads it (see client/encryption-mark.ts).
import { MARK_OFF, MARK_REQUIRED, NAMESPACE_MARK, QUEUE_MARK_PREFIX, ENCRYPTION_ENV, readMark } from '../../client/encryption-mark';
import { KEY_FILE_ENV } from '../../data/codec';
import { flag, say, str, usageError, type CommandSpec } from '../command';
import { withClient } from '../temporal';

const QUEUE = /^[A-Za-z0-9_.-]{1,200}$/;

export const encryptionCommand: CommandSpec = {
  name: 'encryption',
  summary: 'mark the namespace (or one task queue) encrypted, so components without the key refuse to write there; or show the mark',
  args: [{ name: 'action', required: true, description: 'require | off | status' }],
  options: {
    'task-queue': { type: 'string', value: 'queue', description: 'mark only this task queue (and its step queues <queue>.<name>), not the whole namespace' },
    json: { type: 'boolean', description: 'status: print JSON' },
  },
  notes: [
    `The mark is the namespace data key ${NAMESPACE_MARK}=${MARK_REQUIRED} (or ${QUEUE_MARK_PREFIX}<queue>=${MARK_REQUIRED}); \`temporal operator namespace update -n <ns> --data ${NAMESPACE_MARK}=${MARK_REQUIRED}\` sets the same.`,
    `Where namespace data cannot be set (Temporal Cloud), set ${ENCRYPTION_ENV}=${MARK_REQUIRED} on every host instead.`,
    'Examples:',
    '  kaon encryption require',
    '  kaon encryption require --task-queue recommender',
    '  kaon encryption status',
  ],
  async run({ io, values, positionals }) {
    const [action] = positionals;
    if (action !== 'require' && action !== 'off' && action !== 'status') {
      throw usageError('encryption', `unknown action ${JSON.stringify(action)}`, 'use kaon encryption require | off | status [--task-queue <queue>]');
    }
    const queue = str(values, 'task-queue');
    if (queue !== undefined && !QUEUE.test(queue)) throw usageError('encryption', `--task-queue ${JSON.stringify(queue)} is not a task queue name`, "use letters, digits and '_.-', e.g. --task-queue kaon");
    return withClient(io.env, async (kaon) => {
      const service = kaon.temporal.workflowService;
      const namespace = kaon.temporal.options.namespace;
      const key = queue === undefined ? NAMESPACE_MARK : `${QUEUE_MARK_PREFIX}${queue}`;
      const where = queue === undefined ? `namespace "${namespace}"` : `task queue "${queue}" of namespace "${namespace}"`;
      if (action !== 'status') {
        await service.updateNamespace({ namespace, updateInfo: { data: { [key]: action === 'require' ? MARK_REQUIRED : MARK_OFF } } });
        say(io.stdout, action === 'require'
          ? `${where} is marked encrypted (${key}=${MARK_REQUIRED}): clients, CLIs, boards and workers without ${KEY_FILE_ENV} now refuse to start, signal or update runs there`
          : `${where} is no longer marked encrypted (${key}=${MARK_OFF})`);
        return 0;
      }
      const res = await service.describeNamespace({ namespace });
      const mark = readMark(namespace, res.namespaceInfo?.data, io.env);
      if (flag(values, 'json')) {
        say(io.stdout, JSON.stringify({ namespace, all: mark.all ?? null, queues: mark.queues, hasKey: kaon.encryption?.hasKey ?? false }, null, 2));
        return 0;
      }
      say(io.stdout, mark.all ? `namespace "${namespace}": encrypted (${mark.all})` : `namespace "${namespace}": not marked`);
      for (const q of mark.queues) say(io.stdout, `  task queue "${q}": encrypted (${QUEUE_MARK_PREFIX}${q}=${MARK_REQUIRED})`);
      say(io.stdout, kaon.encryption?.hasKey ? `this host: has a key (${KEY_FILE_ENV})` : `this host: no key (${KEY_FILE_ENV} is not set)${mark.all || mark.queues.length ? '; it cannot write where the mark applies' : ''}`);
      return 0;
    });
  },
};
