// kubectl's JSONPath templates (-o jsonpath=...), the subset agents use,
// evaluated on an object that is already masked. Pure. Follows
// k8s.io/client-go/util/jsonpath as kubectl runs it (missing keys allowed):
// several results of one {…} are joined by a space, maps and lists print as
// compact JSON (keys sorted, like Go), strings raw, JSON null as "<nil>".
//
// Supported: literal text; {.a.b}; {.a\.b} and {.a['b.c']} for keys with dots;
// {.*}; [n] (negative counts from the end), [start:end[:step]], [*];
// unions ['a','b'] / [0,2]; filters [?(@.x == "s")] with == != < <= > >= on
// string/number/bool literals or @-paths, and [?(@.x)] (exists); {..name}
// recursive descent; {range …}…{end} (nested); {"\n"} / {'\t'} string
// literals. Refused with input.invalid: regular-expression filters (=~),
// && / || in filters, several expressions in one {…}, unknown identifiers.

import { DrawbridgeError } from '../../errors.js';

type Step =
  | { readonly kind: 'field'; readonly name: string }
  | { readonly kind: 'wildcard' }
  | { readonly kind: 'slice'; readonly start: number | null; readonly end: number | null; readonly step: number | null; readonly single: boolean }
  | { readonly kind: 'union'; readonly parts: readonly Step[] }
  | { readonly kind: 'filter'; readonly left: Operand; readonly op: FilterOp | 'exists'; readonly right: Operand | null }
  | { readonly kind: 'recursive' };

type FilterOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

type Operand = { readonly kind: 'path'; readonly steps: readonly Step[] } | { readonly kind: 'literal'; readonly value: string | number | boolean };

type TemplateNode =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'path'; readonly steps: readonly Step[] }
  | { readonly kind: 'range'; readonly steps: readonly Step[]; readonly body: readonly TemplateNode[] };

const MAX_NESTING = 32;
const MAX_VALUES = 1_000_000;
const MAX_OUTPUT_CHARS = 32 * 1024 * 1024;

function invalid(message: string): DrawbridgeError {
  return new DrawbridgeError('input.invalid', `jsonpath: ${message}`, {
    hint:
      'Use kubectl JSONPath such as {.items[*].metadata.name} or ' +
      '{range .items[*]}{.metadata.name}{"\\n"}{end}, or another output format (-o yaml, -o json).',
  });
}

function unsupported(what: string): DrawbridgeError {
  return invalid(`${what} is not supported by the gateway`);
}

// ---------------------------------------------------------------------------
// Parsing

class Parser {
  pos = 0;
  nesting = 0;
  constructor(readonly src: string) {}

  peek(offset = 0): string {
    return this.src.charAt(this.pos + offset);
  }
  eof(): boolean {
    return this.pos >= this.src.length;
  }
  startsWith(s: string): boolean {
    return this.src.startsWith(s, this.pos);
  }
  skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
  fail(message: string): never {
    throw invalid(`${message} at offset ${this.pos} of the template`);
  }
  enter(): void {
    if (++this.nesting > MAX_NESTING) throw unsupported(`nesting deeper than ${MAX_NESTING}`);
  }
  leave(): void {
    this.nesting--;
  }

  /** The whole template: text and actions, with range…end blocks nested. */
  parseTemplate(): TemplateNode[] {
    const stack: Array<{ steps: readonly Step[]; body: TemplateNode[] }> = [];
    const root: TemplateNode[] = [];
    let current = root;
    while (!this.eof()) {
      const brace = this.src.indexOf('{', this.pos);
      if (brace < 0) {
        current.push({ kind: 'text', text: this.src.slice(this.pos) });
        this.pos = this.src.length;
        break;
      }
      if (brace > this.pos) current.push({ kind: 'text', text: this.src.slice(this.pos, brace) });
      this.pos = brace + 1;
      const action = this.parseAction();
      if (action.kind === 'range') {
        if (stack.length >= MAX_NESTING) throw unsupported(`range nested deeper than ${MAX_NESTING}`);
        const frame = { steps: action.steps, body: [] as TemplateNode[] };
        current.push({ kind: 'range', steps: frame.steps, body: frame.body });
        stack.push(frame);
        current = frame.body;
      } else if (action.kind === 'end') {
        if (stack.pop() === undefined) throw invalid('{end} without a matching {range}');
        current = stack.length === 0 ? root : (stack[stack.length - 1] as { body: TemplateNode[] }).body;
      } else {
        current.push(action.node);
      }
    }
    if (stack.length > 0) throw invalid('{range} without a matching {end}');
    return root;
  }

  /** After "{", through the matching "}". */
  parseAction(): { kind: 'range'; steps: readonly Step[] } | { kind: 'end' } | { kind: 'node'; node: TemplateNode } {
    this.skipSpaces();
    let result: { kind: 'range'; steps: readonly Step[] } | { kind: 'end' } | { kind: 'node'; node: TemplateNode };
    const c = this.peek();
    if (c === '"' || c === "'") {
      result = { kind: 'node', node: { kind: 'text', text: this.parseQuoted() } };
    } else if (/[A-Za-z_]/.test(c)) {
      const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.src.slice(this.pos))?.[0] ?? '';
      this.pos += word.length;
      if (word === 'range') {
        this.skipSpaces();
        result = { kind: 'range', steps: this.parsePath() };
      } else if (word === 'end') {
        result = { kind: 'end' };
      } else if (word === 'true' || word === 'false') {
        result = { kind: 'node', node: { kind: 'text', text: word } };
      } else {
        throw invalid(`unrecognized identifier "${word}" (fields start with a dot, e.g. {.metadata.name}; keywords are range and end)`);
      }
    } else if (/[-+0-9]/.test(c)) {
      const num = /^[-+]?[0-9][0-9.]*/.exec(this.src.slice(this.pos))?.[0] ?? '';
      if (num === '' || !Number.isFinite(Number(num))) this.fail('invalid number');
      this.pos += num.length;
      result = { kind: 'node', node: { kind: 'text', text: String(Number(num)) } };
    } else {
      result = { kind: 'node', node: { kind: 'path', steps: this.parsePath() } };
    }
    this.skipSpaces();
    if (this.eof() || this.peek() === '\n' || this.peek() === '\r') this.fail('unclosed action (missing "}")');
    if (this.peek() !== '}') {
      if (this.startsWith('=~')) throw unsupported('regular-expression matching (=~)');
      throw unsupported(`"${this.src.slice(this.pos, this.pos + 20)}" inside {…} (one path, string literal, range or end per {…})`);
    }
    this.pos++;
    return result;
  }

  /** A quoted string literal, "…" or '…', with Go escapes (\n \t \r \\ \" \' \uXXXX). */
  parseQuoted(): string {
    const quote = this.peek();
    this.pos++;
    let out = '';
    for (;;) {
      if (this.eof()) this.fail('unterminated quoted string');
      const ch = this.peek();
      this.pos++;
      if (ch === quote) return out;
      if (ch === '\n') this.fail('unterminated quoted string');
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      const esc = this.peek();
      this.pos++;
      switch (esc) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '0':
          out += '\0';
          break;
        case 'a':
          out += '\x07';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\\':
        case '"':
        case "'":
          out += esc;
          break;
        case 'u': {
          const hex = this.src.slice(this.pos, this.pos + 4);
          if (!/^[0-9A-Fa-f]{4}$/.test(hex)) this.fail('invalid \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          this.pos += 4;
          break;
        }
        default:
          this.fail(`invalid escape \\${esc}`);
      }
    }
  }

  /** `$`/`@`, then steps. Stops before whitespace, "}", ")" or a filter operator. */
  parsePath(): Step[] {
    this.enter();
    const steps: Step[] = [];
    if (this.peek() === '$' || this.peek() === '@') this.pos++;
    for (;;) {
      const c = this.peek();
      if (this.startsWith('..')) {
        this.pos += 2;
        steps.push({ kind: 'recursive' });
        const n = this.peek();
        if (n === '[') continue;
        if (n === '*') {
          this.pos++;
          steps.push({ kind: 'wildcard' });
          continue;
        }
        const name = this.parseFieldName();
        if (name === '') this.fail('recursive descent needs a field name');
        steps.push({ kind: 'field', name });
      } else if (c === '.') {
        this.pos++;
        if (this.peek() === '*') {
          this.pos++;
          steps.push({ kind: 'wildcard' });
          continue;
        }
        const name = this.parseFieldName();
        if (name !== '') steps.push({ kind: 'field', name }); // "{.}" is the current object
      } else if (c === '[') {
        steps.push(this.parseBracket());
      } else {
        break;
      }
    }
    const c = this.peek();
    if (!(this.eof() || c === '}' || c === ' ' || c === '\t' || c === ')' || c === '\n' || c === '\r' || '=!<>~&|'.includes(c))) {
      this.fail(`unexpected "${c}" in path`);
    }
    this.leave();
    return steps;
  }

  /** A field name after ".", up to an unescaped terminator; "\x" is x. */
  parseFieldName(): string {
    let name = '';
    while (!this.eof()) {
      const c = this.peek();
      if (c === '\\') {
        const next = this.peek(1);
        if (next === '') this.fail('dangling backslash');
        name += next;
        this.pos += 2;
        continue;
      }
      if (' \t\r\n.,[]$@{}()=!<>~&|"\''.includes(c)) break;
      name += c;
      this.pos++;
    }
    return name;
  }

  /** After seeing "[": a filter, an index/slice, a quoted key, or a union of those. */
  parseBracket(): Step {
    if (this.startsWith('[?(')) return this.parseFilter();
    this.pos++;
    const parts: Step[] = [];
    for (;;) {
      this.skipSpaces();
      const c = this.peek();
      if (c === '"' || c === "'") {
        parts.push({ kind: 'field', name: this.parseQuoted() });
      } else {
        const m = /^(\*|-?\d*)(:-?\d*)?(:-?\d*)?/.exec(this.src.slice(this.pos));
        const text = m?.[0] ?? '';
        if (text === '') this.fail('invalid array index');
        this.pos += text.length;
        parts.push(parseSlice(text, () => this.fail(`invalid array index "${text}"`)));
      }
      this.skipSpaces();
      if (this.peek() === ',') {
        this.pos++;
        continue;
      }
      if (this.peek() === ']') {
        this.pos++;
        break;
      }
      this.fail(this.eof() ? 'unterminated "["' : `unexpected "${this.peek()}" in [...]`);
    }
    if (parts.length === 1) return parts[0] as Step;
    return { kind: 'union', parts };
  }

  /** `[?(` operand [op operand] `)]` */
  parseFilter(): Step {
    this.enter();
    this.pos += 3;
    this.skipSpaces();
    const left = this.parseOperand();
    this.skipSpaces();
    let op: FilterOp | 'exists' = 'exists';
    let right: Operand | null = null;
    const opMatch = /^(==|!=|<=|>=|=~|<|>|&&|\|\||=)/.exec(this.src.slice(this.pos));
    if (opMatch !== null) {
      const text = opMatch[0];
      if (text === '=~') throw unsupported('regular-expression filters (=~)');
      if (text === '&&' || text === '||') throw unsupported(`"${text}" in filters`);
      if (text === '=') this.fail('"=" in a filter (use "==")');
      op = text as FilterOp;
      this.pos += text.length;
      this.skipSpaces();
      right = this.parseOperand();
      this.skipSpaces();
    }
    if (this.startsWith('&&') || this.startsWith('||')) throw unsupported(`"${this.src.slice(this.pos, this.pos + 2)}" in filters`);
    if (!this.startsWith(')]')) this.fail(this.eof() ? 'unterminated filter' : 'expected ")]" to close the filter');
    this.pos += 2;
    this.leave();
    return { kind: 'filter', left, op, right };
  }

  parseOperand(): Operand {
    const c = this.peek();
    if (c === '"' || c === "'") return { kind: 'literal', value: this.parseQuoted() };
    if (c === '@' || c === '$' || c === '.' || c === '[') return { kind: 'path', steps: this.parsePath() };
    const num = /^[-+]?\d+(\.\d+)?([eE][-+]?\d+)?/.exec(this.src.slice(this.pos))?.[0];
    if (num !== undefined) {
      this.pos += num.length;
      return { kind: 'literal', value: Number(num) };
    }
    const word = /^[A-Za-z_]+/.exec(this.src.slice(this.pos))?.[0];
    if (word === 'true' || word === 'false') {
      this.pos += word.length;
      return { kind: 'literal', value: word === 'true' };
    }
    if (word === 'null' || word === 'nil') throw unsupported(`the ${word} literal in filters`);
    return this.fail('expected @.path, a quoted string, a number or true/false in the filter');
  }
}

function parseSlice(text: string, fail: () => never): Step {
  if (text === '*') return { kind: 'slice', start: null, end: null, step: null, single: false };
  const parts = text.split(':');
  const num = (s: string | undefined): number | null => {
    if (s === undefined || s === '') return null;
    if (!/^-?\d+$/.test(s)) fail();
    const n = Number(s);
    if (!Number.isSafeInteger(n)) fail();
    return n;
  };
  if (parts.length === 1) {
    const index = num(parts[0]);
    if (index === null) fail();
    return { kind: 'slice', start: index, end: null, step: null, single: true };
  }
  return { kind: 'slice', start: num(parts[0]), end: num(parts[1]), step: num(parts[2]), single: false };
}

// ---------------------------------------------------------------------------
// Evaluation

class Evaluator {
  values = 0;
  outputChars = 0;

  count(n: number): void {
    this.values += n;
    if (this.values > MAX_VALUES) throw unsupported(`a template that visits more than ${MAX_VALUES} values`);
  }

  run(nodes: readonly TemplateNode[], current: unknown, out: string[]): void {
    for (const node of nodes) {
      switch (node.kind) {
        case 'text':
          this.emit(out, node.text);
          break;
        case 'path': {
          const results = this.path(node.steps, [current]);
          this.emit(out, results.map(printValue).join(' '));
          break;
        }
        case 'range':
          for (const item of this.path(node.steps, [current])) this.run(node.body, item, out);
          break;
      }
    }
  }

  emit(out: string[], text: string): void {
    this.outputChars += text.length;
    if (this.outputChars > MAX_OUTPUT_CHARS) throw unsupported(`output larger than ${MAX_OUTPUT_CHARS} characters`);
    out.push(text);
  }

  path(steps: readonly Step[], input: readonly unknown[]): unknown[] {
    let current: unknown[] = [...input];
    for (const step of steps) {
      current = this.step(step, current);
      this.count(current.length);
    }
    return current;
  }

  step(step: Step, input: readonly unknown[]): unknown[] {
    const out: unknown[] = [];
    switch (step.kind) {
      case 'field':
        for (const v of input) {
          if (isRecord(v) && Object.hasOwn(v, step.name)) out.push(v[step.name]);
        }
        return out;
      case 'wildcard':
        for (const v of input) {
          if (Array.isArray(v)) out.push(...v);
          else if (isRecord(v)) for (const k of sortedKeys(v)) out.push(v[k]);
        }
        return out;
      case 'slice':
        for (const v of input) {
          if (v === null || v === undefined) continue;
          if (!Array.isArray(v)) {
            // [*] over a map: its values (kubectl refuses; harmless to allow).
            if (isRecord(v) && step.start === null && step.end === null && step.step === null) {
              for (const k of sortedKeys(v)) out.push(v[k]);
              continue;
            }
            throw invalid(`[${sliceText(step)}] applied to ${describeType(v)}, not an array`);
          }
          out.push(...slice(v, step));
        }
        return out;
      case 'union':
        for (const part of step.parts) out.push(...this.step(part, input));
        return out;
      case 'recursive':
        for (const v of input) collectContainers(v, out, 0);
        return out;
      case 'filter':
        for (const v of input) {
          if (v === null || v === undefined) continue;
          if (!Array.isArray(v)) throw invalid(`a filter [?(…)] applied to ${describeType(v)}, not an array`);
          for (const item of v) if (this.matches(step, item)) out.push(item);
        }
        return out;
    }
  }

  operand(operand: Operand, item: unknown): unknown[] {
    if (operand.kind === 'literal') return [operand.value];
    return this.path(operand.steps, [item]);
  }

  matches(filter: Extract<Step, { kind: 'filter' }>, item: unknown): boolean {
    const lefts = this.operand(filter.left, item);
    if (filter.op === 'exists') return lefts.length > 0;
    if (lefts.length === 0) return false;
    if (lefts.length > 1) throw invalid('a filter can only compare one value at a time');
    const rights = filter.right === null ? [] : this.operand(filter.right, item);
    if (rights.length === 0) return false;
    if (rights.length > 1) throw invalid('a filter can only compare one value at a time');
    return compare(lefts[0], filter.op, rights[0]);
  }
}

function compare(left: unknown, op: FilterOp, right: unknown): boolean {
  const comparable =
    (typeof left === 'number' && typeof right === 'number') ||
    (typeof left === 'string' && typeof right === 'string') ||
    (typeof left === 'boolean' && typeof right === 'boolean');
  switch (op) {
    case '==':
      return comparable && left === right;
    case '!=':
      return !(comparable && left === right);
    default: {
      if (!comparable || typeof left === 'boolean') return false;
      const l = left as number | string;
      const r = right as number | string;
      if (op === '<') return l < r;
      if (op === '<=') return l <= r;
      if (op === '>') return l > r;
      return l >= r;
    }
  }
}

function slice(array: readonly unknown[], step: Extract<Step, { kind: 'slice' }>): unknown[] {
  const len = array.length;
  let start = step.start ?? 0;
  if (start < 0) start += len;
  let end: number;
  if (step.single) end = start + 1;
  else {
    end = step.end ?? len;
    if (end < 0) end += len;
  }
  if (start === end) return [];
  if (start < 0 || start >= len) throw invalid(`array index out of bounds: index ${step.single ? step.start : start}, length ${len}`);
  if (end < 0 || end > len) throw invalid(`array index out of bounds: index ${end - 1}, length ${len}`);
  if (start > end) throw invalid(`starting index ${start} is greater than ending index ${end}`);
  const stride = step.step ?? 1;
  if (stride <= 0) throw invalid('slice step must be > 0');
  const out: unknown[] = [];
  for (let i = start; i < end; i += stride) out.push(array[i]);
  return out;
}

function sliceText(step: Extract<Step, { kind: 'slice' }>): string {
  if (step.single) return String(step.start);
  if (step.start === null && step.end === null && step.step === null) return '*';
  const s = (n: number | null): string => (n === null ? '' : String(n));
  return `${s(step.start)}:${s(step.end)}${step.step === null ? '' : `:${step.step}`}`;
}

/** Pre-order: every map or list that has at least one child (kubectl's `..`). */
function collectContainers(value: unknown, out: unknown[], depth: number): void {
  if (depth > 512 || out.length > MAX_VALUES) throw unsupported('recursive descent over this much data');
  if (Array.isArray(value)) {
    if (value.length === 0) return;
    out.push(value);
    for (const v of value) collectContainers(v, out, depth + 1);
  } else if (isRecord(value)) {
    const keys = sortedKeys(value);
    if (keys.length === 0) return;
    out.push(value);
    for (const k of keys) collectContainers(value[k], out, depth + 1);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sortedKeys(record: Record<string, unknown>): string[] {
  return Object.keys(record).sort(compareKeys);
}

/** Go sorts map keys by bytes; code-unit order is the same for the keys Kubernetes uses. */
function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function describeType(value: unknown): string {
  if (isRecord(value)) return 'a map';
  return `a ${typeof value}`;
}

/** Deep copy with map keys sorted, as Go's encoding/json prints maps. */
export function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const k of sortedKeys(value)) {
    Object.defineProperty(out, k, { value: sortKeysDeep(value[k]), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function printValue(value: unknown): string {
  if (value === null || value === undefined) return '<nil>';
  if (typeof value === 'string') return value;
  if (typeof value === 'object') return JSON.stringify(sortKeysDeep(value));
  return String(value);
}

/** Parses a template without evaluating it: throws input.invalid on what is not supported. */
export function parseJsonPath(template: string): void {
  new Parser(template).parseTemplate();
}

/** kubectl -o jsonpath=TEMPLATE over `data` (an object or a List). */
export function evaluateJsonPath(template: string, data: unknown): string {
  const nodes = new Parser(template).parseTemplate();
  const out: string[] = [];
  new Evaluator().run(nodes, data, out);
  return out.join('');
}
