// Canonical JSON: the one deterministic encoding of data the gateway hashes
// (journal records, approval requests, their verification). Pure, iterative,
// with no dependency on the journal or anything else.

/**
 * Deterministic JSON: object keys sorted (by UTF-16 code unit), no whitespace.
 * Object properties whose value is undefined are omitted (as JSON does), and
 * values with toJSON (Date, Buffer) are converted first, so that
 * canonicalJson(JSON.parse(canonicalJson(x))) === canonicalJson(x): verify
 * recomputes hashes from the stored text, so this round-trip must be exact.
 * Anything that JSON would silently drop or mangle inside data we hash
 * (undefined in arrays, functions, symbols, bigint, NaN/Infinity, Map/Set and
 * other non-plain objects, cycles) throws a TypeError instead.
 *
 * Iterative, with an explicit stack: no nesting depth can overflow the call stack
 * (records, approval requests and verify all go through here). Error paths are
 * built only when an error is thrown.
 */
export function canonicalJson(value: unknown): string {
  const frames: CanonicalFrame[] = [];
  const open = new Set<object>();
  let text = openValue(value, frames, open);
  for (;;) {
    if (text !== OPENED) {
      const top = frames[frames.length - 1];
      if (top === undefined) {
        if (text === undefined) throw new TypeError('canonicalJson: top-level value is undefined');
        return text;
      }
      if (top.keys === null) {
        if (text === undefined) throw new TypeError(`canonicalJson: undefined in array at ${pathOf(frames)}`);
        top.parts.push(text);
      } else if (text !== undefined) {
        top.parts.push(`${JSON.stringify(top.keys[top.next - 1])}:${text}`);
      }
    }
    const frame = frames[frames.length - 1]!;
    const count = frame.keys === null ? (frame.container as unknown[]).length : frame.keys.length;
    if (frame.next < count) {
      const child = frame.keys === null ? (frame.container as unknown[])[frame.next] : (frame.container as Record<string, unknown>)[frame.keys[frame.next]!];
      frame.next += 1;
      text = openValue(child, frames, open);
      continue;
    }
    frames.pop();
    open.delete(frame.container);
    text = frame.keys === null ? `[${frame.parts.join(',')}]` : `{${frame.parts.join(',')}}`;
  }
}

/** An array or object being encoded: its sorted keys (null for an array), the encoded children so far, the next child. */
interface CanonicalFrame {
  readonly container: object;
  readonly keys: readonly string[] | null;
  readonly parts: string[];
  next: number;
}

const OPENED = Symbol('opened');
const MAX_TO_JSON_CHAIN = 100;

/** A scalar's text (undefined: omitted), or OPENED after pushing a frame for an array or object. */
function openValue(value: unknown, frames: CanonicalFrame[], open: Set<object>): string | undefined | typeof OPENED {
  let current = value;
  for (let conversions = 0; ; conversions++) {
    if (current === null) return 'null';
    switch (typeof current) {
      case 'string':
        return JSON.stringify(current);
      case 'boolean':
        return current ? 'true' : 'false';
      case 'number':
        if (!Number.isFinite(current)) throw new TypeError(`canonicalJson: non-finite number at ${pathOf(frames)}`);
        return JSON.stringify(current);
      case 'undefined':
        return undefined;
      case 'bigint':
        throw new TypeError(`canonicalJson: bigint at ${pathOf(frames)}`);
      case 'function':
        throw new TypeError(`canonicalJson: function at ${pathOf(frames)}`);
      case 'symbol':
        throw new TypeError(`canonicalJson: symbol at ${pathOf(frames)}`);
      case 'object':
        break;
    }
    const obj = current as object;
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') {
      if (conversions >= MAX_TO_JSON_CHAIN) throw new TypeError(`canonicalJson: toJSON does not settle at ${pathOf(frames)}`);
      current = (toJSON as (key: string) => unknown).call(obj, '');
      continue;
    }
    if (open.has(obj)) throw new TypeError(`canonicalJson: cycle at ${pathOf(frames)}`);
    if (Array.isArray(obj)) {
      frames.push({ container: obj, keys: null, parts: [], next: 0 });
    } else {
      const proto = Object.getPrototypeOf(obj) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new TypeError(`canonicalJson: non-plain object at ${pathOf(frames)}`);
      frames.push({ container: obj, keys: Object.keys(obj).sort(), parts: [], next: 0 });
    }
    open.add(obj);
    return OPENED;
  }
}

/** `$`, then `[i]` or `.key` per open container: where the value being encoded sits. */
function pathOf(frames: readonly CanonicalFrame[]): string {
  let path = '$';
  for (const frame of frames) path += frame.keys === null ? `[${frame.next - 1}]` : `.${frame.keys[frame.next - 1] ?? ''}`;
  return path;
}
