// Loads and validates tools/*.yaml and policies/*.yaml into a GatewayConfig.
// Every problem is collected and reported at once with file and line; nothing
// is half-loaded: either the whole config is valid or loading throws.
// Secrets are not resolved here (only when a connection opens).

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { Document, LineCounter, parseAllDocuments, isMap, isPair, isScalar, visit } from 'yaml';
import { z } from 'zod';
import type { Backend, ConnectionDeclaration } from '../backends/backend.js';
import { BACKENDS, backendForConnectionType, backendForToolType, knownOperations } from '../backends/index.js';
import { DrawbridgeError } from '../errors.js';
import type { MaskingRule } from '../masking/rules.js';
import { maskingRuleSchema } from '../masking/rules.js';
import { globMatch } from '../policy/match.js';
import { policySchemas, type PolicySchemas, type Rule, type RuleMatch } from '../policy/schema.js';
import {
  DEFAULT_APPROVAL_WAIT_MS,
  gatewaySchema,
  toolSchema,
  type GatewayConfig,
  type CheckpointsConfig,
  type GatewayDeclaration,
  type LoadedConnection,
  type LoadedTool,
  type NotifyTarget,
  type StreamSinkConfig,
  type StreamSinkDeclaration,
  type ScopeMapping,
  type SourceLocation,
  type LogConfig,
} from './schema.js';
import { containsInlineCredential, type SecretRef } from './secrets.js';
import { isLoopbackHostname } from '../util/signed-webhook.js';

export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export class ConfigError extends DrawbridgeError {
  readonly problems: readonly ConfigProblem[];
  /** The config hash of the files that were read (configHash), null when none could be: a refused reload journals it as `attempted`. */
  readonly hash: string | null;
  constructor(problems: readonly ConfigProblem[], hash: string | null = null) {
    super('config.invalid', `Configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map(formatProblem).join('\n')}`);
    this.problems = problems;
    this.hash = hash;
  }
}

/** One problem as `file:line: message` (a reload's journal record and log line list them so). */
export function problemText(p: ConfigProblem): string {
  return formatProblem(p).trim();
}

/**
 * The config hash: which tools/ and policies/ a gateway runs. sha256 of the manifest that
 * `sha256sum` prints for the loaded files — one line `<sha256 hex of the file's bytes>  <path>\n`
 * per file, the path relative to the config directory with `/` (`policies/gateway.yaml`), lines
 * in byte order of the path — so an auditor recomputes it from a checkout with standard tools:
 *   find tools policies -maxdepth 1 \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort | xargs sha256sum | sha256sum
 */
export function configHash(files: ReadonlyArray<{ readonly path: string; readonly bytes: Uint8Array }>): string {
  const lines = files
    .map((f) => ({ path: f.path, line: `${createHash('sha256').update(f.bytes).digest('hex')}  ${f.path}\n` }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.path, 'utf8'), Buffer.from(b.path, 'utf8')));
  const manifest = createHash('sha256');
  for (const l of lines) manifest.update(l.line, 'utf8');
  return manifest.digest('hex');
}

function formatProblem(p: ConfigProblem): string {
  return `  ${p.file}:${p.line}: ${p.message}`;
}

interface RawDocument {
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
  readonly value: unknown;
}

export interface LoadOptions {
  /** The backends tools and connections may use: the registry's unless a test passes its own list. */
  readonly backends?: readonly Backend[];
}

export function loadConfig(dir: string, options: LoadOptions = {}): GatewayConfig {
  const backends = options.backends ?? BACKENDS;
  const root = resolve(dir);
  const problems: ConfigProblem[] = [];
  const fileOrder = new Map<string, number>();
  const read: Array<{ path: string; bytes: Uint8Array }> = [];
  const documents = readDocuments(root, problems, fileOrder, read);
  const hash = configHash(read);
  const c = emptyCollection(problems);
  const context: CollectContext = { backends, ...policySchemas(backends) };
  for (const raw of documents) collectDocument(raw, c, context);
  checkReferences(c, documents, backends);
  if (problems.length > 0) {
    // Stable: file order, then line; problems on one line keep their order.
    const order = (p: ConfigProblem) => fileOrder.get(p.file) ?? Number.MAX_SAFE_INTEGER;
    throw new ConfigError(
      problems
        .map((p, i) => ({ p, i }))
        .sort((a, b) => order(a.p) - order(b.p) || a.p.line - b.p.line || a.i - b.i)
        .map(({ p }) => p),
      hash,
    );
  }
  return assemble(root, c, hash);
}

/**
 * The likeliest cause of a YAML error on a line that has a `${VAR}` inside `{ … }`: in a flow
 * mapping `{` starts a nested mapping, so the reference must be quoted. Only says so; the line
 * itself is never quoted back (it may hold a secret).
 */
function unquotedReferenceHint(text: string, line: number): string {
  const source = text.split('\n')[line - 1] ?? '';
  return /\{[^}]*[^"']\$\{/.test(source)
    ? ' (a ${VAR} reference inside { … } must be quoted, e.g. { url: "${DRAWBRIDGE_STATE_URL}" }, or written in block style)'
    : '';
}

/** Every YAML document of tools/ and policies/, in file order; YAML syntax errors become problems. */
function readDocuments(
  root: string,
  problems: ConfigProblem[],
  fileOrder: Map<string, number>,
  read: Array<{ path: string; bytes: Uint8Array }>,
): RawDocument[] {
  const documents: RawDocument[] = [];
  const present = ['tools', 'policies'].filter((sub) => existsSync(join(root, sub)) && statSync(join(root, sub)).isDirectory());
  if (present.length === 0) {
    throw new ConfigError([
      { file: root, line: 0, message: 'no tools/ or policies/ directory here; pass --config DIR pointing at the directory that holds them' },
    ]);
  }
  for (const sub of present) {
    for (const name of readdirSync(join(root, sub))
      .filter((n) => /\.ya?ml$/.test(n))
      .sort()) {
      const path = join(root, sub, name);
      const file = displayPath(path);
      fileOrder.set(file, fileOrder.size);
      const lines = new LineCounter();
      // prettyErrors stays off: pretty messages quote the source line, which may hold a secret.
      // Hashed from the very bytes that are parsed: the hash names what was loaded, even if a file changes meanwhile.
      const bytes = readFileSync(path);
      read.push({ path: `${sub}/${name}`, bytes });
      const text = bytes.toString('utf8');
      const parsed = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
      const list = Array.isArray(parsed) ? parsed : [];
      for (const doc of list) {
        if (doc.errors.length > 0) {
          const reported = new Set<number>();
          for (const e of doc.errors) {
            const line = lines.linePos(e.pos[0]).line;
            if (reported.has(line)) continue;
            reported.add(line);
            problems.push({ file, line, message: `YAML: ${e.message.split('\n')[0]}${unquotedReferenceHint(text, line)}` });
          }
          continue;
        }
        const value: unknown = doc.toJS();
        if (value === null || value === undefined) continue; // empty document (e.g. trailing ---)
        documents.push({ file, doc, lines, value });
      }
    }
  }
  return documents;
}

/** What the documents declare, and what the checks across documents need. */
interface Collection {
  readonly problems: ConfigProblem[];
  readonly connections: Map<string, LoadedConnection>;
  readonly tools: Map<string, LoadedTool>;
  readonly rules: Rule[];
  readonly masking: MaskingRule[];
  // Names of declarations that failed validation: their problems are already
  // reported, so references to them must not add "not declared" noise.
  readonly brokenConnections: Set<string>;
  readonly brokenTools: Set<string>;
  /** Every rule's match (valid rule or not) is checked against declared names. */
  readonly matches: Array<{ match: Partial<RuleMatch>; doc: RawDocument; path: Array<string | number> }>;
  readonly ruleNames: Map<string, SourceLocation>;
  readonly firstConnection: Map<string, SourceLocation>;
  readonly firstTool: Map<string, SourceLocation>;
  firstGateway: SourceLocation | null;
  gateway: GatewayDeclaration | null;
  /** identity.scopes with each match validated by the rule match schema. */
  readonly scopes: ScopeMapping[];
}

function emptyCollection(problems: ConfigProblem[]): Collection {
  return {
    problems,
    connections: new Map(),
    tools: new Map(),
    rules: [],
    masking: [],
    brokenConnections: new Set(),
    brokenTools: new Set(),
    matches: [],
    ruleNames: new Map(),
    firstConnection: new Map(),
    firstTool: new Map(),
    firstGateway: null,
    gateway: null,
    scopes: [],
  };
}

interface CollectContext extends PolicySchemas {
  readonly backends: readonly Backend[];
}

/** Validates against `schema`, reporting its issues at their file and line; null when invalid. */
type Validate = <S extends z.ZodType>(schema: S, value?: unknown, prefix?: Array<string | number>) => z.output<S> | null;

/** One document, by its kind. */
function collectDocument(raw: RawDocument, c: Collection, context: CollectContext): void {
  const at = locate(raw, []);
  const object = typeof raw.value === 'object' && raw.value !== null && !Array.isArray(raw.value) ? (raw.value as Record<string, unknown>) : null;
  const kind = object?.['kind'];
  const validate: Validate = (schema, value = raw.value, prefix = []) => {
    const result = schema.safeParse(value);
    if (result.success) return result.data as z.output<typeof schema>;
    for (const issue of result.error.issues) c.problems.push(...issueProblems(raw, { ...issue, path: [...prefix, ...issue.path] } as z.core.$ZodIssue));
    return null;
  };
  refuseInlineCredentials(raw, at, c.problems);
  const name = object?.['name'];
  switch (kind) {
    case 'connection':
      return collectConnection(raw, object?.['type'], name, c, context.backends, validate);
    case 'tool':
      return collectTool(raw, name, c, context.backends, validate);
    case 'policy':
      return collectPolicy(raw, c, context, validate);
    case 'gateway':
      return collectGateway(raw, c, context, validate);
    default:
      c.problems.push({
        ...locate(raw, ['kind']),
        message:
          `${kind === undefined ? 'missing "kind:"' : `unknown kind ${JSON.stringify(kind)}`}; ` +
          `every document needs "kind:" set to one of connection, tool, policy, gateway`,
      });
  }
}

/**
 * Secrets are referenced, never written: any value anywhere that carries a
 * password is refused (a description is shown to the agent, too). The
 * message names the field, never the value.
 */
function refuseInlineCredentials(raw: RawDocument, at: SourceLocation, problems: ConfigProblem[]): void {
  visit(raw.doc, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'string' || !containsInlineCredential(node.value)) return;
      const field =
        path
          .filter((n) => isPair(n) && isScalar(n.key))
          .map((n) => String((n as { key: { value: unknown } }).key.value))
          .join('.') || 'value';
      problems.push({
        file: raw.file,
        line: node.range ? raw.lines.linePos(node.range[0]).line : at.line,
        message: `${field}: a password is written inline; reference it instead, e.g. url: \${ORDERS_URL} or url: { file: /run/secrets/orders-url }`,
      });
    },
  });
}

/** Reports a second declaration of a name; true when `name` was already declared. */
function duplicate(what: string, seen: Map<string, SourceLocation>, raw: RawDocument, name: unknown, problems: ConfigProblem[]): boolean {
  if (typeof name !== 'string') return false;
  const first = seen.get(name);
  if (first) {
    problems.push({ ...locate(raw, ['name']), message: `${what} "${name}" is declared twice (first at ${show(first)})` });
    return true;
  }
  seen.set(name, locate(raw, []));
  return false;
}

function collectConnection(raw: RawDocument, type: unknown, name: unknown, c: Collection, backends: readonly Backend[], validate: Validate): void {
  const backend = typeof type === 'string' ? backendForConnectionType(type, backends) : undefined;
  const isDuplicate = duplicate('connection', c.firstConnection, raw, name, c.problems);
  if (!backend) {
    c.problems.push({ ...locate(raw, ['type']), message: `connection type must be one of: ${backends.map((b) => b.type).join(', ')}` });
    if (typeof name === 'string') c.brokenConnections.add(name);
    return;
  }
  const declaration: ConnectionDeclaration | null = validate(backend.connectionSchema);
  if (!declaration) {
    if (typeof name === 'string') c.brokenConnections.add(name);
    return;
  }
  if (!isDuplicate) c.connections.set(declaration.name, { declaration, backend, source: locate(raw, []) });
}

function collectTool(raw: RawDocument, name: unknown, c: Collection, backends: readonly Backend[], validate: Validate): void {
  const isDuplicate = duplicate('tool', c.firstTool, raw, name, c.problems);
  const declaration = validate(toolSchema);
  if (!declaration) {
    if (typeof name === 'string') c.brokenTools.add(name);
    return;
  }
  const backend = backendForToolType(declaration.type, backends);
  if (!backend) {
    c.problems.push({ ...locate(raw, ['type']), message: `tool type must be one of: ${backends.map((b) => b.toolType).join(', ')}` });
    c.brokenTools.add(declaration.name);
    return;
  }
  if (!isDuplicate) c.tools.set(declaration.name, { declaration, backend, source: locate(raw, []) });
}

/**
 * Rules and masking rules are validated one by one, so one broken rule
 * does not hide the problems (or the typos) of the others.
 */
function collectPolicy(raw: RawDocument, c: Collection, { matchSchema, ruleSchema }: PolicySchemas, validate: Validate): void {
  const policy = validate(policyEnvelopeSchema);
  if (!policy) return;
  policy.rules.forEach((value, index) => {
    const path = ['rules', index];
    const name = (value as { name?: unknown } | null)?.name;
    if (typeof name === 'string') {
      const previous = c.ruleNames.get(name);
      if (previous)
        c.problems.push({
          ...locate(raw, [...path, 'name']),
          message: `rule name "${name}" is used twice (also at ${show(previous)}); names identify rules in the journal`,
        });
      else c.ruleNames.set(name, locate(raw, path));
    }
    const rule = validate(ruleSchema, value, path);
    const match = rule?.match ?? matchSchema.safeParse((value as { match?: unknown } | null)?.match).data;
    if (match) c.matches.push({ match, doc: raw, path });
    if (rule) c.rules.push(rule);
  });
  policy.masking.forEach((value, index) => {
    const path = ['masking', index];
    const rule = validate(maskingRuleSchema, value, path);
    const match = rule?.match ?? maskingMatchSchema.safeParse((value as { match?: unknown } | null)?.match ?? {}).data;
    if (match) c.matches.push({ match, doc: raw, path });
    if (rule) c.masking.push(rule);
  });
}

function collectGateway(raw: RawDocument, c: Collection, { matchSchema }: PolicySchemas, validate: Validate): void {
  const at = locate(raw, []);
  if (c.firstGateway) {
    c.problems.push({ ...at, message: `only one "kind: gateway" document is allowed (another is at ${show(c.firstGateway)})` });
    return;
  }
  c.firstGateway = at;
  collectScopes(raw, c, matchSchema, validate);
  const value = validate(gatewaySchema);
  if (!value) return;
  const hashKey = value.masking.hash_key;
  if (hashKey?.kind === 'template' && !hashKey.template.includes('${')) {
    c.problems.push({
      ...locate(raw, ['masking', 'hash_key']),
      message: 'masking.hash_key is written inline; reference it instead, e.g. hash_key: ${DRAWBRIDGE_HASH_KEY} or hash_key: { file: /run/secrets/hash-key }',
    });
  }
  const signingKey = value.journal.checkpoints?.signing_key;
  if (signingKey?.kind === 'template' && !signingKey.template.includes('${')) {
    c.problems.push({
      ...locate(raw, ['journal', 'checkpoints', 'signing_key']),
      message: 'journal.checkpoints.signing_key is written inline; reference it instead, e.g. signing_key: { file: /run/secrets/checkpoint-key.pem }',
    });
  }
  const stateUrl = value.state?.url;
  if (stateUrl?.kind === 'template' && !stateUrl.template.includes('${')) {
    c.problems.push({
      ...locate(raw, ['state', 'url']),
      message: 'state.url is written inline; reference it instead (it holds a password), e.g. url: ${DRAWBRIDGE_STATE_URL}',
    });
  }
  value.approval.approvers.forEach((approver, index) => {
    if (approver.token.kind === 'template' && !approver.token.template.includes('${')) {
      c.problems.push({
        ...locate(raw, ['approval', 'approvers', index, 'token']),
        message: 'an approver token is written inline; reference it instead, e.g. token: ${DBA_APPROVER_TOKEN}',
      });
    }
  });
  const requestStateKey = value.approval.request_state_key;
  if (requestStateKey?.kind === 'template' && !requestStateKey.template.includes('${')) {
    c.problems.push({
      ...locate(raw, ['approval', 'request_state_key']),
      message:
        'approval.request_state_key is written inline; reference it instead, e.g. request_state_key: ${DRAWBRIDGE_REQUEST_STATE_KEY} ' +
        'or request_state_key: { file: /run/secrets/request-state-key }',
    });
  }
  value.approval.notify.forEach((target, index) => {
    for (const problem of notifyTargetProblems(target))
      c.problems.push({ ...locate(raw, ['approval', 'notify', index, problem.field]), message: problem.message });
  });
  const sinkNames = new Map<string, number>();
  value.journal.stream.forEach((sink, index) => {
    const first = sinkNames.get(sink.name);
    if (first !== undefined) {
      c.problems.push({
        ...locate(raw, ['journal', 'stream', index, 'name']),
        message: `stream sink "${sink.name}" is declared twice (also journal.stream[${first}]); the name keys its durable cursor`,
      });
    } else sinkNames.set(sink.name, index);
    for (const problem of streamSinkProblems(sink))
      c.problems.push({ ...locate(raw, ['journal', 'stream', index, ...problem.field]), message: problem.message });
  });
  if (value.tracing)
    for (const problem of tracingProblems(value.tracing)) c.problems.push({ ...locate(raw, ['tracing', ...problem.path]), message: problem.message });
  c.gateway = value;
}

/**
 * identity.scopes: each match is a rule match (the same keys, backend keys too), validated and
 * name-checked the same way. Read from the document as written, so its problems are reported
 * with the gateway schema's, not only once those are fixed; a missing match is the schema's.
 */
function collectScopes(raw: RawDocument, c: Collection, matchSchema: PolicySchemas['matchSchema'], validate: Validate): void {
  const identity = valueAt(raw.value, ['identity']);
  const scopes = valueAt(identity, ['scopes']);
  if (valueAt(identity, ['mode']) !== 'oidc' || !Array.isArray(scopes)) return;
  scopes.forEach((entry: unknown, index) => {
    const path = ['identity', 'scopes', index];
    const written = valueAt(entry, ['match']);
    if (written === undefined) return;
    const match = validate(matchSchema, written, [...path, 'match']);
    if (!match) return;
    c.matches.push({ match, doc: raw, path });
    const scope = valueAt(entry, ['scope']);
    if (typeof scope === 'string') c.scopes.push({ scope, match });
  });
}

/**
 * What is wrong with a notification target as written: an inline URL or secret (a Slack
 * webhook URL is a credential), or a literal scheme and host that are neither https nor
 * http on loopback. A URL wholly behind a reference is checked when it is resolved.
 */
function notifyTargetProblems(target: NotifyTarget): Array<{ field: 'url' | 'secret'; message: string }> {
  const problems: Array<{ field: 'url' | 'secret'; message: string }> = [];
  const url = target.url;
  if (url.kind === 'template' && !url.template.includes('${')) {
    problems.push({
      field: 'url',
      message:
        `a ${target.kind} notification URL is written inline (it carries the webhook's credential); ` + 'reference it instead, e.g. url: ${SLACK_WEBHOOK_URL}',
    });
  } else if (url.kind === 'template') {
    const problem = literalUrlProblem(url.template, 'a notification URL');
    if (problem !== null) problems.push({ field: 'url', message: problem });
  }
  if (target.kind === 'webhook' && target.secret.kind === 'template' && !target.secret.template.includes('${')) {
    problems.push({ field: 'secret', message: 'a webhook signing secret is written inline; reference it instead, e.g. secret: ${DRAWBRIDGE_WEBHOOK_SECRET}' });
  }
  return problems;
}

/**
 * The scheme and host of a URL as written (before any ${VAR} in it is resolved): https, or http
 * only to a loopback address. A URL wholly behind a reference is checked when it is resolved.
 */
function literalUrlProblem(template: string, what: string): string | null {
  const literal = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#$]*)(?=[/?#]|\$\{|$)/.exec(template);
  const scheme = literal?.[1]?.toLowerCase();
  const host = literal?.[2]?.replace(/^.*@/, '').replace(/:\d+$/, '') ?? '';
  if (scheme !== undefined && scheme !== 'https' && scheme !== 'http') return `${what} must use https:// (it uses ${scheme}://)`;
  if (scheme === 'http' && host !== '' && !isLoopbackHostname(host)) {
    return `${what} must use https:// (http:// only to a loopback address, for tests); ${host} is not loopback`;
  }
  return null;
}

/** A secret written inline where a reference belongs (no ${VAR} in the template). */
function isInline(ref: SecretRef): boolean {
  return ref.kind === 'template' && !ref.template.includes('${');
}

/** What is wrong with an audit stream sink as written: URLs off https (except loopback http), signing secrets and header values written inline. */
function streamSinkProblems(sink: StreamSinkDeclaration): Array<{ field: Array<string | number>; message: string }> {
  const problems: Array<{ field: Array<string | number>; message: string }> = [];
  if (sink.type === 'webhook') {
    const problem = sink.url.kind === 'template' ? literalUrlProblem(sink.url.template, 'a stream webhook URL') : null;
    if (problem !== null) problems.push({ field: ['url'], message: problem });
    if (isInline(sink.secret)) {
      problems.push({
        field: ['secret'],
        message: 'a stream webhook signing secret is written inline; reference it instead, e.g. secret: ${SIEM_WEBHOOK_SECRET}',
      });
    }
  } else {
    const problem = literalUrlProblem(sink.endpoint, 'an OTLP endpoint');
    if (problem !== null) problems.push({ field: ['endpoint'], message: problem });
    for (const [name, value] of Object.entries(sink.headers)) {
      if (isInline(value)) {
        problems.push({
          field: ['headers', name],
          message: `OTLP header ${name} is written inline (header values are credentials); reference it instead, e.g. ${name}: \${OTLP_TOKEN}`,
        });
      }
    }
  }
  return problems;
}

/**
 * tracing: the endpoint over https, or http only to a loopback address (a collector sidecar on the
 * same host); header values by reference (a collector's API key is a credential), never inline.
 */
function tracingProblems(tracing: NonNullable<GatewayDeclaration['tracing']>): Array<{ path: string[]; message: string }> {
  const problems: Array<{ path: string[]; message: string }> = [];
  const url = new URL(tracing.endpoint);
  // A password in the URL is refused by the inline-credential check (refuseInlineCredentials); a user name alone may be a token.
  if (url.username !== '' && url.password === '') {
    problems.push({
      path: ['endpoint'],
      message: 'tracing.endpoint carries credentials in the URL; send them as a header instead (tracing.headers, by reference)',
    });
  } else if (url.protocol === 'http:' && !isLoopbackHostname(url.hostname)) {
    problems.push({
      path: ['endpoint'],
      message: `tracing.endpoint must use https:// (http:// only to a loopback address, e.g. a collector on this host); ${url.hostname} is not loopback`,
    });
  }
  for (const [name, ref] of Object.entries(tracing.headers)) {
    if (isInline(ref))
      problems.push({
        path: ['headers', name],
        message: `tracing header ${name} is written inline; reference it instead, e.g. ${name}: \${OTEL_API_KEY} or { file: /run/secrets/otel-key }`,
      });
  }
  return problems;
}

/** journal.stream as loaded: durations in milliseconds. */
function streamSinksOf(g: GatewayDeclaration | undefined): StreamSinkConfig[] {
  return (g?.journal.stream ?? []).map((s) =>
    s.type === 'webhook'
      ? { type: 'webhook', name: s.name, batch: s.batch, timeoutMs: s.timeout, url: s.url, secret: s.secret }
      : { type: 'otlp', name: s.name, batch: s.batch, timeoutMs: s.timeout, endpoint: s.endpoint, headers: s.headers },
  );
}

/**
 * Cross-references: a name that points at nothing is almost always a typo,
 * and a typo in a deny rule would silently switch it off.
 */
function checkReferences(c: Collection, documents: readonly RawDocument[], backends: readonly Backend[]): void {
  const { problems, tools, connections, brokenConnections } = c;
  const toolNames = new Set([...tools.keys(), ...c.brokenTools]);
  const connectionNames = new Set([...connections.keys(), ...brokenConnections]);
  // admin.ready_requires: a typo would silently leave readiness blind to the connection meant.
  const gatewayDoc = documents.find((d) => getIn(d, ['kind']) === 'gateway');
  if (c.gateway && gatewayDoc) checkNames(c.gateway.admin.ready_requires, connectionNames, 'connection', gatewayDoc, ['admin', 'ready_requires'], problems);
  for (const [name, tool] of tools) {
    tool.declaration.connections.forEach((connection, index) => {
      const target = connections.get(connection);
      const where = { file: tool.source.file, line: lineOfTool(documents, name, index) ?? tool.source.line };
      if (!target) {
        if (!brokenConnections.has(connection))
          problems.push({
            ...where,
            message: `tool "${name}" lists connection "${connection}", which is not declared (declared: ${[...connectionNames].join(', ') || 'none'})`,
          });
      } else if (target.backend !== tool.backend)
        problems.push({
          ...where,
          message: `tool "${name}" (${tool.declaration.type}) cannot use connection "${connection}" of type ${target.declaration.type}`,
        });
    });
  }
  const operations = knownOperations(backends);
  for (const { match, doc, path } of c.matches) {
    checkNames(match.tool, toolNames, 'tool', doc, [...path, 'match', 'tool'], problems);
    checkNames(match.connection, connectionNames, 'connection', doc, [...path, 'match', 'connection'], problems);
    (match.operation ?? []).forEach((op, i) => {
      const where = locate(
        doc,
        Array.isArray(getIn(doc, [...path, 'match', 'operation'])) ? [...path, 'match', 'operation', i] : [...path, 'match', 'operation'],
      );
      if (!operations.has(op))
        problems.push({
          ...where,
          message: `unknown operation "${op}"; known: ${[...operations]
            .filter((o) => o !== 'unknown')
            .sort()
            .join(', ')}`,
        });
      else if (op === 'unknown')
        problems.push({ ...where, message: 'operation "unknown" never reaches the rules: requests the gateway cannot classify are always denied' });
    });
  }
}

function checkpointsOf(g: GatewayDeclaration | undefined, absolute: (p: string) => string): CheckpointsConfig | null {
  const c = g?.journal.checkpoints;
  return c ? { everyMs: c.every, signingKey: c.signing_key, publishFile: absolute(c.publish.file) } : null;
}

/** The valid collection as a GatewayConfig, with the defaults and the warnings. */
function assemble(root: string, c: Collection, hash: string): GatewayConfig {
  const g: GatewayDeclaration | undefined = c.gateway ?? undefined;
  const { tools, masking } = c;
  const warnings: string[] = [];
  if (!g?.identity) warnings.push('no caller identity is configured (kind: gateway, identity); every call will be refused');
  if (g?.identity?.mode === 'oidc' && g.approval.approvers.length > 0) {
    warnings.push('approval.approvers is not used with OIDC identities: approvers sign in with the OpenID provider, and their groups come from their token');
  }
  if (!g?.masking.hash_key && masking.some((rule) => rule.style === 'hash' || rule.columns.some((col) => typeof col !== 'string' && col.style === 'hash'))) {
    warnings.push('masking uses style "hash" but no masking.hash_key is set; a random key is used per process, so hashes differ across restarts');
  }
  if (tools.size === 0) warnings.push('no tools are declared; the server will offer nothing');
  const journalPath = g?.journal.path ?? '.drawbridge/journal.db';
  const absolute = (p: string) => (isAbsolute(p) ? p : join(root, p));
  return {
    dir: root,
    hash,
    connections: c.connections,
    tools,
    rules: c.rules,
    masking,
    identity: !g?.identity
      ? null
      : g.identity.mode === 'local'
        ? { mode: 'local', subject: g.identity.subject, groups: g.identity.groups }
        : { ...g.identity, scopes: c.scopes },
    journal: {
      path: isAbsolute(journalPath) ? journalPath : join(root, journalPath),
      sync: g?.journal.sync ?? 'full',
      checkpoints: checkpointsOf(g, absolute),
      readers: g?.journal.readers ?? [],
      stream: streamSinksOf(g),
    },
    hashKey: g?.masking.hash_key ?? null,
    state: g?.state ? { engine: 'postgres', url: g.state.url } : { engine: 'sqlite' },
    approval: {
      store: absolute(g?.approval.store ?? '.drawbridge/approvals.db'),
      waitMs: g?.approval.wait ?? DEFAULT_APPROVAL_WAIT_MS,
      elicitationTimeoutMs: g?.approval.elicitation_timeout ?? 600_000,
      pendingTtlMs: g?.approval.pending_ttl ?? 86_400_000,
      approvers: g?.approval.approvers ?? [],
      notify: g?.approval.notify ?? [],
      requestStateKey: g?.approval.request_state_key ?? null,
    },
    console: { enabled: g?.console.enabled ?? true, clientId: g?.console.client_id ?? 'drawbridge-console', clientSecret: g?.console.client_secret ?? null },
    admin: {
      listen: g?.admin.listen ?? null,
      operators: g?.admin.operators ?? [],
      readyRequires: g?.admin.ready_requires ?? [],
      drainTimeoutMs: g?.admin.drain_timeout ?? 30_000,
      metricsOnMain: g?.admin.metrics_on_main ?? false,
    },
    log: g?.log ?? DEFAULT_LOG,
    tracing: g?.tracing
      ? { endpoint: g.tracing.endpoint, headers: g.tracing.headers, sampleRatio: g.tracing.sample_ratio, serviceName: g.tracing.service_name }
      : null,
    warnings,
  };
}

/**
 * A rule naming a tool or connection that does not exist is a typo that would
 * silently switch the rule off. Globs must match at least one declared name.
 */
function checkNames(
  patterns: readonly string[] | undefined,
  declared: ReadonlySet<string>,
  what: string,
  doc: RawDocument,
  path: Array<string | number>,
  problems: ConfigProblem[],
): void {
  const listed = Array.isArray(getIn(doc, path));
  (patterns ?? []).forEach((pattern, i) => {
    const known = /[*?]/.test(pattern) ? [...declared].some((name) => globMatch(pattern, name)) : declared.has(pattern);
    if (known) return;
    problems.push({
      ...locate(doc, listed ? [...path, i] : path),
      message:
        `${what} "${pattern}" ${/[*?]/.test(pattern) ? 'matches no declared ' + what : 'is not declared'} ` +
        `(declared: ${[...declared].join(', ') || 'none'})`,
    });
  });
}

function getIn(doc: RawDocument, path: Array<string | number>): unknown {
  return valueAt(doc.value, path);
}

function valueAt(root: unknown, path: ReadonlyArray<string | number>): unknown {
  let value: unknown = root;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return value;
}

/** Paths are shown relative to the working directory when inside it, else absolute. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

/** The log without a gateway declaration: the schema's defaults. */
const DEFAULT_LOG: LogConfig = { level: 'info', format: 'auto', subjects: false };

const maskingMatchSchema = maskingRuleSchema.shape.match;

const policyEnvelopeSchema = z.strictObject({
  kind: z.literal('policy'),
  description: z.string().optional(),
  rules: z.array(z.unknown()).default([]),
  masking: z.array(z.unknown()).default([]),
});

function lineOfTool(documents: readonly RawDocument[], tool: string, index: number): number | undefined {
  const raw = documents.find((d) => {
    const v = d.value as Record<string, unknown>;
    return v['kind'] === 'tool' && v['name'] === tool;
  });
  return raw ? locate(raw, ['connections', index]).line : undefined;
}

function show(at: SourceLocation | undefined): string {
  return at ? `${at.file}:${at.line}` : 'elsewhere';
}

/** Maps zod issues to file:line problems. Unknown keys point at the key itself. */
function issueProblems(raw: RawDocument, issue: z.core.$ZodIssue): ConfigProblem[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ ...locateKey(raw, path, key), message: `unknown key "${key}"${path.length ? ` in ${path.join('.')}` : ''}` }));
  }
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    // Report the branch that got furthest: the one whose issues have the longest paths.
    const best = [...issue.errors].sort((a, b) => depth(b) - depth(a))[0] ?? [];
    if (best.length > 0) return best.flatMap((inner) => issueProblems(raw, { ...inner, path: [...path, ...inner.path] } as z.core.$ZodIssue));
  }
  const where = path.length ? `${path.join('.')}: ` : '';
  if (
    path.length > 0 &&
    valueAt(raw.value, path) === undefined &&
    (issue.code === 'invalid_type' || issue.code === 'invalid_value' || issue.code === 'invalid_union')
  ) {
    return [{ ...locate(raw, path), message: `${where}required (${issue.message.replace(/^Invalid (input|option): /, '')})` }];
  }
  return [{ ...locate(raw, path), message: `${where}${issue.message}` }];
}

function depth(issues: readonly z.core.$ZodIssue[]): number {
  return Math.max(0, ...issues.map((i) => i.path.length + (i.code === 'invalid_type' ? 0 : 0.5)));
}

function locate(raw: RawDocument, path: readonly (string | number)[]): SourceLocation {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? raw.doc.contents : raw.doc.getIn(path.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) return { file: raw.file, line: raw.lines.linePos(range[0]).line };
  }
  return { file: raw.file, line: raw.lines.linePos(raw.doc.range[0]).line };
}

function locateKey(raw: RawDocument, path: readonly (string | number)[], key: string): SourceLocation {
  const parent = path.length === 0 ? raw.doc.contents : raw.doc.getIn(path, true);
  if (isMap(parent)) {
    for (const item of parent.items) {
      if (isPair(item) && isScalar(item.key) && item.key.value === key && item.key.range) {
        return { file: raw.file, line: raw.lines.linePos(item.key.range[0]).line };
      }
    }
  }
  return locate(raw, path);
}
