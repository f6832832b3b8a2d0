// The read verbs of kubectl (get, describe, logs, events, api-resources,
// explain, top): each builds its typed command from the parsed flags and
// arguments, or says what is wrong (input.invalid). Pure.

import { invalid } from '../grammar.js';
import type {
  ApiResourcesCommand,
  DescribeCommand,
  EventsCommand,
  EventType,
  ExplainCommand,
  GetCommand,
  LogsCommand,
  ReadCommand,
  ReadVerb,
  Target,
  TopCommand,
} from '../types.js';
import { checkContainer, checkName, checkType, DNS_SUBDOMAIN_RE, isChoiceOrNull, podArg, resourceArgs, type FlagReader } from './values.js';

export function buildRead(verb: ReadVerb, f: FlagReader): ReadCommand {
  switch (verb) {
    case 'get':
      return get(f);
    case 'describe':
      return describe(f);
    case 'logs':
      return logs(f);
    case 'events':
      return events(f);
    case 'api-resources':
      return apiResources(f);
    case 'explain':
      return explain(f);
    case 'top':
      return top(f);
  }
}

/** get and describe: TYPE[,TYPE] [NAME…] or TYPE/NAME…; names exclude -l and -A. */
function objects(verb: 'get' | 'describe', f: FlagReader): { types: string[]; targets: Target[] } {
  const args = f.positionals;
  if (args.length === 0) throw invalid(`${verb} needs a resource type, e.g. "${verb} pods" or "${verb} deployment/web".`, f.hint);
  const r = resourceArgs(args);
  if (r.names.length > 0 && f.scope.labelSelector !== null) throw invalid('Give either object names or -l/--selector, not both.', f.hint);
  if (r.names.length > 0 && f.scope.allNamespaces) throw invalid('Objects cannot be named across all namespaces; drop -A or the names.', f.hint);
  return { types: r.types, targets: r.targets };
}

function get(f: FlagReader): GetCommand {
  const options = { showLabels: f.bool('show-labels'), noHeaders: f.bool('no-headers'), sortBy: f.str('sort-by'), ignoreNotFound: f.bool('ignore-not-found') };
  return { verb: 'get', ...f.scope, ...objects('get', f), options };
}

function describe(f: FlagReader): DescribeCommand {
  return { verb: 'describe', ...f.scope, ...objects('describe', f), options: {} };
}

function logs(f: FlagReader): LogsCommand {
  const args = f.positionals;
  const containerFlag = f.str('container');
  let container = containerFlag === null ? null : checkContainer(containerFlag);
  let types: string[] = ['pods'];
  let targets: Target[] = [];
  if (f.scope.labelSelector !== null) {
    if (args.length > 0) throw invalid('Give either a pod or -l/--selector, not both.', f.hint);
  } else {
    const [first, second, ...rest] = args;
    if (first === undefined) throw invalid('logs needs a pod (logs POD [CONTAINER], logs TYPE/NAME) or -l SELECTOR.', f.hint);
    if (rest.length > 0) throw invalid(`logs takes at most a pod and a container, got "${rest[0]}".`, f.hint);
    ({ types, targets } = podArg(first));
    if (second !== undefined) {
      if (container !== null) throw invalid('Give the container either as an argument or with -c/--container, not both.', f.hint);
      container = checkContainer(second);
    }
  }
  const sinceSeconds = f.duration('since');
  if (sinceSeconds !== null && sinceSeconds <= 0) throw invalid('--since must be longer than 0s.', f.hint);
  const options = { container, previous: f.bool('previous'), tail: f.count('tail'), sinceSeconds, timestamps: f.bool('timestamps') };
  return { verb: 'logs', ...f.scope, types, targets, options };
}

function events(f: FlagReader): EventsCommand {
  f.noPositionals('Filter with --for TYPE/NAME.');
  const forFlag = f.str('for');
  let forType: string | null = null;
  let forName: string | null = null;
  if (forFlag !== null) {
    const slash = forFlag.indexOf('/');
    if (slash < 0) throw invalid(`--for takes TYPE/NAME (e.g. --for pod/web), got "${forFlag}".`, f.hint);
    forType = checkType(forFlag.slice(0, slash));
    forName = checkName(forFlag.slice(slash + 1));
  }
  const typesFlag = f.str('types');
  const eventTypes: EventType[] = [];
  if (typesFlag !== null) {
    for (const t of typesFlag.split(',')) {
      const lower = t.trim().toLowerCase();
      if (lower !== 'normal' && lower !== 'warning') throw invalid(`--types takes Normal and/or Warning, got "${t}".`, f.hint);
      const canonical = lower === 'normal' ? 'Normal' : 'Warning';
      if (!eventTypes.includes(canonical)) eventTypes.push(canonical);
    }
  }
  return { verb: 'events', ...f.scope, types: ['events'], targets: [], options: { forType, forName, eventTypes, noHeaders: f.bool('no-headers') } };
}

function apiResources(f: FlagReader): ApiResourcesCommand {
  f.noPositionals('Filter with --namespaced=true|false or --api-group=GROUP.');
  const apiGroup = f.str('api-group');
  if (apiGroup !== null && apiGroup !== '' && (apiGroup.length > 253 || !DNS_SUBDOMAIN_RE.test(apiGroup))) {
    throw invalid(`--api-group "${apiGroup}" is not a valid API group (e.g. apps, networking.k8s.io, or "" for the core group).`, f.hint);
  }
  const sortBy = f.str('sort-by');
  if (!isChoiceOrNull(sortBy, ['name', 'kind'] as const)) throw invalid(`--sort-by takes name or kind for api-resources, got "${sortBy}".`, f.hint);
  const options = { namespaced: f.switchValue('namespaced'), apiGroup, noHeaders: f.bool('no-headers'), sortBy };
  return { verb: 'api-resources', ...f.scope, types: [], targets: [], options };
}

function explain(f: FlagReader): ExplainCommand {
  const [first, ...rest] = f.positionals;
  if (first === undefined) throw invalid('explain needs TYPE or TYPE.field.path, e.g. "explain deployment.spec.strategy".', f.hint);
  if (rest.length > 0) throw invalid(`explain takes one argument, got "${rest[0]}".`, f.hint);
  const dot = first.indexOf('.');
  const type = checkType(dot < 0 ? first : first.slice(0, dot));
  const fieldPath = dot < 0 ? null : first.slice(dot + 1);
  if (fieldPath !== null && !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(fieldPath)) {
    throw invalid(`"${first}" is not a valid TYPE.field.path.`, f.hint);
  }
  return { verb: 'explain', ...f.scope, types: [type], targets: [], options: { fieldPath, recursive: f.bool('recursive') } };
}

const TOP_KINDS: readonly string[] = ['pod', 'pods', 'po', 'node', 'nodes', 'no'];

function top(f: FlagReader): TopCommand {
  const [first, ...names] = f.positionals;
  if (first === undefined || !TOP_KINDS.includes(first)) {
    throw invalid(`top needs "pods" or "nodes"${first === undefined ? '' : `, got "${first}"`} (e.g. "top pods -n shop").`, f.hint);
  }
  if (first.startsWith('no') && f.scope.allNamespaces) throw invalid('Nodes are not namespaced; drop -A.', f.hint);
  for (const n of names) checkName(n);
  if (names.length > 0 && f.scope.labelSelector !== null) throw invalid('Give either names or -l/--selector, not both.', f.hint);
  const sortBy = f.str('sort-by');
  if (!isChoiceOrNull(sortBy, ['cpu', 'memory'] as const)) throw invalid(`--sort-by takes cpu or memory for top, got "${sortBy}".`, f.hint);
  return {
    verb: 'top',
    ...f.scope,
    types: [first],
    targets: names.map((name) => ({ type: first, name })),
    options: { sortBy, noHeaders: f.bool('no-headers') },
  };
}
