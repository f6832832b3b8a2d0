// Which IP addresses the http_request backend may connect to: every address
// (v4 or v6, IPv4 embedded in v6 by mapping, compatibility, NAT64 or 6to4
// included) is classified, and anything but a public address is refused unless
// the connection's `networks` allow-list contains it. Cloud metadata
// endpoints are refused unless the allow-list names the address itself (a /32
// or /128): a wide private range must not open them by accident. Pure: no DNS
// here (the transport resolves and calls checkAddress on every answer).

import { isIPv4, isIPv6 } from 'node:net';

export type AddressClass = 'public' | 'private' | 'loopback' | 'link-local' | 'unique-local' | 'cgnat' | 'multicast' | 'unspecified' | 'metadata' | 'reserved';

/** A CIDR of the allow-list, as bytes (4 or 16) and a prefix length. */
export interface Cidr {
  readonly text: string;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** The connection's `networks`: ranges that may be reached although they are not public. */
export interface NetworkAllowList {
  readonly cidrs: readonly Cidr[];
}

export type AddressVerdict =
  | { readonly allowed: true; readonly address: string; readonly class: AddressClass }
  | { readonly allowed: false; readonly address: string; readonly class: AddressClass; readonly reason: string };

/**
 * The dotted form of an IPv4 literal in any form a URL host or inet_aton
 * accepts (decimal 2130706433, octal 0177.0.0.1, hex 0x7f.1, short 127.1,
 * mixed, a trailing dot), or null when the text is not one. WHATWG URL already
 * rewrites these in `hostname`; this is the same reading for hosts that reach
 * the transport another way, so they are refused without a DNS lookup.
 */
export function parseIpv4Literal(text: string): string | null {
  const parts = text.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts.pop();
  if (parts.length === 0 || parts.length > 4) return null;
  const numbers: number[] = [];
  for (const part of parts) {
    let value: number;
    if (/^0x[0-9a-f]*$/i.test(part)) value = part.length === 2 ? 0 : parseInt(part.slice(2), 16);
    else if (/^0[0-7]+$/.test(part)) value = parseInt(part.slice(1), 8);
    else if (/^(0|[1-9][0-9]*)$/.test(part)) value = Number(part);
    else return null;
    if (!Number.isSafeInteger(value)) return null;
    numbers.push(value);
  }
  const last = numbers.pop() ?? 0;
  if (numbers.some((n) => n > 255) || last >= 256 ** (4 - numbers.length)) return null;
  let total = last;
  numbers.forEach((n, i) => (total += n * 256 ** (3 - i)));
  return [total >>> 24, (total >>> 16) & 255, (total >>> 8) & 255, total & 255].join('.');
}

/**
 * The canonical address of a URL hostname that is an IP literal ([v6] in
 * brackets or any IPv4 form), or null for a name that must be resolved.
 */
export function literalAddress(hostname: string): string | null {
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (isIPv6(bare)) return bare;
  return parseIpv4Literal(bare);
}

/** 4 or 16 bytes of an address (v6 zone ids dropped), or null when it is not one. */
export function addressBytes(address: string): Uint8Array | null {
  if (isIPv4(address)) return Uint8Array.from(address.split('.').map(Number));
  if (!isIPv6(address)) return null;
  let text = address.split('%')[0] ?? '';
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${(((v4[0] ?? 0) << 8) | (v4[1] ?? 0)).toString(16)}:${(((v4[2] ?? 0) << 8) | (v4[3] ?? 0)).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(rest === undefined ? 0 : missing).fill('0'), ...restGroups].map((g) => parseInt(g, 16));
  if (groups.length !== 8) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 255;
  });
  return bytes;
}

function inPrefix(bytes: Uint8Array, network: Uint8Array, prefix: number): boolean {
  if (bytes.length !== network.length) return false;
  for (let bit = 0; bit < prefix; bit += 8) {
    const take = Math.min(8, prefix - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    const i = bit / 8;
    if (((bytes[i] ?? 0) & mask) !== ((network[i] ?? 0) & mask)) return false;
  }
  return true;
}

/** A CIDR (`10.0.0.0/8`, `fd00::/8`, or a bare address meaning /32 or /128), or null when malformed. */
export function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const bytes = isIPv4(address) || isIPv6(address) ? addressBytes(address) : null;
  if (bytes === null || address.includes('%')) return null;
  const max = bytes.length * 8;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (prefix > max) return null;
  return { text, bytes, prefix };
}

/** The allow-list of a connection's `networks`; a malformed entry is a programmer mistake (the schema checks them with parseCidr). */
export function allowList(networks: readonly string[]): NetworkAllowList {
  return {
    cidrs: networks.map((text) => {
      const cidr = parseCidr(text);
      if (cidr === null) throw new TypeError(`not a CIDR: ${text}`);
      return cidr;
    }),
  };
}

type Table = ReadonlyArray<readonly [string, AddressClass]>;

// Checked in order, the first match wins: exact metadata addresses before the ranges that hold them.
const V4_TABLE: Table = [
  ['169.254.169.254/32', 'metadata'], // AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
  ['169.254.169.253/32', 'metadata'], // AWS VPC DNS
  ['169.254.170.2/32', 'metadata'], // AWS ECS task credentials
  ['169.254.169.123/32', 'metadata'], // AWS time sync
  ['100.100.100.200/32', 'metadata'], // Alibaba Cloud
  ['168.63.129.16/32', 'metadata'], // Azure wire server (a public-looking address)
  ['0.0.0.0/8', 'unspecified'],
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'cgnat'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'reserved'],
  ['192.88.99.0/24', 'reserved'],
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'reserved'],
  ['203.0.113.0/24', 'reserved'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'],
];

const V6_TABLE: Table = [
  ['fd00:ec2::254/128', 'metadata'], // AWS IMDS over IPv6
  ['fd00:ec2::23/128', 'metadata'], // AWS time sync over IPv6
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['64:ff9b:1::/48', 'private'], // local-use NAT64
  ['100::/64', 'reserved'],
  ['2001::/32', 'reserved'], // Teredo: the client address is hidden in it
  ['2001:db8::/32', 'reserved'],
  ['fc00::/7', 'unique-local'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'], // deprecated site-local
  ['ff00::/8', 'multicast'],
];

const compile = (table: Table): ReadonlyArray<readonly [Cidr, AddressClass]> =>
  table.map(([text, cls]) => {
    const cidr = parseCidr(text);
    if (cidr === null) throw new TypeError(`bad table entry ${text}`);
    return [cidr, cls] as const;
  });
const V4 = compile(V4_TABLE);
const V6 = compile(V6_TABLE);
const GLOBAL_UNICAST = parseCidr('2000::/3');

/** The IPv4 address a v6 address carries and reaches (mapped, compatible, NAT64, 6to4), or null. */
export function embeddedIpv4(bytes: Uint8Array): Uint8Array | null {
  if (bytes.length !== 16) return null;
  const zeros = (from: number, to: number): boolean => bytes.slice(from, to).every((b) => b === 0);
  if (zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12, 16); // ::ffff:a.b.c.d
  if (zeros(0, 12) && !zeros(12, 15)) return bytes.slice(12, 16); // ::a.b.c.d (not :: or ::1)
  if (bytes[0] === 0 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zeros(4, 12)) return bytes.slice(12, 16); // 64:ff9b::/96
  if (bytes[0] === 0x20 && bytes[1] === 0x02) return bytes.slice(2, 6); // 6to4
  return null;
}

function classifyBytes(bytes: Uint8Array): AddressClass {
  if (bytes.length === 4) return V4.find(([cidr]) => inPrefix(bytes, cidr.bytes, cidr.prefix))?.[1] ?? 'public';
  const v4 = embeddedIpv4(bytes);
  if (v4 !== null) return classifyBytes(v4);
  const hit = V6.find(([cidr]) => inPrefix(bytes, cidr.bytes, cidr.prefix));
  if (hit) return hit[1];
  return GLOBAL_UNICAST && inPrefix(bytes, GLOBAL_UNICAST.bytes, GLOBAL_UNICAST.prefix) ? 'public' : 'reserved';
}

/** The class of an IP address (v4 or v6 text); a programmer mistake when it is not an address. */
export function classifyAddress(address: string): AddressClass {
  const bytes = addressBytes(address);
  if (bytes === null) throw new TypeError(`not an IP address: ${address}`);
  return classifyBytes(bytes);
}

/** Whether an allow-list entry covers the address (for metadata: only one naming the address itself). */
function allowedBy(bytes: Uint8Array, networks: NetworkAllowList, exactOnly: boolean): Cidr | undefined {
  const forms = [bytes, embeddedIpv4(bytes)].filter((b): b is Uint8Array => b !== null);
  return networks.cidrs.find((cidr) => (!exactOnly || cidr.prefix === cidr.bytes.length * 8) && forms.some((form) => inPrefix(form, cidr.bytes, cidr.prefix)));
}

/** May the transport connect to this address? Public: yes; anything else only inside `networks`. */
export function checkAddress(address: string, networks: NetworkAllowList): AddressVerdict {
  const bytes = addressBytes(address);
  if (bytes === null) throw new TypeError(`not an IP address: ${address}`);
  const cls = classifyBytes(bytes);
  if (cls === 'public') return { allowed: true, address, class: cls };
  if (allowedBy(bytes, networks, cls === 'metadata')) return { allowed: true, address, class: cls };
  const reason =
    cls === 'metadata'
      ? `${address} is a cloud metadata address; it is reached only when the connection's networks name it exactly (a /32 or /128)`
      : `${address} is a ${cls} address outside the connection's networks`;
  return { allowed: false, address, class: cls, reason };
}
