// Loads and validates tools/*.yaml and policies/*.yaml into a GatewayConfig.
// Every problem is collected and reported at once with file and line; nothing
// is half-loaded: either the whole config is valid or loading throws.
// Secrets are not resolved here (only when a connection opens).

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { Document, LineCounter, parseAllDocuments, isMap, isPair, isScalar } from 'yaml';
import type { z } from 'zod';
import type { Backend, ConnectionDeclaration } from '../backends/backend.js';
import { BACKENDS, backendForConnectionType, backendForToolType, KNOWN_OPERATIONS } from '../backends/index.js';
import { DrawbridgeError } from '../errors.js';
import type { MaskingRule } from '../masking/rules.js';
import type { Rule } from '../policy/schema.js';
import {
  gatewaySchema,
  policySchema,
  toolSchema,
  type GatewayConfig,
  type GatewayDeclaration,
  type LoadedConnection,
  type LoadedTool,
  type SourceLocation,
} from './schema.js';
import { looksLikeInlineCredential } from './secrets.js';

export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export class ConfigError extends DrawbridgeError {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super('config.invalid', `Configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map(formatProblem).join('\n')}`);
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `  ${p.file}:${p.line}: ${p.message}`;
}

interface RawDocument {
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
  readonly value: unknown;
}

export function loadConfig(dir: string): GatewayConfig {
  const root = resolve(dir);
  const problems: ConfigProblem[] = [];
  const documents: RawDocument[] = [];
  const present = ['tools', 'policies'].filter((sub) => existsSync(join(root, sub)) && statSync(join(root, sub)).isDirectory());
  if (present.length === 0) {
    throw new ConfigError([{ file: root, line: 0, message: 'no tools/ or policies/ directory here; pass --config DIR pointing at the directory that holds them' }]);
  }
  for (const sub of present) {
    for (const name of readdirSync(join(root, sub)).filter((n) => /\.ya?ml$/.test(n)).sort()) {
      const path = join(root, sub, name);
      const file = relative(process.cwd(), path) || path;
      const lines = new LineCounter();
      const parsed = parseAllDocuments(readFileSync(path, 'utf8'), { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
      const list = Array.isArray(parsed) ? parsed : [];
      for (const doc of list) {
        if (doc.errors.length > 0) {
          for (const e of doc.errors) problems.push({ file, line: e.linePos?.[0]?.line ?? 0, message: `YAML: ${e.message.split('\n')[0]}` });
          continue;
        }
        const value: unknown = doc.toJS();
        if (value === null || value === undefined) continue; // empty document (e.g. trailing ---)
        documents.push({ file, doc, lines, value });
      }
    }
  }

  const connections = new Map<string, LoadedConnection>();
  const tools = new Map<string, LoadedTool>();
  const rules: Array<{ rule: Rule; at: SourceLocation; index: number; doc: RawDocument }> = [];
  const masking: Array<{ rule: MaskingRule; doc: RawDocument; index: number }> = [];
  let gateway: { value: GatewayDeclaration; at: SourceLocation } | null = null;
  const warnings: string[] = [];

  for (const raw of documents) {
    const at = locate(raw, []);
    const kind = typeof raw.value === 'object' && raw.value !== null && !Array.isArray(raw.value) ? (raw.value as Record<string, unknown>)['kind'] : undefined;
    const validate = <S extends z.ZodType>(schema: S): z.output<S> | null => {
      const result = schema.safeParse(raw.value);
      if (result.success) return result.data as z.output<S>;
      for (const issue of result.error.issues) problems.push(...issueProblems(raw, issue));
      return null;
    };
    switch (kind) {
      case 'connection': {
        const type = (raw.value as Record<string, unknown>)['type'];
        const backend = typeof type === 'string' ? backendForConnectionType(type) : undefined;
        if (!backend) {
          problems.push({ ...locate(raw, ['type']), message: `connection type must be one of: ${BACKENDS.map((b) => b.type).join(', ')}` });
          break;
        }
        const declaration = validate(backend.connectionSchema) as ConnectionDeclaration | null;
        if (!declaration) break;
        if (connections.has(declaration.name)) {
          problems.push({ ...locate(raw, ['name']), message: `connection "${declaration.name}" is declared twice (first at ${show(connections.get(declaration.name)?.source)})` });
          break;
        }
        for (const secret of backend.secretsOf(declaration)) {
          if (looksLikeInlineCredential(secret as never)) {
            problems.push({ ...locate(raw, ['url']), message: 'a password is written inline; reference it instead, e.g. url: ${ORDERS_URL} or url: { file: /run/secrets/orders-url }' });
          }
        }
        connections.set(declaration.name, { declaration, backend, source: at });
        break;
      }
      case 'tool': {
        const declaration = validate(toolSchema);
        if (!declaration) break;
        const backend = backendForToolType(declaration.type);
        if (!backend) {
          problems.push({ ...locate(raw, ['type']), message: `tool type must be one of: ${BACKENDS.map((b) => b.toolType).join(', ')}` });
          break;
        }
        if (tools.has(declaration.name)) {
          problems.push({ ...locate(raw, ['name']), message: `tool "${declaration.name}" is declared twice (first at ${show(tools.get(declaration.name)?.source)})` });
          break;
        }
        tools.set(declaration.name, { declaration, backend, source: at });
        break;
      }
      case 'policy': {
        const policy = validate(policySchema);
        if (!policy) break;
        policy.rules.forEach((rule, index) => rules.push({ rule, at: locate(raw, ['rules', index]), index, doc: raw }));
        policy.masking.forEach((rule, index) => masking.push({ rule, doc: raw, index }));
        break;
      }
      case 'gateway': {
        const value = validate(gatewaySchema);
        if (!value) break;
        if (gateway) {
          problems.push({ ...at, message: `only one "kind: gateway" document is allowed (another is at ${show(gateway.at)})` });
          break;
        }
        gateway = { value, at };
        break;
      }
      default:
        problems.push({ ...locate(raw, ['kind']), message: 'every document needs "kind:" set to one of connection, tool, policy, gateway' });
    }
  }

  // Cross-references: a name that points at nothing is almost always a typo,
  // and a typo in a deny rule would silently switch it off.
  for (const [name, tool] of tools) {
    tool.declaration.connections.forEach((connection, index) => {
      const target = connections.get(connection);
      const where = { file: tool.source.file, line: lineOfTool(documents, name, index) ?? tool.source.line };
      if (!target) problems.push({ ...where, message: `tool "${name}" lists connection "${connection}", which is not declared` });
      else if (target.backend !== tool.backend) problems.push({ ...where, message: `tool "${name}" (${tool.declaration.type}) cannot use connection "${connection}" of type ${target.declaration.type}` });
    });
  }
  const ruleNames = new Map<string, SourceLocation>();
  for (const { rule, at, doc, index } of rules) {
    const previous = ruleNames.get(rule.name);
    if (previous) problems.push({ ...at, message: `rule name "${rule.name}" is used twice (also at ${show(previous)}); names identify rules in the journal` });
    else ruleNames.set(rule.name, at);
    checkNames(rule.match.tool, tools, 'tool', locate(doc, ['rules', index, 'match', 'tool']), problems);
    checkNames(rule.match.connection, connections, 'connection', locate(doc, ['rules', index, 'match', 'connection']), problems);
    for (const op of rule.match.operation ?? []) {
      if (!KNOWN_OPERATIONS.has(op)) problems.push({ ...locate(doc, ['rules', index, 'match', 'operation']), message: `unknown operation "${op}"; known: ${[...KNOWN_OPERATIONS].sort().join(', ')}` });
    }
  }
  for (const { rule, doc, index } of masking) {
    checkNames(rule.match.tool, tools, 'tool', locate(doc, ['masking', index, 'match', 'tool']), problems);
    checkNames(rule.match.connection, connections, 'connection', locate(doc, ['masking', index, 'match', 'connection']), problems);
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const g: GatewayDeclaration | undefined = gateway === null ? undefined : (gateway as { value: GatewayDeclaration }).value;
  if (!g?.identity) warnings.push('no caller identity is configured (kind: gateway, identity); every call will be refused');
  if (!g?.masking.hash_key && masking.some(({ rule }) => rule.style === 'hash' || rule.columns.some((c) => typeof c !== 'string' && c.style === 'hash'))) {
    warnings.push('masking uses style "hash" but no masking.hash_key is set; a random key is used per process, so hashes differ across restarts');
  }
  if (tools.size === 0) warnings.push('no tools are declared; the server will offer nothing');
  const journalPath = g?.journal.path ?? '.drawbridge/journal.db';
  return {
    dir: root,
    connections,
    tools,
    rules: rules.map((r) => r.rule),
    masking: masking.map((m) => m.rule),
    identity: g?.identity ? { mode: 'local', subject: g.identity.subject, groups: g.identity.groups } : null,
    journal: { path: isAbsolute(journalPath) ? journalPath : join(root, journalPath), sync: g?.journal.sync ?? 'full' },
    hashKey: g?.masking.hash_key ?? null,
    warnings,
  };
}

function checkNames(patterns: readonly string[] | undefined, declared: ReadonlyMap<string, unknown>, what: string, at: SourceLocation, problems: ConfigProblem[]): void {
  for (const pattern of patterns ?? []) {
    if (/[*?]/.test(pattern)) continue;
    if (!declared.has(pattern)) problems.push({ ...at, message: `${what} "${pattern}" is not declared (declared: ${[...declared.keys()].join(', ') || 'none'})` });
  }
}

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

export type { Backend };
