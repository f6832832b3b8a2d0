// JSONPath field selectors for masking JSON response bodies (`mask_fields:`):
// the subset of RFC 9535 that names fields — `$`, `.name`, `.*`, `..name`,
// `..*`, `[ 'name', "name", 3, -1, * ]` (unions, string escapes) — and
// nothing that computes: filters, slices and functions are refused at config
// load, so a selector never evaluates anything. Pure. Selection and masking are
// iterative (an explicit stack, never recursion): a hostile body nested 100,000
// deep or holding millions of elements costs time proportional to its size and
// never exhausts the call stack. A small strict parser instead of a library:
// jsonpath-rfc9535 (iterative, no eval) returns values or normalized paths that
// it copies at every step (quadratic on deep documents), while masking needs the
// parent and key of each selected value, each container visited once per
// segment, and filters refused rather than evaluated.

/** One selector inside a segment: a member name, an array index, or every child. */
export type Selector = { readonly kind: 'name'; readonly name: string } | { readonly kind: 'index'; readonly index: number } | { readonly kind: 'wildcard' };

/** A segment: its selectors applied to the children of each node (`child`) or of each node and all its descendants (`descendant`). */
export interface Segment {
  readonly descendant: boolean;
  readonly selectors: readonly Selector[];
}

/** A parsed selector: the text as the operator wrote it (the mask label) and its segments. */
export interface FieldPath {
  readonly text: string;
  readonly segments: readonly Segment[];
}

/** What is wrong with one selector, for the config loader: the selector, where (0-based character) and why. */
export interface FieldPathProblem {
  readonly selector: string;
  readonly position: number;
  readonly message: string;
}

export type FieldPathsResult =
  { readonly ok: true; readonly paths: readonly FieldPath[] } | { readonly ok: false; readonly problems: readonly FieldPathProblem[] };

/** The mask marker for a value a selector selected: the whole value (string, number, object, array) becomes this string. */
export function fieldMarker(selector: string): string {
  return `[masked:${selector}]`;
}

class PathSyntaxError extends Error {
  constructor(
    readonly position: number,
    message: string,
  ) {
    super(message);
  }
}

// RFC 9535 I-JSON index range.
const MAX_INDEX = 2 ** 53 - 1;

const isBlank = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
/** name-first of RFC 9535: ALPHA / "_" / any non-ASCII code point (surrogates are paired in JS strings we accept). */
const isNameFirst = (c: string | undefined) => c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_' || c.charCodeAt(0) >= 0x80);
const isNameChar = (c: string | undefined) => isNameFirst(c) || isDigit(c);

/** Parses one selector; throws PathSyntaxError with the position of the first problem. */
function parsePath(text: string): FieldPath {
  let at = 0;
  const fail = (message: string, position = at): never => {
    throw new PathSyntaxError(position, message);
  };
  const skipBlanks = () => {
    while (isBlank(text[at])) at++;
  };
  if (text[at] !== '$') fail('a selector starts with $ (the document root)');
  at++;
  const segments: Segment[] = [];
  const memberName = (): string => {
    const start = at;
    if (!isNameFirst(text[at])) fail("expected a member name, * or [ after the dot (use ['…'] for names with other characters)");
    while (isNameChar(text[at])) at++;
    return text.slice(start, at);
  };
  const stringLiteral = (): string => {
    const quote = text[at];
    at++;
    let out = '';
    for (;;) {
      const c = text[at];
      if (c === undefined) return fail('unterminated string', at);
      if (c === quote) {
        at++;
        return out;
      }
      if (c.charCodeAt(0) < 0x20) fail('control character in a string (escape it)');
      if (c !== '\\') {
        out += c;
        at++;
        continue;
      }
      const e = text[at + 1];
      const simple: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', '/': '/', '\\': '\\' };
      if (e === quote) out += quote;
      else if (e !== undefined && Object.hasOwn(simple, e)) out += simple[e];
      else if (e === 'u') {
        const hex = text.slice(at + 2, at + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('\\u needs four hex digits', at);
        out += String.fromCharCode(parseInt(hex, 16));
        at += 4;
      } else fail(`unknown escape \\${e ?? ''}`, at);
      at += 2;
    }
  };
  const bracket = (): Selector[] => {
    at++; // [
    const selectors: Selector[] = [];
    for (;;) {
      skipBlanks();
      const c = text[at];
      if (c === "'" || c === '"') selectors.push({ kind: 'name', name: stringLiteral() });
      else if (c === '*') {
        at++;
        selectors.push({ kind: 'wildcard' });
      } else if (c === '-' || isDigit(c)) {
        const match = /-?(?:0|[1-9][0-9]*)/y;
        match.lastIndex = at;
        const m = match.exec(text);
        if (!m || m[0] === '-0' || m[0] === '-') fail('an index is an integer without leading zeros (and not -0)');
        const literal = m?.[0] ?? '';
        const value = Number(literal);
        if (Math.abs(value) > MAX_INDEX) fail('index out of range');
        at += literal.length;
        if (isDigit(text[at]) || text[at] === '.' || text[at] === 'e' || text[at] === 'E') fail('an index is an integer');
        selectors.push({ kind: 'index', index: value });
      } else if (c === '?') fail('filter expressions are not supported in mask_fields: name the fields to mask');
      else if (c === ':') fail('slices are not supported in mask_fields: use [*] or an index');
      else fail(c === undefined ? 'unterminated [' : `unexpected ${JSON.stringify(c)} in brackets`);
      skipBlanks();
      if (text[at] === ':') fail('slices are not supported in mask_fields: use [*] or an index');
      if (text[at] === ',') {
        at++;
        continue;
      }
      if (text[at] === ']') {
        at++;
        return selectors;
      }
      fail(text[at] === undefined ? 'unterminated [' : `expected , or ] but found ${JSON.stringify(text[at])}`);
    }
  };
  for (;;) {
    skipBlanks();
    if (at >= text.length) break;
    const c = text[at];
    if (c === '[') {
      segments.push({ descendant: false, selectors: bracket() });
    } else if (c === '.') {
      const descendant = text[at + 1] === '.';
      at += descendant ? 2 : 1;
      if (text[at] === '*') {
        at++;
        segments.push({ descendant, selectors: [{ kind: 'wildcard' }] });
      } else if (descendant && text[at] === '[') {
        segments.push({ descendant, selectors: bracket() });
      } else {
        segments.push({ descendant, selectors: [{ kind: 'name', name: memberName() }] });
      }
    } else {
      fail(`unexpected ${JSON.stringify(c)}: a segment starts with . or [`);
    }
  }
  return { text, segments };
}

/** Parses the configured selectors; every problem of every selector, for the config loader (`mask_fields` of a connection). */
export function parseFieldPaths(selectors: readonly string[]): FieldPathsResult {
  const paths: FieldPath[] = [];
  const problems: FieldPathProblem[] = [];
  for (const selector of selectors) {
    try {
      paths.push(parsePath(selector));
    } catch (error) {
      if (!(error instanceof PathSyntaxError)) throw error;
      problems.push({ selector, position: error.position, message: error.message });
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, paths };
}

/** The problems of the configured selectors (empty when all parse): what the connection schema reports at config load. */
export function fieldPathProblems(selectors: readonly string[]): readonly FieldPathProblem[] {
  const result = parseFieldPaths(selectors);
  return result.ok ? [] : result.problems;
}

type Container = Record<string, unknown> | unknown[];

const isContainer = (value: unknown): value is Container => typeof value === 'object' && value !== null;

/** Where a selected value lives: its parent and key (the root has none). */
type Slot = { readonly parent: null } | { readonly parent: Container; readonly key: string | number };

function valueAt(slot: Slot, root: unknown): unknown {
  if (slot.parent === null) return root;
  return Array.isArray(slot.parent) ? slot.parent[slot.key as number] : slot.parent[slot.key as string];
}

/** Own-property assignment that also works for a "__proto__" member from JSON.parse. */
function setOwn(target: Container, key: string | number, value: unknown): void {
  if (Array.isArray(target)) target[key as number] = value;
  else Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** The children of `node` one selector picks, appended to `out`. */
function selectChildren(node: Container, selector: Selector, out: Slot[]): void {
  if (Array.isArray(node)) {
    if (selector.kind === 'wildcard') for (let i = 0; i < node.length; i++) out.push({ parent: node, key: i });
    else if (selector.kind === 'index') {
      const i = selector.index < 0 ? node.length + selector.index : selector.index;
      if (i >= 0 && i < node.length) out.push({ parent: node, key: i });
    }
    return;
  }
  if (selector.kind === 'wildcard') for (const key of Object.keys(node)) out.push({ parent: node, key });
  else if (selector.kind === 'name' && Object.hasOwn(node, selector.name)) out.push({ parent: node, key: selector.name });
}

/**
 * Every container in the subtrees of `roots` (themselves included), each once:
 * iterative, so depth costs no stack. A parsed document is a tree, so one root's
 * subtree needs no bookkeeping; several roots may nest (`$..a..b`), and a set keeps
 * each container to one visit, so chained descendant segments stay linear.
 */
function subtreeContainers(roots: readonly Container[]): Container[] {
  const seen = roots.length > 1 ? new Set<Container>() : null;
  const stack = [...roots];
  const out: Container[] = [];
  while (stack.length > 0) {
    const node = stack.pop();
    if (node === undefined) continue;
    if (seen) {
      if (seen.has(node)) continue;
      seen.add(node);
    }
    out.push(node);
    if (Array.isArray(node)) {
      for (let i = node.length - 1; i >= 0; i--) {
        const child: unknown = node[i];
        if (isContainer(child)) stack.push(child);
      }
    } else {
      // for…in without allocating a key list: parsed objects inherit nothing enumerable.
      for (const key in node) {
        const child = node[key];
        if (isContainer(child)) stack.push(child);
      }
    }
  }
  return out;
}

/** The slots one path selects in `root` (duplicates possible; the caller masks each slot once). */
function select(path: FieldPath, root: unknown): Slot[] {
  let slots: Slot[] = [{ parent: null }];
  for (const segment of path.segments) {
    const nodes: Container[] = [];
    const seen = new Set<Container>();
    for (const slot of slots) {
      const value = valueAt(slot, root);
      if (isContainer(value) && !seen.has(value)) {
        seen.add(value);
        nodes.push(value);
      }
    }
    const next: Slot[] = [];
    for (const node of segment.descendant ? subtreeContainers(nodes) : nodes) {
      for (const selector of segment.selectors) selectChildren(node, selector, next);
    }
    slots = next;
  }
  return slots;
}

/** Stands for a value already masked while the paths are applied (never in a result). */
class Masked {}
const MASKED = new Masked();

export interface FieldMaskResult {
  /** The document with every selected value replaced by its selector's marker (the input's own containers, changed in place). */
  readonly value: unknown;
  /** Values masked per selector, in configuration order, only selectors that masked something. */
  readonly counts: ReadonlyArray<{ readonly target: string; readonly count: number }>;
}

/**
 * `document` is a tree as JSON.parse returns it (no shared or cyclic containers).
 * Replaces every value the paths select with the marker of the first path that
 * selects it (the whole value: a string, a number, an object), counting per path.
 * Changes `document` in place (a freshly parsed body the caller owns) and returns
 * the new root (the marker itself when `$` is selected). A value inside one
 * already masked is gone with it and not counted again.
 */
export function maskFields(document: unknown, paths: readonly FieldPath[]): FieldMaskResult {
  let root = document;
  // While masking, a masked value is the MASKED sentinel (so a slot selected again is
  // recognised as masked, whatever strings the body holds); markers replace them at the end.
  const replaced: Array<{ readonly parent: Container; readonly key: string | number; readonly marker: string }> = [];
  const counts: Array<{ target: string; count: number }> = [];
  let rootMarker = '';
  for (const path of paths) {
    const marker = fieldMarker(path.text);
    let count = 0;
    for (const slot of select(path, root)) {
      if (valueAt(slot, root) === MASKED) continue;
      if (slot.parent === null) {
        root = MASKED;
        rootMarker = marker;
      } else {
        setOwn(slot.parent, slot.key, MASKED);
        replaced.push({ parent: slot.parent, key: slot.key, marker });
      }
      count++;
    }
    if (count > 0) counts.push({ target: path.text, count });
  }
  for (const r of replaced) setOwn(r.parent, r.key, r.marker);
  return { value: root === MASKED ? rootMarker : root, counts };
}
