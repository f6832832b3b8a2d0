// Which addresses the http_request backend may connect to: classification of
// v4 and v6 (embedded IPv4 included), every IPv4 literal form a URL host can
// take (as WHATWG URL normalises it and as the parser reads it), and the
// connection's networks allow-list (metadata only by exact address). Pure, table-driven.

import { describe, expect, it } from 'vitest';
import {
  allowList,
  checkAddress,
  classifyAddress,
  literalAddress,
  parseCidr,
  parseIpv4Literal,
  type AddressClass,
} from '../../../src/backends/http/address.js';

const classes: Array<[string, AddressClass]> = [
  ['8.8.8.8', 'public'],
  ['93.184.216.34', 'public'],
  ['1.1.1.1', 'public'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.1.2.3', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', 'public'],
  ['192.168.1.1', 'private'],
  ['100.64.0.1', 'cgnat'],
  ['100.127.255.255', 'cgnat'],
  ['100.128.0.1', 'public'],
  ['169.254.1.1', 'link-local'],
  ['169.254.169.254', 'metadata'],
  ['169.254.170.2', 'metadata'],
  ['100.100.100.200', 'metadata'],
  ['168.63.129.16', 'metadata'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['255.255.255.255', 'reserved'],
  ['240.0.0.1', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['192.0.0.8', 'reserved'],
  // IPv6
  ['2606:4700:4700::1111', 'public'],
  ['::1', 'loopback'],
  ['::', 'unspecified'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['fc00::1', 'unique-local'],
  ['fd12:3456::1', 'unique-local'],
  ['fd00:ec2::254', 'metadata'],
  ['ff02::1', 'multicast'],
  ['fec0::1', 'private'],
  ['2001:db8::1', 'reserved'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'],
  ['100::1', 'reserved'],
  ['4000::1', 'reserved'],
  ['64:ff9b:1::1', 'private'],
  // IPv4 inside IPv6
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::ffff:a9fe:a9fe', 'metadata'],
  ['::ffff:169.254.169.254', 'metadata'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:8.8.8.8', 'public'],
  ['::127.0.0.1', 'loopback'],
  ['::7f00:1', 'loopback'],
  ['64:ff9b::127.0.0.1', 'loopback'],
  ['64:ff9b::a9fe:a9fe', 'metadata'],
  ['64:ff9b::808:808', 'public'],
  ['2002:7f00:1::', 'loopback'],
  ['2002:a00:1::1', 'private'],
  ['2002:808:808::1', 'public'],
];

describe('classifyAddress', () => {
  it.each(classes)('%s is %s', (address, cls) => {
    expect(classifyAddress(address)).toBe(cls);
  });

  it('refuses text that is no address as a programmer mistake', () => {
    expect(() => classifyAddress('localhost')).toThrow(TypeError);
  });
});

// Forms of 127.0.0.1 (and of the metadata address) a URL host can take.
const loopbackForms = [
  '127.0.0.1',
  '2130706433',
  '0177.0.0.1',
  '0177.0000.0000.0001',
  '0x7f.1',
  '0x7f.0.0.1',
  '0x7f000001',
  '017700000001',
  '127.1',
  '127.0.1',
  '0x7f.0x0.0.01',
  '127.0.0.1.',
];

describe('IPv4 literal forms', () => {
  it.each(loopbackForms)('parseIpv4Literal(%s) is 127.0.0.1', (form) => {
    expect(parseIpv4Literal(form)).toBe('127.0.0.1');
  });

  it.each(loopbackForms)('new URL() gives 127.0.0.1 for http://%s/, which is refused', (form) => {
    const url = new URL(`http://${form}:8080/`);
    expect(url.hostname).toBe('127.0.0.1');
    const address = literalAddress(url.hostname);
    expect(address).toBe('127.0.0.1');
    expect(checkAddress(address ?? '', allowList([])).allowed).toBe(false);
  });

  it.each([
    ['2852039166', '169.254.169.254'],
    ['0251.0376.0251.0376', '169.254.169.254'],
    ['0xa9.0xfe.0xa9.0xfe', '169.254.169.254'],
    ['0xa9fea9fe', '169.254.169.254'],
    ['169.16689662', '169.254.169.254'],
    ['0', '0.0.0.0'],
    ['0x', '0.0.0.0'],
  ])('parseIpv4Literal(%s) is %s', (form, dotted) => {
    expect(parseIpv4Literal(form)).toBe(dotted);
  });

  it.each(['example.com', '1.2.3.4.5', '256.0.0.1', '4294967296', '08.0.0.1', '0x1g', '1..2', '', 'a.1', '1.2.3.0x100'])(
    'parseIpv4Literal(%s) is not an address',
    (form) => {
      expect(parseIpv4Literal(form)).toBeNull();
    },
  );

  it.each([
    ['[::ffff:127.0.0.1]', '::ffff:7f00:1', 'loopback'],
    ['[::ffff:7f00:1]', '::ffff:7f00:1', 'loopback'],
    ['[::127.0.0.1]', '::7f00:1', 'loopback'],
    ['[64:ff9b::127.0.0.1]', '64:ff9b::7f00:1', 'loopback'],
    ['[::ffff:169.254.169.254]', '::ffff:a9fe:a9fe', 'metadata'],
    ['[0:0:0:0:0:ffff:127.0.0.1]', '::ffff:7f00:1', 'loopback'],
    ['[fd00:ec2::254]', 'fd00:ec2::254', 'metadata'],
  ])('new URL() host %s becomes %s, a %s address', (host, normalised, cls) => {
    const url = new URL(`http://${host}/`);
    expect(url.hostname).toBe(`[${normalised}]`);
    const address = literalAddress(url.hostname);
    expect(address).toBe(normalised);
    expect(classifyAddress(address ?? '')).toBe(cls);
  });

  it('a host name is not a literal', () => {
    expect(literalAddress('api.example.com')).toBeNull();
    expect(literalAddress('127.0.0.1.example.com')).toBeNull();
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', 8],
    ['127.0.0.2/32', 32],
    ['127.0.0.2', 32],
    ['fd00::/8', 8],
    ['::1', 128],
    ['0.0.0.0/0', 0],
  ])('%s has prefix %i', (text, prefix) => {
    expect(parseCidr(text)?.prefix).toBe(prefix);
  });

  it.each(['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/08', 'fd00::/129', 'example.com/8', '10.1/8', 'fe80::1%eth0/64', ''])('%s is malformed', (text) => {
    expect(parseCidr(text)).toBeNull();
  });

  it('allowList throws a TypeError on a malformed entry (the schema checks them first)', () => {
    expect(() => allowList(['10.0.0.0/8', 'nope'])).toThrow(TypeError);
  });
});

describe('checkAddress with the networks allow-list', () => {
  const cases: Array<[string, string[], boolean]> = [
    ['8.8.8.8', [], true],
    ['10.1.2.3', [], false],
    ['10.1.2.3', ['10.0.0.0/8'], true],
    ['10.1.2.3', ['10.2.0.0/16'], false],
    ['127.0.0.2', ['127.0.0.2/32'], true],
    ['127.0.0.1', ['127.0.0.2/32'], false],
    ['::ffff:127.0.0.2', ['127.0.0.2/32'], true],
    ['::ffff:127.0.0.1', ['127.0.0.2/32'], false],
    ['fd12::5', ['fd12::/16'], true],
    ['fd12::5', ['10.0.0.0/8'], false],
    ['::1', ['127.0.0.0/8'], false],
    // Metadata: only an exact entry opens it, never a range that holds it.
    ['169.254.169.254', ['169.254.0.0/16'], false],
    ['169.254.169.254', ['0.0.0.0/0'], false],
    ['169.254.169.254', ['169.254.169.254/32'], true],
    ['::ffff:169.254.169.254', ['169.254.0.0/16'], false],
    ['fd00:ec2::254', ['fd00::/8'], false],
    ['fd00:ec2::254', ['fd00:ec2::254/128'], true],
    ['169.254.1.1', ['169.254.0.0/16'], true],
    ['0.0.0.0', [], false],
    ['224.0.0.1', [], false],
  ];
  it.each(cases)('%s with networks %j: allowed %s', (address, networks, allowed) => {
    const verdict = checkAddress(address, allowList(networks));
    expect(verdict.allowed).toBe(allowed);
    if (!verdict.allowed) expect(verdict.reason).toContain(address);
  });

  it('says why metadata is refused', () => {
    const verdict = checkAddress('169.254.169.254', allowList(['169.254.0.0/16']));
    expect(verdict).toMatchObject({ allowed: false, class: 'metadata' });
    if (!verdict.allowed) expect(verdict.reason).toMatch(/metadata.*exactly/);
  });
});
