// Runs the read verbs (get, describe, logs, events, api-resources, explain,
// top) through the Kubernetes API. Every object is masked through the tally
// before it is rendered; rendering is render/*.

import type { Cell, ColumnInfo, TabularResult } from '../../backend.js';
import { DrawbridgeError } from '../../../errors.js';
import { resourcePath } from '../discovery.js';
import { describeObject, renderObjects, renderTable, type RenderFormat, type TableInput } from '../render.js';
import type { ApiResource, ApiResourcesCommand, DescribeCommand, EventsCommand, GetCommand, KubeObject, LogsCommand, ReadCommand, Target } from '../types.js';
import { display, doc, firstResource, table, type Execution } from './context.js';

const TABLE_ACCEPT = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';

export async function runRead(c: ReadCommand, x: Execution): Promise<TabularResult> {
  switch (c.verb) {
    case 'get':
      return c.output.kind === 'table' ? getTable(c, c.output.wide, x) : getObjects(c, c.output, x);
    case 'describe':
      return describe(c, x);
    case 'logs':
      return logs(c, x);
    case 'events':
      return events(c, x);
    case 'api-resources':
      return apiResources(c, x);
    case 'explain':
      return explain(x);
    case 'top':
      throw new DrawbridgeError('backend.error', 'top needs the metrics API (metrics.k8s.io), which this gateway does not relay.', {
        hint: 'Use `get pods -o wide` or `describe` instead.',
      });
  }
}

/** The targets of one resolved type: all of them for one type, else those written with that type. */
function targetsOf(c: GetCommand, x: Execution, r: ApiResource): readonly Target[] {
  return c.targets.filter((t) => x.resolved.length === 1 || t.type === c.types[x.resolved.indexOf(r)]);
}

async function getTable(c: GetCommand, wide: boolean, x: Execution): Promise<TabularResult> {
  firstResource(x, 'get needs a resource type.', 'e.g. `get pods -n shop`');
  const columns: ColumnInfo[] = [];
  const rows: Cell[][] = [];
  const ns = c.allNamespaces ? null : x.namespace;
  for (const r of x.resolved) {
    const targets = targetsOf(c, x, r);
    const query = { includeObject: 'Metadata', labelSelector: c.labelSelector ?? undefined, fieldSelector: c.fieldSelector ?? undefined };
    const tables: unknown[] = [];
    if (targets.length > 0) for (const t of targets) tables.push(await x.api.call('GET', resourcePath(r, ns, t.name), { accept: TABLE_ACCEPT, query }));
    else tables.push(await x.api.call('GET', resourcePath(r, ns), { accept: TABLE_ACCEPT, query }));
    for (const t of tables) {
      const rendered = renderTable(x.tally.mask(t) as TableInput, {
        wide,
        noHeaders: c.options.noHeaders,
        showKind: x.resolved.length > 1 ? display(r) : null,
        namespaceColumn: c.allNamespaces && r.namespaced,
        now: x.now,
      });
      if (columns.length === 0) columns.push(...rendered.columns.map((col) => ({ ...col, sources: [] })));
      rows.push(...rendered.rows);
    }
  }
  return table(columns, rows);
}

/** -o yaml|json|name|jsonpath: the objects (or one List of them), masked, then rendered by the one renderObjects path. */
async function getObjects(c: GetCommand, format: RenderFormat, x: Execution): Promise<TabularResult> {
  const first = firstResource(x, 'get needs a resource type.', 'e.g. `get pods -n shop`');
  const objects: unknown[] = [];
  for (const r of x.resolved) {
    const targets = targetsOf(c, x, r);
    if (targets.length > 0) for (const t of targets) objects.push(await x.api.call('GET', resourcePath(r, x.namespace, t.name)));
    else {
      const list = (await x.api.call('GET', resourcePath(r, c.allNamespaces ? null : x.namespace), {
        query: { labelSelector: c.labelSelector ?? undefined, fieldSelector: c.fieldSelector ?? undefined },
      })) as { items?: KubeObject[] };
      for (const item of list.items ?? []) objects.push({ apiVersion: r.group === '' ? r.version : `${r.group}/${r.version}`, kind: r.kind, ...item });
    }
  }
  const masked = x.tally.mask(
    objects.length === 1 && c.targets.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects, metadata: { resourceVersion: '' } },
  );
  return doc('output', renderObjects(masked, format, { resourceKey: display(first) }));
}

async function describe(c: DescribeCommand, x: Execution): Promise<TabularResult> {
  const first = firstResource(x, 'describe needs a resource type.');
  const objects: KubeObject[] = [];
  if (c.targets.length > 0) for (const t of c.targets) objects.push((await x.api.call('GET', resourcePath(first, x.namespace, t.name))) as KubeObject);
  else {
    const list = (await x.api.call('GET', resourcePath(first, c.allNamespaces ? null : x.namespace), {
      query: { labelSelector: c.labelSelector ?? undefined },
    })) as { items?: KubeObject[] };
    objects.push(...(list.items ?? []).map((o) => ({ kind: first.kind, ...o })));
  }
  const texts: string[] = [];
  for (const o of objects) {
    const events = await eventsOf(o, x);
    texts.push(describeObject(x.tally.mask({ kind: first.kind, ...o }) as KubeObject, x.tally.mask(events) as KubeObject[], x.now));
  }
  return doc('output', texts.join('\n\n'));
}

/** The events about one object; describe shows the object even when they cannot be read. */
async function eventsOf(o: KubeObject, x: Execution): Promise<KubeObject[]> {
  const path = '/api/v1' + (o.metadata?.namespace ? `/namespaces/${encodeURIComponent(o.metadata.namespace)}` : '') + '/events';
  const list = (await x.api.call('GET', path, { query: { fieldSelector: `involvedObject.name=${o.metadata?.name ?? ''}` } }).catch(() => ({ items: [] }))) as {
    items?: KubeObject[];
  };
  return list.items ?? [];
}

async function logs(c: LogsCommand, x: Execution): Promise<TabularResult> {
  const target = c.targets[0];
  if (!target) throw new DrawbridgeError('input.invalid', 'logs needs a pod name.');
  // When the connection's cap decides (no --tail, or a larger one), one line more is asked
  // for: its arrival is how the answer knows it was cut, and says so.
  const capped = c.options.tail === null || c.options.tail > x.api.maxLogLines;
  const tail = capped ? x.api.maxLogLines + 1 : (c.options.tail ?? x.api.maxLogLines);
  const text = (await x.api.call('GET', `/api/v1/namespaces/${encodeURIComponent(x.namespace)}/pods/${encodeURIComponent(target.name)}/log`, {
    accept: 'text/plain',
    query: {
      tailLines: tail,
      container: c.options.container ?? undefined,
      sinceSeconds: c.options.sinceSeconds ?? undefined,
      previous: c.options.previous ? true : undefined,
      timestamps: c.options.timestamps ? true : undefined,
    },
  })) as string;
  return capped ? capLogLines(text, x.api.maxLogLines) : doc('log', text);
}

/** The last `max` lines of a log, marked truncated when it had more. */
function capLogLines(text: string, max: number): TabularResult {
  const lines = text.split('\n');
  const ended = lines.at(-1) === '';
  if (ended) lines.pop();
  if (lines.length <= max) return doc('log', text);
  const kept = lines.slice(lines.length - max).join('\n') + (ended ? '\n' : '');
  return { ...doc('log', kept), truncated: { reason: 'rows', limit: max, hint: "the newest lines are shown (the connection's max_log_lines caps one call)" } };
}

async function events(c: EventsCommand, x: Execution): Promise<TabularResult> {
  const answer = await x.api.call('GET', `/api/v1${c.allNamespaces ? '' : `/namespaces/${encodeURIComponent(x.namespace)}`}/events`, {
    accept: TABLE_ACCEPT,
    query: {
      includeObject: 'Metadata',
      fieldSelector: c.options.forName !== null ? `involvedObject.name=${c.options.forName}` : (c.fieldSelector ?? undefined),
    },
  });
  const rendered = renderTable(x.tally.mask(answer) as TableInput, { wide: false, namespaceColumn: c.allNamespaces, now: x.now });
  return table(
    rendered.columns.map((col) => ({ ...col, sources: [] })),
    rendered.rows,
  );
}

async function apiResources(c: ApiResourcesCommand, x: Execution): Promise<TabularResult> {
  const all = await x.api.resources();
  const { apiGroup, namespaced } = c.options;
  const rows = all
    .filter((r) => (apiGroup === null || r.group === apiGroup) && (namespaced === null || r.namespaced === namespaced))
    .map((r): Cell[] => [r.resource, r.shortNames.join(','), r.group === '' ? r.version : `${r.group}/${r.version}`, r.namespaced, r.kind]);
  const columns = ['NAME', 'SHORTNAMES', 'APIVERSION', 'NAMESPACED', 'KIND'].map((n) => ({ name: n, type: n === 'NAMESPACED' ? 'bool' : 'text', sources: [] }));
  return table(columns, rows);
}

function explain(x: Execution): TabularResult {
  const first = firstResource(x, 'explain needs a resource type.');
  return doc(
    'output',
    [
      `KIND:       ${first.kind}`,
      `VERSION:    ${first.group === '' ? first.version : `${first.group}/${first.version}`}`,
      `RESOURCE:   ${first.resource}`,
      `NAMESPACED: ${first.namespaced}`,
      `SHORTNAMES: ${first.shortNames.join(', ') || '(none)'}`,
      `VERBS:      ${first.verbs.join(', ')}`,
      '',
      "(Field documentation comes from the server's OpenAPI schema, which this gateway does not relay.)",
    ].join('\n'),
  );
}
