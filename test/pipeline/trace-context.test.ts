// The caller's W3C trace context, parsed strictly (https://www.w3.org/TR/trace-context/): the
// spec's own examples pass; anything off the grammar is null (the call starts a new trace),
// never an exception; an invalid tracestate is dropped while its traceparent stands.

import { describe, expect, it } from 'vitest';
import { parseTraceparent, parseTracestate, traceContextOf } from '../../src/pipeline/trace-context.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${SPAN}-01`;

describe('parseTraceparent', () => {
  it('reads the W3C example: trace id, parent span id and flags', () => {
    expect(parseTraceparent(VALID)).toEqual({ traceId: TRACE, parentSpanId: SPAN, flags: 1 });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).toEqual({ traceId: TRACE, parentSpanId: SPAN, flags: 0 });
  });

  it('accepts a later version with more fields, ignoring them', () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-what-the-future-holds`)).toEqual({ traceId: TRACE, parentSpanId: SPAN, flags: 1 });
  });

  it.each([
    ['uppercase hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with a trailing field', `${VALID}-extra`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['an all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['no flags', `00-${TRACE}-${SPAN}`],
    ['spaces', ` ${VALID}`],
    ['two headers joined', `${VALID}, ${VALID}`],
    ['a later version glued to more text', `01-${TRACE}-${SPAN}-01x`],
    ['empty', ''],
  ])('refuses %s', (_why, value) => {
    expect(parseTraceparent(value)).toBeNull();
  });

  it.each([[undefined], [null], [42], [{ traceparent: VALID }], [[VALID]], ['x'.repeat(10_000)]])(
    'refuses a value that is not a string of a header (%#)',
    (value) => {
      expect(parseTraceparent(value)).toBeNull();
    },
  );
});

describe('parseTracestate', () => {
  it('keeps a valid list (the W3C examples, multi-tenant keys, optional whitespace and empty members)', () => {
    expect(parseTracestate('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE')).toBe('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    expect(parseTracestate(' fw529a3039@dt=fw529a3039 ,  , vendor/x=a b')).toBe('fw529a3039@dt=fw529a3039,vendor/x=a b');
  });

  it.each([
    ['a key twice', 'a=1,a=2'],
    ['an uppercase key', 'Rojo=1'],
    ['no value', 'rojo='],
    ['no key', '=1'],
    ['a comma-less pair with =', 'a=b=c'],
    ['a value ending in a space', 'a=b '.replace(/ $/, '\u00a0')],
    ['33 members', Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')],
    ['only commas', ' , ,'],
  ])('refuses %s', (_why, value) => {
    expect(parseTracestate(value)).toBeNull();
  });
});

describe('traceContextOf', () => {
  it('a valid pair; a valid traceparent with an invalid tracestate keeps the traceparent alone', () => {
    expect(traceContextOf(VALID, 'rojo=1')).toEqual({ traceId: TRACE, parentSpanId: SPAN, flags: 1, state: 'rojo=1' });
    expect(traceContextOf(VALID, 'Not Valid')).toEqual({ traceId: TRACE, parentSpanId: SPAN, flags: 1, state: null });
    expect(traceContextOf(VALID, undefined)).toEqual({ traceId: TRACE, parentSpanId: SPAN, flags: 1, state: null });
  });

  it('no traceparent, or an invalid one: no context, whatever the tracestate', () => {
    expect(traceContextOf(undefined, 'rojo=1')).toBeNull();
    expect(traceContextOf('00-garbage', 'rojo=1')).toBeNull();
  });
});
