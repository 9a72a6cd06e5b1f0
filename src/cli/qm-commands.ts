// `portcullis qm list|show|counts|delete|hold|release`: queue management, the `imsimta qm`
// analogue. A running server is asked over its control socket, and its queue runner makes every
// change (waiting for a delivery attempt in flight on the message), so qm never races delivery.
// When no server runs, the command acts on the spool itself and says so on standard error: nothing
// else moves messages then (a server started while qm runs is the one race left; docs/compatibility.md).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { CliIO, CommandSpec, OptionSpec } from './command.js';
import { EXIT, say } from './command.js';
import { askServer } from './ask-server.js';
import type { ControlReply } from '../daemon/control.js';
import { qmControl, spoolQueue } from '../daemon/qm-control.js';
import type { QmActionResult, QmRequest } from '../daemon/qm-control.js';
import { compileFilter, formatCounts, formatList, formatShow, selection, validId } from '../queue/qm.js';
import type { QmCounts, QmDetail, QmFilter, QmSummary } from '../queue/qm.js';
import { Spool } from '../queue/spool.js';

const CONFIG_OPTION: OptionSpec = { flags: '--config <dir>', description: 'the configuration directory (its store.datadir holds the queue)', required: true };
const JSON_OPTION: OptionSpec = { flags: '--json', description: 'print one JSON object' };
const FILTER_OPTIONS: readonly OptionSpec[] = [
  { flags: '--channel <name>', description: 'messages with a pending target on this destination channel' },
  { flags: '--sender <address>', description: "envelope sender: a whole address (any case), '*@domain', or '<>'" },
  { flags: '--auth-user <login>', description: "SMTP AUTH user: a whole address (any case) or '*@domain'" },
  { flags: '--held', description: 'held messages only' },
];

/** Reading the queue is quick; a change may wait for a delivery attempt in flight (SMTP allows 10 minutes for the final reply). */
const READ_TIMEOUT_MS = 60_000;
const CHANGE_TIMEOUT_MS = 30 * 60_000;

/** Commander's options of list/delete/hold/release (a type literal: it converts from Record<string, unknown>). */
type FilterOpts = {
  readonly config: string;
  readonly json?: boolean;
  readonly channel?: string;
  readonly sender?: string;
  readonly authUser?: string;
  readonly held?: boolean;
};

function filterOf(o: FilterOpts): QmFilter {
  return {
    ...(o.channel !== undefined ? { channel: o.channel } : {}),
    ...(o.sender !== undefined ? { sender: o.sender } : {}),
    ...(o.authUser !== undefined ? { authUser: o.authUser } : {}),
    ...(o.held === true ? { held: true } : {}),
  };
}

/**
 * Sends a qm request to the server of `configDir`, or, when none runs, answers it from the spool
 * directly. Returns the reply, or the exit status after saying what went wrong.
 */
function ask(configDir: string, req: QmRequest, stderr: Writable, timeoutMs: number): Promise<ControlReply | number> {
  return askServer(configDir, req, stderr, {
    timeoutMs,
    offline: async (dataDir) => {
      const queue = join(dataDir, 'queue');
      if (!existsSync(queue)) {
        say(stderr, `portcullis: no server is running and there is no queue at ${queue} (check --config, or store.datadir in its msg.conf)`);
        return EXIT.failure;
      }
      say(stderr, `portcullis: no server is running; acting on the spool in ${queue} directly`);
      return qmControl(spoolQueue(Spool.open(dataDir)), req);
    },
  });
}

function usage(io: CliIO, message: string): number {
  say(io.stderr, `portcullis: ${message}`);
  return EXIT.usage;
}

const list: CommandSpec = {
  path: ['qm', 'list'],
  summary: 'list queued messages (all, or those a filter selects)',
  options: [CONFIG_OPTION, ...FILTER_OPTIONS, JSON_OPTION],
  help: [
    'One row per message: ID, AGE, SIZE (bytes), SOURCE channel, SENDER, AUTH user, CHANNELS of the pending',
    'targets, TARGETS (pending/total), ATTEMPTS (the most any target had), NEXT attempt, STATE (queued,',
    'in-flight or held) and the last DIAGNOSTIC; then the number of messages and bytes. Filters combine.',
    '--json prints {"messages":[{id, receivedAt, ageSeconds, size, sourceChannel, sender, auth, channels,',
    'pending, targets, attempts, nextAttemptAt, state, diagnostic}]}.',
    'Without a running server the spool is read directly (said on standard error).',
    'Exit status: 0 listed; 1 the queue could not be read; 2 a bad filter.',
  ].join('\n'),
  async run(io, _args, raw) {
    const o = raw as FilterOpts;
    const filter = filterOf(o);
    const f = compileFilter(filter);
    if ('error' in f) return usage(io, f.error);
    const rep = await ask(o.config, { cmd: 'qm-list', filter }, io.stderr, READ_TIMEOUT_MS);
    if (typeof rep === 'number') return rep;
    const messages = rep.messages as QmSummary[];
    if (o.json === true) say(io.stdout, JSON.stringify({ messages }));
    else for (const line of formatList(messages, Date.now())) say(io.stdout, line);
    return EXIT.ok;
  },
};

const show: CommandSpec = {
  path: ['qm', 'show'],
  summary: 'show one queued message: envelope, delivery state of each target, header section',
  args: '<id>',
  options: [CONFIG_OPTION, JSON_OPTION],
  help: [
    '--json prints {summary, envelope, targets, stateSaved, header, headerTruncated}: the envelope as in',
    'docs/spool.md, the targets as in <id>.state.',
    'Exit status: 0 shown; 1 no such message; 2 not a message id.',
  ].join('\n'),
  async run(io, args, raw) {
    const o = raw as { config: string; json?: boolean };
    const [id] = args;
    if (id === undefined) return usage(io, 'qm show needs a message id (portcullis qm list shows them)');
    if (!validId(id)) return usage(io, `"${id}" is not a message id (ids look like mwug8kib-cfcce5e8ac; portcullis qm list shows them)`);
    const rep = await ask(o.config, { cmd: 'qm-show', id }, io.stderr, READ_TIMEOUT_MS);
    if (typeof rep === 'number') return rep;
    const detail = rep.message as QmDetail;
    if (o.json === true) say(io.stdout, JSON.stringify(detail));
    else for (const line of formatShow(detail, Date.now())) say(io.stdout, line);
    return EXIT.ok;
  },
};

const counts: CommandSpec = {
  path: ['qm', 'counts'],
  summary: 'messages and bytes queued per destination channel, in flight, held, and in all',
  options: [CONFIG_OPTION, JSON_OPTION],
  help: [
    'A message is counted once on each channel it has a pending target on; held messages are counted',
    'apart, under (held), not on their channels. --json prints {channels:[{channel, messages, bytes}],',
    'inFlight, held, total} (each {messages, bytes}).',
  ].join('\n'),
  async run(io, _args, raw) {
    const o = raw as { config: string; json?: boolean };
    const rep = await ask(o.config, { cmd: 'qm-counts' }, io.stderr, READ_TIMEOUT_MS);
    if (typeof rep === 'number') return rep;
    const c = rep.counts as QmCounts;
    if (o.json === true) say(io.stdout, JSON.stringify(c));
    else for (const line of formatCounts(c)) say(io.stdout, line);
    return EXIT.ok;
  },
};

const PAST: Record<QmActionResult['action'], string> = { delete: 'deleted', hold: 'held', release: 'released' };
const REQUEST = { delete: 'qm-delete', hold: 'qm-hold', release: 'qm-release' } as const;

function plural(n: number, one: string): string {
  return `${n} ${one}${n === 1 ? '' : 's'}`;
}

function change(action: QmActionResult['action'], summary: string, help: string): CommandSpec {
  return {
    path: ['qm', action],
    summary,
    args: '[id...]',
    options: [CONFIG_OPTION, ...FILTER_OPTIONS, JSON_OPTION],
    help: [
      help,
      'Select messages by id, or by filter (as for qm list); not both, and not neither. With a running',
      'server the queue runner makes the change, after any delivery attempt in flight on the message ends.',
      `--json prints {action, done:[{id, size}], bytes, unchanged, notFound}.`,
      'Exit status: 0 done; 1 an id was not in the queue (the others were acted on), or a failure;',
      '2 bad usage.',
    ].join('\n'),
    async run(io, args, raw) {
      const o = raw as FilterOpts;
      const filter = filterOf(o);
      const sel = selection(args, filter, action);
      if ('error' in sel) return usage(io, sel.error);
      const f = compileFilter(filter);
      if ('error' in f) return usage(io, f.error);
      const rep = await ask(o.config, { cmd: REQUEST[action], ids: sel.kind === 'ids' ? sel.ids : [], filter }, io.stderr, CHANGE_TIMEOUT_MS);
      if (typeof rep === 'number') return rep;
      const r = rep.result as QmActionResult;
      if (o.json === true) say(io.stdout, JSON.stringify(r));
      else {
        if (sel.kind === 'filter' && r.done.length === 0 && r.notFound.length === 0) say(io.stdout, `no message matches; nothing ${PAST[action]}`);
        else say(io.stdout, `${PAST[action]} ${plural(r.done.length, 'message')} (${plural(r.bytes, 'byte')})`);
        for (const id of r.unchanged) say(io.stdout, action === 'hold' ? `${id} was already held` : `${id} is not held`);
        if (sel.kind === 'filter' && r.notFound.length > 0) say(io.stdout, `${plural(r.notFound.length, 'selected message')} left the queue before this (delivered meanwhile)`);
      }
      if (sel.kind === 'ids') for (const id of r.notFound) say(io.stderr, `portcullis: no message ${id} in the queue (delivered, deleted, or never there; portcullis qm list shows the queue)`);
      return sel.kind === 'ids' && r.notFound.length > 0 ? EXIT.failure : EXIT.ok;
    },
  };
}

export const QM_COMMANDS: readonly CommandSpec[] = [
  list,
  show,
  counts,
  change('delete', 'delete queued messages (e.g. the spam a compromised account queued)', 'Deletes the messages and their delivery state: no delivery, no DSN. Prints how many went, and their bytes.'),
  change('hold', 'hold queued messages: kept, not delivered, until released', 'A held message keeps its delivery state; qm release puts it back in the queue.'),
  change('release', 'put held messages back in the queue', 'Their pending targets are attempted at once, whatever the retry schedule said.'),
];
