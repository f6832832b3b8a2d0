// How the http_request backend applies a resolved credential to a request (and
// nowhere else), and the scrubber that removes it, in every encoding it travels
// in, from texts the agent or the journal sees. Pure.

import { describe, expect, it } from 'vitest';
import { applyCredential, credentialScrubber, withoutCredential, type ResolvedCredential } from '../../../src/backends/http/credentials.js';

const URL_IN = new URL('https://api.example.com/v1/items?limit=5');
const AGENT_HEADERS: Array<[string, string]> = [
  ['Accept', 'application/json'],
  ['authorization', 'Bearer agent-chosen'],
  ['x-api-key', 'agent-chosen'],
];

describe('applyCredential', () => {
  it('bearer: one Authorization header, the agent one dropped', () => {
    const wire = applyCredential(URL_IN, AGENT_HEADERS, { kind: 'bearer', token: 'tok' });
    expect(wire.headers).toEqual([
      ['Accept', 'application/json'],
      ['x-api-key', 'agent-chosen'],
      ['Authorization', 'Bearer tok'],
    ]);
    expect(wire.url.href).toBe(URL_IN.href);
    expect(wire.tls).toBeNull();
  });

  it('basic: base64 of user:password (UTF-8)', () => {
    const wire = applyCredential(URL_IN, [], { kind: 'basic', username: 'svc', password: 'pä:ss' });
    expect(wire.headers).toEqual([['Authorization', `Basic ${Buffer.from('svc:pä:ss', 'utf8').toString('base64')}`]]);
  });

  it('header: the named header, replacing the agent one whatever its case', () => {
    const wire = applyCredential(URL_IN, AGENT_HEADERS, { kind: 'header', name: 'X-Api-Key', value: 'k1' });
    expect(wire.headers.filter(([n]) => n.toLowerCase() === 'x-api-key')).toEqual([['X-Api-Key', 'k1']]);
    expect(wire.headers).toContainEqual(['authorization', 'Bearer agent-chosen']);
  });

  it('query: the key is set on a copy of the URL (replacing one of the same name); the given URL is untouched', () => {
    const url = new URL('https://api.example.com/v1?api_key=agent&x=1');
    const wire = applyCredential(url, [], { kind: 'query', name: 'api_key', value: 'k&=/ 1' });
    expect(wire.url.searchParams.getAll('api_key')).toEqual(['k&=/ 1']);
    expect(wire.url.searchParams.get('x')).toBe('1');
    expect(url.href).toBe('https://api.example.com/v1?api_key=agent&x=1');
    expect(withoutCredential(wire.url, { kind: 'query', name: 'api_key', value: 'k&=/ 1' }).href).toBe('https://api.example.com/v1?x=1');
  });

  it('client certificate: given to TLS, no header', () => {
    const wire = applyCredential(URL_IN, [['Accept', '*/*']], { kind: 'client_certificate', cert: 'CERT', key: 'KEY', passphrase: 'pp' });
    expect(wire.tls).toEqual({ cert: 'CERT', key: 'KEY', passphrase: 'pp' });
    expect(wire.headers).toEqual([['Accept', '*/*']]);
  });

  it('no credential: the request as given', () => {
    const wire = applyCredential(URL_IN, AGENT_HEADERS, null);
    expect(wire.headers).toEqual(AGENT_HEADERS);
    expect(wire.tls).toBeNull();
  });
});

describe('credentialScrubber', () => {
  const secret = 'sk_live/ab+cd=ef gh"ij';
  const forms = [
    secret,
    encodeURIComponent(secret),
    new URLSearchParams({ k: secret }).toString().slice(2),
    Buffer.from(secret).toString('base64'),
    Buffer.from(secret).toString('base64').replace(/=+$/, ''),
    Buffer.from(secret).toString('base64url'),
    JSON.stringify(secret).slice(1, -1),
  ];

  it.each(forms)('removes the form %s of a bearer token', (form) => {
    const scrub = credentialScrubber({ kind: 'bearer', token: secret });
    const out = scrub(`before ${form} after`);
    expect(out).toBe('before [credential] after');
  });

  it.each<[string, ResolvedCredential, string[]]>([
    ['header', { kind: 'header', name: 'X-Key', value: 'hv-123456' }, ['hv-123456']],
    ['query', { kind: 'query', name: 'key', value: 'q v&1' }, ['q v&1', 'q%20v%261', 'q+v%261']],
    ['basic', { kind: 'basic', username: 'svc', password: 'pw-98765' }, ['pw-98765', Buffer.from('svc:pw-98765').toString('base64')]],
    ['client certificate', { kind: 'client_certificate', cert: 'PUBLIC', key: '-----KEY-----', passphrase: 'pass-4242' }, ['-----KEY-----', 'pass-4242']],
  ])('removes every form of a %s credential', (_kind, credential, texts) => {
    const scrub = credentialScrubber(credential);
    for (const text of texts) expect(scrub(`x ${text} y`)).toBe('x [credential] y');
  });

  it('leaves other text alone, and a basic user name and certificate (not secret)', () => {
    expect(credentialScrubber({ kind: 'basic', username: 'svc', password: 'pw-98765' })('user svc failed')).toBe('user svc failed');
    expect(credentialScrubber({ kind: 'client_certificate', cert: 'PUBLIC', key: 'K3Y' })('cert PUBLIC')).toBe('cert PUBLIC');
    expect(credentialScrubber(null)('anything at all')).toBe('anything at all');
  });

  it('replaces every occurrence, and a longer encoded form whole', () => {
    const scrub = credentialScrubber({ kind: 'bearer', token: 'a b' });
    expect(scrub('a b, a%20b, a+b, a b')).toBe('[credential], [credential], [credential], [credential]');
  });
});
