// Signing-key rotation at the provider, and tokens that run out: the verifier
// caches the JWKS (no fetch per request, no fetch storm on unknown key ids),
// refetches it for a new kid after the cooldown, and then accepts tokens
// signed with the new key (and refuses the retired one). An SSE stream does
// not outlive the token that opened it.

import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { INITIALIZE, openSession, raw, startHarness, type Harness } from './harness.js';

let h: Harness;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const list = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/list' });

beforeAll(async () => {
  h = await startHarness({ jwks: '{ cooldown: 1s, cache_max_age: 10m }', clockTolerance: '0s' });
});

afterAll(async () => {
  await h?.close();
});

describe('key rotation', () => {
  // The verifier's refetch cooldown is measured with Date (jose): moving Date past it is
  // waiting it out. Only Date is faked, and it only moves forward within this block.
  beforeAll(() => void vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true }));
  afterAll(() => void vi.useRealTimers());

  it('fetches the JWKS once, not per request, and not per unknown kid', async () => {
    const alice = await h.login('alice');
    const sessionId = await openSession(h.http.url, alice);
    const fetched = h.idp.jwksFetches();
    expect(fetched).toBeGreaterThanOrEqual(1);
    for (let i = 0; i < 10; i++) expect((await raw(h.http.url, { token: alice, sessionId, body: list(i + 2) })).status).toBe(200);
    expect((await raw(h.http.url, { token: alice, body: INITIALIZE })).status).toBe(200);
    expect(h.idp.jwksFetches()).toBe(fetched);
    // Tokens naming unknown key ids: refused, and at most one refetch within the cooldown.
    for (let i = 0; i < 8; i++) {
      const forged = await h.idp.mint({ aud: h.resource, scope: 'mcp' }, { header: { kid: `unknown-${i}` } });
      expect((await raw(h.http.url, { token: forged, body: INITIALIZE })).status).toBe(401);
    }
    expect(h.idp.jwksFetches()).toBeLessThanOrEqual(fetched + 1);
  });

  it('accepts a token with the new kid after rotation, refuses the retired key, and keeps sessions', async () => {
    const before = await h.login('alice');
    const oldKid = decodeProtectedHeader(before).kid;
    const sessionId = await openSession(h.http.url, before);
    await h.idp.rotate();
    vi.setSystemTime(Date.now() + 1100); // past the verifier's refetch cooldown
    const after = await h.login('alice');
    const newKid = decodeProtectedHeader(after).kid;
    expect(newKid).toBe(h.idp.currentKid());
    expect(newKid).not.toBe(oldKid);

    const fetchedBefore = h.idp.jwksFetches();
    expect((await raw(h.http.url, { token: after, sessionId, body: list(2) })).status).toBe(200);
    expect(h.idp.jwksFetches()).toBe(fetchedBefore + 1);
    for (let i = 0; i < 5; i++) expect((await raw(h.http.url, { token: after, sessionId, body: list(3 + i) })).status).toBe(200);
    expect(h.idp.jwksFetches()).toBe(fetchedBefore + 1);

    // The old key is no longer published: its tokens are refused.
    const old = await raw(h.http.url, { token: before, sessionId, body: list(9) });
    expect(old.status).toBe(401);
    expect(old.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('with keepOld, both the previous and the new key verify', async () => {
    const previous = await h.login('bob');
    await h.idp.rotate({ keepOld: true });
    vi.setSystemTime(Date.now() + 1100);
    const next = await h.login('bob');
    expect(decodeProtectedHeader(next).kid).not.toBe(decodeProtectedHeader(previous).kid);
    expect((await raw(h.http.url, { token: next, body: INITIALIZE })).status).toBe(200);
    expect((await raw(h.http.url, { token: previous, body: INITIALIZE })).status).toBe(200);
  });
});

describe('expiry', () => {
  it('closes a GET stream when the token that opened it expires', async () => {
    // The stream's end is the gateway's setTimeout until the token's exp: fake time moves it.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], shouldAdvanceTime: true });
    onTestFinished(() => void vi.useRealTimers());
    const alice = await h.login('alice');
    const sessionId = await openSession(h.http.url, alice);
    const exp = Math.floor(Date.now() / 1000) + 2;
    const short = await h.idp.mint({ aud: h.resource, scope: 'mcp', sub: 'alice', exp });
    const started = Date.now();
    const res = await fetch(h.http.url, {
      headers: { authorization: `Bearer ${short}`, accept: 'text/event-stream', 'mcp-session-id': sessionId },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const ended = (async () => {
      for (;;) if ((await reader.read()).done) return Date.now();
    })();
    await vi.advanceTimersByTimeAsync(2_100);
    const endedAt = await Promise.race([ended, sleep(8000).then(() => null)]);
    expect(endedAt).not.toBeNull();
    expect(endedAt! - started).toBeGreaterThanOrEqual(500);
    // Reopening with the expired token is refused; the session itself is still there for a fresh one.
    await vi.advanceTimersByTimeAsync(Math.max(0, exp * 1000 - Date.now() + 50));
    expect((await raw(h.http.url, { token: short, sessionId, headers: { accept: 'text/event-stream' } })).status).toBe(401);
    expect((await raw(h.http.url, { token: alice, sessionId, body: list(5) })).status).toBe(200);
  });
});
