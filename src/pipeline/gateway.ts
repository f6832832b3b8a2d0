// The running gateway: validated config, journal, masking key and the
// brokered backend connections (opened on first use, so a missing secret only
// refuses the calls that need it). `openGateway` is what `serve` and the tests use.

import { randomBytes } from 'node:crypto';
import type { Backend, BackendConnection } from '../backends/backend.js';
import { BACKENDS } from '../backends/index.js';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret, type SecretEnvironment } from '../config/secrets.js';
import { DrawbridgeError } from '../errors.js';
import { openJournal, type Journal } from '../journal/journal.js';
import type { ApprovalContext } from '../approval/stage.js';
import { openApprovalStore, type ApprovalStore } from '../approval/store.js';

export interface Gateway {
  readonly config: GatewayConfig;
  readonly journal: Journal;
  readonly maskKey: Uint8Array;
  readonly environment: SecretEnvironment;
  readonly clock: () => Date;
  /** The approve stage's state: the out-of-band store (opened on first use), journal, clock, settings. */
  readonly approval: ApprovalContext;
  /** Brokered connections, opened on first use. */
  connection(name: string): BackendConnection;
  close(): Promise<void>;
}

export function createGateway(options: {
  config: GatewayConfig;
  journal: Journal;
  maskKey: Uint8Array;
  environment: SecretEnvironment;
  clock?: () => Date;
  /** Tests inject a store, a sleep and monotonic clock (virtual time), or the progress interval; by default the store at config.approval.store. */
  approvals?: { store?: ApprovalStore; sleep?: (ms: number) => Promise<void>; monotonic?: () => number; progressEveryMs?: number };
}): Gateway {
  const open = new Map<string, BackendConnection>();
  const clock = options.clock ?? (() => new Date());
  let store: ApprovalStore | null = options.approvals?.store ?? null;
  const approval: ApprovalContext = {
    // Opened on first use: a gateway whose policy never asks for approval never creates the file.
    store: () => (store ??= openApprovalStore(options.config.approval.store)),
    journal: options.journal,
    clock,
    settings: options.config.approval,
    ...(options.approvals?.sleep ? { sleep: options.approvals.sleep } : {}),
    ...(options.approvals?.monotonic ? { monotonic: options.approvals.monotonic } : {}),
    ...(options.approvals?.progressEveryMs ? { progressEveryMs: options.approvals.progressEveryMs } : {}),
  };
  return {
    config: options.config,
    journal: options.journal,
    maskKey: options.maskKey,
    environment: options.environment,
    clock,
    approval,
    connection(name) {
      const existing = open.get(name);
      if (existing) return existing;
      const loaded = options.config.connections.get(name);
      if (!loaded) throw new DrawbridgeError('connection.unknown', `There is no connection named "${name}".`);
      const created = loaded.backend.connect(loaded.declaration, options.environment);
      open.set(name, created);
      return created;
    },
    async close() {
      await Promise.allSettled([...open.values()].map((c) => c.close()));
      open.clear();
      store?.close();
      options.journal.close();
    },
  };
}

export async function openGateway(options: {
  configDir: string;
  env?: Readonly<Record<string, string | undefined>>;
  clock?: () => Date;
  journalPath?: string;
  /** The backends tools may use: the registry's, unless a test brings its own list. */
  backends?: readonly Backend[];
}): Promise<Gateway> {
  const backends = options.backends ?? BACKENDS;
  const config = loadConfig(options.configDir, { backends });
  const environment: SecretEnvironment = { env: options.env ?? process.env, baseDir: config.dir };
  // What each backend must have before its first parse (PostgreSQL's parser).
  await Promise.all(backends.map((b) => b.init()));
  const maskKey = config.hashKey ? new TextEncoder().encode(resolveSecret(config.hashKey, environment)) : new Uint8Array(randomBytes(32));
  const journal = openJournal(options.journalPath ?? config.journal.path, { sync: config.journal.sync });
  return createGateway({ config, journal, maskKey, environment, ...(options.clock ? { clock: options.clock } : {}) });
}
