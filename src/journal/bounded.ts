// Bounded, iterative handling of untrusted values (an agent's tool arguments) for
// the journal. Measures a value's canonical JSON — size, nesting depth, number of
// values, sha256 — with an explicit stack instead of recursion, so no shape can
// overflow the call stack; says which input limits it exceeds; and gives the form
// an intent record stores:
//   - within the limits: the value itself, detectors applied to every string;
//   - over a limit: the first 64 KiB of its canonical JSON (detectors applied),
//     with a cut marker: which limits, the size and the sha256 of the WHOLE
//     canonical JSON, so the record stays small and still identifies the input.
// Input a transport was too large to parse arrives as an UnparsedInput stand-in and
// is recorded the same way from its raw bytes. Knows nothing of policy or MCP.

import { createHash } from 'node:crypto';

interface InputLimits {
  /** Containers nested at most this deep: `{"sql": "…"}` is 1, `{"hosts": ["a"]}` is 2. */
  readonly maxDepth: number;
  /** Canonical JSON (UTF-8) at most this many bytes. */
  readonly maxBytes: number;
  /** At most this many values: every scalar, array and object, the top one included. */
  readonly maxValues: number;
}

/**
 * Tool input accepted at most; more is refused with input.invalid (after it is
 * journaled). Every tool's input is a flat object of a few strings (depth 1, or 2
 * with a list of hosts); a statement, command or manifest fits in 1 MiB many times
 * over; 10,000 values bound the cost of applying detectors to each string.
 */
export const INPUT_LIMITS: InputLimits = Object.freeze({ maxDepth: 32, maxBytes: 1024 * 1024, maxValues: 10_000 });

/** Of input over a limit, the intent record keeps this many bytes of canonical JSON. */
export const STORED_PREFIX_BYTES = 64 * 1024;

/** Detectors see this much more than is kept, so a value crossing the cut is still recognised whole (and masked). */
const SCRUB_LOOKAHEAD_CHARS = 8 * 1024;
const HEAD_CHARS = STORED_PREFIX_BYTES + SCRUB_LOOKAHEAD_CHARS;

/** 'json': not a JSON value at all (a function, bigint, cycle, class instance; only in-process callers can send one). */
type InputLimit = 'depth' | 'bytes' | 'values' | 'json';

export interface InputMeasure {
  /** 'canonical': measured on the value; 'raw': on the bytes a transport received but could not parse (too large). */
  readonly form: 'canonical' | 'raw';
  /** UTF-8 bytes of the whole text. */
  readonly bytes: number;
  /** Deepest nesting of containers (0 for a scalar). */
  readonly depth: number;
  /** Number of values; null for raw input (not parsed). */
  readonly values: number | null;
  /** Hex sha256 of the whole text. */
  readonly sha256: string;
  /** The limits the input exceeds; empty when it is acceptable. */
  readonly exceeded: readonly InputLimit[];
  /** The whole canonical JSON, kept only when within the limits. */
  readonly canonical: string | null;
  /** The start of the text (at least STORED_PREFIX_BYTES plus a look-ahead, when there is that much). */
  readonly head: string;
}

/** What a transport saw of arguments too large to parse: their raw JSON text's size, hash and start. */
export interface UnparsedInput {
  readonly bytes: number;
  readonly sha256: string;
  /** The first characters of the raw text (at least STORED_PREFIX_BYTES plus a look-ahead, when there is that much). */
  readonly head: string;
  /** Deepest nesting seen while scanning. */
  readonly depth: number;
}

/** How an intent record marks input it stores cut (see storedInput). */
interface InputCut {
  readonly exceeded: readonly InputLimit[];
  readonly form: 'canonical' | 'raw';
  /** Size of the whole text, in bytes. */
  readonly bytes: number;
  /** Bytes of (scrubbed) text stored in `input`. */
  readonly kept: number;
  /** sha256 of the whole text (before detectors), so a copy of the input kept elsewhere can be matched. */
  readonly sha256: string;
  readonly depth: number;
  readonly values: number | null;
  readonly limits: { readonly depth: number; readonly bytes: number; readonly values: number };
}

// ---------------------------------------------------------------------------
// Stand-ins for input a transport could not parse

const unparsed = new WeakMap<object, UnparsedInput>();

/**
 * An empty object standing for arguments a transport could not parse. Only this
 * module recognises it (by identity, so an agent cannot forge one); measuring it
 * gives the raw text's measure, which is always over the byte limit.
 */
export function unparsedInput(info: UnparsedInput): Record<string, never> {
  const token: Record<string, never> = {};
  unparsed.set(token, Object.freeze({ ...info }));
  return token;
}

// ---------------------------------------------------------------------------
// Measuring

/** Accumulates canonical text: hashes and counts all of it, keeps its head, and the whole while it fits. */
class TextSink {
  private readonly hash = createHash('sha256');
  private pending = '';
  private kept: string[] | null = [];
  bytes = 0;
  head = '';

  constructor(private readonly keepBytes: number) {}

  put(text: string): void {
    this.pending += text;
    if (this.pending.length >= 16 * 1024) this.flush();
  }

  flush(): void {
    const text = this.pending;
    if (text === '') return;
    this.pending = '';
    this.hash.update(text, 'utf8');
    this.bytes += Buffer.byteLength(text, 'utf8');
    if (this.kept !== null) {
      if (this.bytes <= this.keepBytes) this.kept.push(text);
      else this.kept = null;
    }
    if (this.head.length < HEAD_CHARS) this.head += text.slice(0, HEAD_CHARS - this.head.length);
  }

  whole(): string | null {
    return this.kept === null ? null : this.kept.join('');
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

interface WalkFrame {
  readonly container: object;
  /** Sorted keys of an object; null for an array. */
  readonly keys: readonly string[] | null;
  next: number;
  written: number;
}

/**
 * Measures `value` against `limits`. Never throws: whatever the value (any depth,
 * any size, getters that throw, cycles), the result describes it. The canonical
 * form is the journal's (keys sorted, no whitespace); what JSON cannot carry is
 * written as JSON.stringify would (undefined properties omitted, else null) and
 * flagged 'json' unless it is an undefined property.
 */
export function measureInput(value: unknown, limits: InputLimits = INPUT_LIMITS): InputMeasure {
  if (value !== null && typeof value === 'object') {
    const raw = unparsed.get(value);
    if (raw !== undefined) {
      const exceeded: InputLimit[] = raw.depth > limits.maxDepth ? ['depth', 'bytes'] : ['bytes'];
      return { form: 'raw', bytes: raw.bytes, depth: raw.depth, values: null, sha256: raw.sha256, exceeded, canonical: null, head: raw.head };
    }
  }
  const sink = new TextSink(limits.maxBytes);
  const exceeded = new Set<InputLimit>();
  let depth = 0;
  let values = 0;
  const frames: WalkFrame[] = [];
  const open = new Set<object>();

  // Writes one value: a scalar's text, or an opening bracket and a frame for a container.
  const write = (v: unknown): void => {
    values += 1;
    if (v === null) return sink.put('null');
    switch (typeof v) {
      case 'string':
        return sink.put(JSON.stringify(v));
      case 'boolean':
        return sink.put(v ? 'true' : 'false');
      case 'number':
        if (!Number.isFinite(v)) exceeded.add('json');
        return sink.put(Number.isFinite(v) ? JSON.stringify(v) : 'null');
      case 'object':
        break;
      default:
        // undefined in an array (or a hole), a function, symbol or bigint: JSON has no such value.
        exceeded.add('json');
        return sink.put('null');
    }
    const obj = v as object;
    if (open.has(obj)) {
      exceeded.add('json');
      return sink.put('null');
    }
    if (Array.isArray(obj)) {
      sink.put('[');
      frames.push({ container: obj, keys: null, next: 0, written: 0 });
    } else {
      const proto = Object.getPrototypeOf(obj) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        exceeded.add('json');
        return sink.put('null');
      }
      sink.put('{');
      frames.push({ container: obj, keys: Object.keys(obj).sort(), next: 0, written: 0 });
    }
    open.add(obj);
    if (frames.length > depth) depth = frames.length;
  };

  try {
    write(value === undefined ? null : value);
    while (frames.length > 0) {
      const frame = frames[frames.length - 1]!;
      if (frame.keys === null) {
        const array = frame.container as readonly unknown[];
        if (frame.next >= array.length) {
          sink.put(']');
          frames.pop();
          open.delete(frame.container);
          continue;
        }
        const child = array[frame.next];
        frame.next += 1;
        if (frame.written++ > 0) sink.put(',');
        write(child);
      } else {
        if (frame.next >= frame.keys.length) {
          sink.put('}');
          frames.pop();
          open.delete(frame.container);
          continue;
        }
        const key = frame.keys[frame.next]!;
        frame.next += 1;
        const child = (frame.container as Record<string, unknown>)[key];
        if (child === undefined || typeof child === 'function' || typeof child === 'symbol') {
          // Omitted, as JSON.stringify omits it; only undefined is a normal thing to pass.
          if (child !== undefined) exceeded.add('json');
          continue;
        }
        if (frame.written++ > 0) sink.put(',');
        sink.put(`${JSON.stringify(key)}:`);
        write(child);
      }
    }
  } catch {
    // A getter or proxy that throws: not a JSON value. What was written so far is still measured.
    exceeded.add('json');
  }
  sink.flush();
  if (depth > limits.maxDepth) exceeded.add('depth');
  if (sink.bytes > limits.maxBytes) exceeded.add('bytes');
  if (values > limits.maxValues) exceeded.add('values');
  const ordered = (['depth', 'bytes', 'values', 'json'] as const).filter((limit) => exceeded.has(limit));
  return {
    form: 'canonical',
    bytes: sink.bytes,
    depth,
    values,
    sha256: sink.digest(),
    exceeded: ordered,
    canonical: ordered.length === 0 ? sink.whole() : null,
    head: sink.head,
  };
}

// ---------------------------------------------------------------------------
// What the intent record stores

/**
 * The input as the intent record stores it, with `scrub` (the content detectors)
 * applied to its text. Within the limits: the value itself, re-parsed from its
 * canonical JSON (so the record always serialises), every string and key scrubbed.
 * Over a limit: the first STORED_PREFIX_BYTES of the canonical (or raw) JSON text,
 * scrubbed, and the cut marker.
 */
export function storedInput(
  measure: InputMeasure,
  scrub: (text: string) => string,
  limits: InputLimits = INPUT_LIMITS,
): { input: unknown; cut: InputCut | null } {
  if (measure.exceeded.length === 0 && measure.canonical !== null) {
    return { input: scrubStrings(JSON.parse(measure.canonical) as unknown, scrub), cut: null };
  }
  // The detectors see the look-ahead too, so a value the cut would split is masked whole first.
  const text = utf8Prefix(scrub(measure.head), STORED_PREFIX_BYTES);
  return {
    input: text,
    cut: {
      exceeded: measure.exceeded.length > 0 ? measure.exceeded : ['json'],
      form: measure.form,
      bytes: measure.bytes,
      kept: Buffer.byteLength(text, 'utf8'),
      sha256: measure.sha256,
      depth: measure.depth,
      values: measure.values,
      limits: { depth: limits.maxDepth, bytes: limits.maxBytes, values: limits.maxValues },
    },
  };
}

/** Applies `scrub` to every string and object key of a parsed JSON value, in place and without recursion. */
function scrubStrings(value: unknown, scrub: (text: string) => string): unknown {
  if (typeof value === 'string') return scrub(value);
  const todo: object[] = value !== null && typeof value === 'object' ? [value] : [];
  while (todo.length > 0) {
    const container = todo.pop()!;
    if (Array.isArray(container)) {
      const array = container as unknown[];
      for (let i = 0; i < array.length; i++) {
        const item = array[i];
        if (typeof item === 'string') array[i] = scrub(item);
        else if (item !== null && typeof item === 'object') todo.push(item);
      }
      continue;
    }
    const record = container as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const item = record[key];
      if (typeof item === 'string') record[key] = scrub(item);
      else if (item !== null && typeof item === 'object') todo.push(item);
      const shown = scrub(key);
      if (shown !== key) {
        // A key can carry data too (an email as a property name): rename it, never merging two.
        let renamed = shown;
        for (let n = 2; Object.prototype.hasOwnProperty.call(record, renamed); n++) renamed = `${shown}#${n}`;
        Object.defineProperty(record, renamed, { value: record[key], enumerable: true, writable: true, configurable: true });
        delete record[key];
      }
    }
  }
  return value;
}

/** The longest prefix of `text` whose UTF-8 encoding has at most `maxBytes` bytes, never splitting a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end -= 1;
  return bytes.subarray(0, end).toString('utf8');
}

/** At most `max` characters of `text`; a longer text is cut and says how long it was. */
export function boundText(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1; // never split a surrogate pair
  return `${text.slice(0, end)}…[cut: ${text.length} characters]`;
}

/** A short, safe description of any value (e.g. a tool name that is not a string): the start of its canonical JSON. */
export function describeValue(value: unknown, max = 200): string {
  return boundText(measureInput(value).head, max);
}
