// The console's journal views for a signed-in journal reader: search, one call, an agent
// session's replay (by MCP session, or one client's calls in a time window), the config
// records (serve starts and reload attempts, with their hashes), each with the
// journal's verify verdict. Readers are journal.readers, exactly as for the approvals API
// (journal/query.ts). The verdict walks the whole chain, so it is computed at most once
// per VERIFY_TTL_MS per console and shown with its age; checkpoints are checked when the
// gateway publishes them.

import { existsSync } from 'node:fs';
import { DrawbridgeError, isDrawbridgeError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { PublishedCheckpoint } from '../journal/checkpoint.js';
import { checkpointKeys, readCheckpointFile } from '../journal/checkpoint-file.js';
import { assertJournalReader, searchFilterOf } from '../journal/query.js';
import { callRecord, configEvents, searchCalls, sessionReplay, verifyStatus, type SearchPage, type VerifyStatus } from '../journal/search.js';
import type { Gateway } from '../pipeline/gateway.js';
import { CONFIG_PATH, journalCallPage, journalConfigPage, journalReplayPage, journalSearchPage, JOURNAL_PATH, verifyLine } from './journal-pages.js';
import { decodeSegment, escapeHtml } from './pages.js';

const VERIFY_TTL_MS = 30_000;
/** The config page shows the newest this many config records. */
const MAX_CONFIG_EVENTS = 200;

export interface JournalView {
  readonly status: number;
  readonly title: string;
  readonly body: string;
}

export interface JournalViews {
  /** The view for a GET under /console/journal, or null when `path` is not one. Throws DrawbridgeError (journal.forbidden, journal.unavailable). */
  view(who: Identity, path: string, params: URLSearchParams): Promise<JournalView | null>;
}

type Verdict = VerifyStatus | { readonly error: string };

const notFound = (text: string): JournalView => ({
  status: 404,
  title: 'Not in the journal',
  body: `<p class="error" data-notice="error">${escapeHtml(text)}</p>`,
});

export function createJournalViews(gateway: Gateway, now: () => number): JournalViews {
  let cached: { at: number; verdict: Verdict } | null = null;

  function checkpoints(): { published: readonly PublishedCheckpoint[]; publicKey: ReturnType<typeof checkpointKeys>['publicKey'] } | undefined {
    const c = gateway.config.journal.checkpoints;
    // None published yet (the first comes after checkpoints.every): verify the chain alone.
    if (c === null || !existsSync(c.publishFile)) return undefined;
    return { published: readCheckpointFile(c.publishFile), publicKey: checkpointKeys(c, gateway.environment).publicKey };
  }

  async function verdict(): Promise<Verdict> {
    const t = now();
    if (cached !== null && t - cached.at < VERIFY_TTL_MS) return cached.verdict;
    let result: Verdict;
    try {
      result = await verifyStatus(gateway.state.journal, checkpoints());
    } catch (error) {
      result = { error: isDrawbridgeError(error) ? error.message : 'the journal could not be verified' };
    }
    cached = { at: t, verdict: result };
    return result;
  }

  async function search(params: URLSearchParams): Promise<JournalView> {
    let result: SearchPage | { error: string };
    let status = 200;
    try {
      result = await searchCalls(gateway.state.journal, searchFilterOf(params));
    } catch (error) {
      if (!isDrawbridgeError(error) || error.code !== 'input.invalid') throw error;
      result = { error: error.message };
      status = 400;
    }
    return { status, title: 'Journal', body: journalSearchPage(params, await verdict(), result) };
  }

  async function replayWindow(params: URLSearchParams): Promise<JournalView> {
    const client = params.get('client') ?? '';
    const since = new Date(params.get('since') ?? '');
    const until = new Date(params.get('until') ?? '');
    if (client === '' || Number.isNaN(since.getTime()) || Number.isNaN(until.getTime()) || !(since < until)) {
      throw new DrawbridgeError('input.invalid', 'A replay window needs client, and since before until as ISO times (e.g. 2026-12-05T09:00Z).');
    }
    const subject = params.get('subject') || undefined;
    const replay = await sessionReplay(gateway.state.journal, { client, since, until, ...(subject !== undefined ? { subject } : {}) });
    const title = `Replay: ${client}${subject ? ` as ${subject}` : ''}, ${since.toISOString()} to ${until.toISOString()}`;
    return { status: 200, title, body: verifyLine(await verdict()) + journalReplayPage(replay) };
  }

  return {
    async view(who, path, params) {
      if (path !== JOURNAL_PATH && !path.startsWith(`${JOURNAL_PATH}/`)) return null;
      assertJournalReader(gateway.config.journal.readers, who);
      if (path === JOURNAL_PATH) return search(params);
      if (path === `${JOURNAL_PATH}/replay`) return replayWindow(params);
      if (path === CONFIG_PATH) {
        const events = await configEvents(gateway.state.journal, MAX_CONFIG_EVENTS);
        return { status: 200, title: 'Config changes', body: verifyLine(await verdict()) + journalConfigPage(events) };
      }
      const call = /^\/console\/journal\/calls\/([^/]+)$/.exec(path);
      if (call) {
        const id = decodeSegment(call[1]) ?? call[1] ?? '';
        const entry = await callRecord(gateway.state.journal, id);
        if (!entry) return notFound(`No call ${JSON.stringify(id)} in the journal.`);
        return { status: 200, title: `Call ${id}`, body: verifyLine(await verdict()) + journalCallPage(entry) };
      }
      const session = /^\/console\/journal\/sessions\/([^/]+)$/.exec(path);
      if (session) {
        const id = decodeSegment(session[1]) ?? session[1] ?? '';
        const replay = await sessionReplay(gateway.state.journal, { session: id });
        if (replay.steps.length === 0) return notFound(`No calls of session ${JSON.stringify(id)} in the journal.`);
        return { status: 200, title: `Session ${id}`, body: verifyLine(await verdict()) + journalReplayPage(replay) };
      }
      return null;
    },
  };
}
