// Table-driven tests for the content detectors: true positives embedded in
// JSON, sentences and CSV (exact spans, alone and with every detector on), a
// shared false-positive table, the validators, overlap resolution, and a 1 MB
// scan that must simply finish. The secret catalog and the generic NAME=value
// rule have their own tables (catalog.test.ts); linear time is linear.test.ts.

import { describe, expect, it } from 'vitest';
import { DETECTOR_NAMES, findSensitive, ibanValid, luhnValid, type DetectorName, type Finding } from '../../src/masking/detectors.js';
import { ASSIGNMENT_DETECTOR_NAMES } from '../../src/masking/assignments.js';
import { SECRET_DETECTOR_NAMES } from '../../src/masking/catalog.js';

interface PositiveCase {
  readonly name: string;
  readonly detector: DetectorName;
  readonly text: string;
  /** The exact substrings that must be found, in order of appearance. */
  readonly spans: readonly string[];
}

/** Turns expected substrings into findings by locating them left to right. */
function expectedFindings(text: string, detector: DetectorName, spans: readonly string[]): Finding[] {
  const out: Finding[] = [];
  let from = 0;
  for (const span of spans) {
    const start = text.indexOf(span, from);
    if (start < 0) throw new Error(`test bug: ${JSON.stringify(span)} not in ${JSON.stringify(text)}`);
    out.push({ detector, start, end: start + span.length });
    from = start + span.length;
  }
  return out;
}

function spansOf(text: string, findings: readonly Finding[]): string[] {
  return findings.map((f) => `${f.detector}:${text.slice(f.start, f.end)}`);
}

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
const AWS_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const PEM_RSA = [
  '-----BEGIN RSA PRIVATE KEY-----',
  'MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu',
  'KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm',
  '-----END RSA PRIVATE KEY-----',
].join('\n');
const PEM_OPENSSH = [
  '-----BEGIN OPENSSH PRIVATE KEY-----',
  'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW',
  '-----END OPENSSH PRIVATE KEY-----',
].join('\r\n');
const PEM_PKCS8_ESCAPED = '-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\n-----END PRIVATE KEY-----';

const POSITIVES: readonly PositiveCase[] = [
  // email
  { name: 'email in JSON', detector: 'email', text: '{"id":7,"email":"alice.smith@example.com","active":true}', spans: ['alice.smith@example.com'] },
  { name: 'email in a sentence', detector: 'email', text: 'Contact bob+billing@mail.example.co.uk for invoices.', spans: ['bob+billing@mail.example.co.uk'] },
  { name: 'email in CSV', detector: 'email', text: '42,carol_99@example.org,2024-01-15', spans: ['carol_99@example.org'] },
  { name: 'email after mailto:', detector: 'email', text: '<a href="mailto:dave@example.net">', spans: ['dave@example.net'] },
  { name: 'email in a URL query', detector: 'email', text: 'https://example.com/unsubscribe?email=erin@example.com', spans: ['erin@example.com'] },
  { name: 'two emails', detector: 'email', text: 'from: a@x.io, to: b.c-d@sub.x.io', spans: ['a@x.io', 'b.c-d@sub.x.io'] },

  // credit_card
  { name: 'card contiguous in JSON', detector: 'credit_card', text: '{"card":"4111111111111111","exp":"12/26"}', spans: ['4111111111111111'] },
  { name: 'card grouped by spaces in a sentence', detector: 'credit_card', text: 'Charged 4111 1111 1111 1111 on 2024-01-15.', spans: ['4111 1111 1111 1111'] },
  { name: 'card grouped by dashes in CSV', detector: 'credit_card', text: '7,5500-0000-0000-0004,MC', spans: ['5500-0000-0000-0004'] },
  { name: 'amex contiguous', detector: 'credit_card', text: 'amex=378282246310005;', spans: ['378282246310005'] },
  { name: 'amex grouped 4-6-5', detector: 'credit_card', text: 'amex 3782 822463 10005 ok', spans: ['3782 822463 10005'] },
  { name: 'card followed by expiry', detector: 'credit_card', text: 'card 4111 1111 1111 1111 12/26', spans: ['4111 1111 1111 1111'] },
  { name: 'card followed by CVV group', detector: 'credit_card', text: 'card 4111 1111 1111 1111 123', spans: ['4111 1111 1111 1111'] },

  // ssn
  { name: 'ssn in a sentence', detector: 'ssn', text: 'SSN: 123-45-6789.', spans: ['123-45-6789'] },
  { name: 'ssn in CSV', detector: 'ssn', text: '1,Alice,123-45-6789,NY', spans: ['123-45-6789'] },
  { name: 'ssn with spaces in JSON', detector: 'ssn', text: '{"ssn":"123 45 6789"}', spans: ['123 45 6789'] },

  // phone
  { name: 'phone (415) 555-0132 in a sentence', detector: 'phone', text: 'Call (415) 555-0132 today', spans: ['(415) 555-0132'] },
  { name: 'phone dashed in CSV', detector: 'phone', text: '3,Bob,415-555-0132,CA', spans: ['415-555-0132'] },
  { name: 'phone dotted in JSON', detector: 'phone', text: '{"phone":"415.555.0132"}', spans: ['415.555.0132'] },
  { name: 'phone +1 spaced', detector: 'phone', text: 'tel: +1 415 555 0132.', spans: ['+1 415 555 0132'] },
  { name: 'phone E.164 compact', detector: 'phone', text: '{"msisdn":"+14155550132"}', spans: ['+14155550132'] },
  { name: 'phone E.164 UK', detector: 'phone', text: 'London office +44 20 7946 0958, ask for Sam', spans: ['+44 20 7946 0958'] },
  { name: 'phone E.164 with parentheses', detector: 'phone', text: '(mobile: +1 (415) 555-0132)', spans: ['+1 (415) 555-0132'] },
  { name: 'phone 1-415-555-0132', detector: 'phone', text: 'dial 1-415-555-0132 now', spans: ['1-415-555-0132'] },

  // iban
  { name: 'iban electronic in JSON', detector: 'iban', text: '{"iban":"GB82WEST12345698765432"}', spans: ['GB82WEST12345698765432'] },
  { name: 'iban print format in a sentence', detector: 'iban', text: 'Pay to DE89 3704 0044 0532 0130 00 by Friday.', spans: ['DE89 3704 0044 0532 0130 00'] },
  { name: 'iban in CSV', detector: 'iban', text: '9,NL91ABNA0417164300,EUR', spans: ['NL91ABNA0417164300'] },
  { name: 'iban followed by an uppercase word', detector: 'iban', text: 'BE68 5390 0754 7034 AND more', spans: ['BE68 5390 0754 7034'] },

  // jwt
  { name: 'jwt in a header line', detector: 'jwt', text: `Authorization: Bearer ${JWT}`, spans: [JWT] },
  { name: 'jwt in JSON', detector: 'jwt', text: `{"token":"${JWT}","ttl":3600}`, spans: [JWT] },
  { name: 'unsigned jwt (alg none)', detector: 'jwt', text: 'tok=eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0. end', spans: ['eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.'] },

  // aws_key
  { name: 'aws access key id in CSV', detector: 'aws_key', text: 'deploy,AKIAIOSFODNN7EXAMPLE,us-east-1', spans: ['AKIAIOSFODNN7EXAMPLE'] },
  { name: 'aws secret in INI', detector: 'aws_key', text: `[default]\naws_secret_access_key = ${AWS_SECRET}\n`, spans: [AWS_SECRET] },
  { name: 'aws secret in env', detector: 'aws_key', text: `export AWS_SECRET_ACCESS_KEY=${AWS_SECRET}`, spans: [AWS_SECRET] },
  {
    name: 'aws secret in CLI JSON',
    detector: 'aws_key',
    text: `{"AccessKeyId": "ASIAIOSFODNN7EXAMPLE", "SecretAccessKey": "${AWS_SECRET}"}`,
    spans: ['ASIAIOSFODNN7EXAMPLE', AWS_SECRET],
  },
  { name: 'aws secret in YAML after aws_secret', detector: 'aws_key', text: `aws_secret: '${AWS_SECRET}'`, spans: [AWS_SECRET] },

  // private_key
  { name: 'RSA PEM block in text', detector: 'private_key', text: `key follows:\n${PEM_RSA}\nthanks`, spans: [PEM_RSA] },
  { name: 'OpenSSH key with CRLF', detector: 'private_key', text: `x\r\n${PEM_OPENSSH}\r\ny`, spans: [PEM_OPENSSH] },
  {
    name: 'PKCS#8 key escaped in JSON',
    detector: 'private_key',
    text: `{"private_key":"${PEM_PKCS8_ESCAPED}","type":"service_account"}`,
    spans: [PEM_PKCS8_ESCAPED],
  },
  {
    name: 'truncated key is masked to the end',
    detector: 'private_key',
    text: 'cell: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49',
    spans: ['-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49'],
  },

  {
    name: 'the tail of a key (END without BEGIN): the body lines above END',
    detector: 'private_key',
    text: `tail:\n${PEM_RSA.split('\n').slice(1).join('\n')}\nnext line`,
    spans: [PEM_RSA.split('\n').slice(1).join('\n')],
  },
  {
    name: 'the tail of a key inside a JSON string',
    detector: 'private_key',
    text: `{"log":"x y\\n${PEM_RSA.split('\n').slice(1).join('\\n')}\\n"}`,
    spans: [PEM_RSA.split('\n').slice(1).join('\\n')],
  },

  // password_in_url
  {
    name: 'password in a postgres URL',
    detector: 'password_in_url',
    text: 'Connect with postgres://app:s3cr3t@db.internal:5432/orders please',
    spans: ['s3cr3t'],
  },
  { name: 'password in a JSON DSN', detector: 'password_in_url', text: '{"dsn":"mysql://root:p%40ss@10.0.0.5/db"}', spans: ['p%40ss'] },
  { name: 'password with empty user', detector: 'password_in_url', text: 'redis://:hunter2@cache:6379/0', spans: ['hunter2'] },
  { name: 'password containing a raw @', detector: 'password_in_url', text: 'amqp://guest:p@ss@rabbit/vhost', spans: ['p@ss'] },
  { name: 'email as the user name', detector: 'password_in_url', text: 'smtp://bob@example.com:pw123@mail.example.com:587', spans: ['pw123'] },
];

// None of these may produce any finding, with every detector enabled.
const NEGATIVES: readonly string[] = [
  // the shared table from the brief
  '2024-01-15',
  '2024-01-15T10:20:30Z',
  '2024-01-15T10:20:30.123+05:30',
  '12:30:45',
  '123e4567-e89b-12d3-a456-426614174000',
  '192.168.1.20',
  '100234',
  '1234.56',
  'v1.2.3',
  '4111111111111112',
  'GB82WEST12345698765433',
  '000-12-3456',
  'order ORD-2024-000123',
  'SKU-12345-XL',
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  'apple banana cherry delta echo foxtrot golf hotel india juliet',
  // the same values in a CSV row and in JSON
  '100234,2024-01-15,1234.56,192.168.1.20,v1.2.3,SKU-12345-XL',
  '{"id":"123e4567-e89b-12d3-a456-426614174000","at":"2024-01-15T10:20:30Z","total":1234.56}',
  // email
  'user@localhost',
  'ping @example.com or bob@ later',
  'a@b.c',
  // credit_card
  '41111111111111110', // a valid card inside a longer digit run
  '1700000000004', // epoch milliseconds, passes Luhn
  '4111 1111 1111 1112',
  '5500-0000-0000-0005',
  // ssn
  '666-12-3456',
  '900-12-3456',
  '123-00-4567',
  '123-45-0000',
  '123-45 6789',
  // phone
  '+12345678.90',
  '+1234567',
  '4155550132',
  '1.2.3.4',
  '10.0.0.255:5432',
  'build 2024.01.15.1234',
  // iban
  'GB82 WEST 1234 5698 7654 33',
  'XX00TEST00000000000',
  // jwt
  'eyJhbGciOiJIUzI1NiJ9.notajwt.sig',
  'abc.def.ghi',
  // aws_key
  'AKIAIOSFODNN7EXAMPL',
  'AKIAIOSFODNN7EXAMPLE1',
  'akiaiosfodnn7example',
  `value ${AWS_SECRET}`, // a 40-char token without context
  // private_key
  '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----',
  '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
  'the PRIVATE KEY column is empty',
  // password_in_url
  'https://example.com:8443/path',
  'postgres://app@db.internal/orders',
  'https://user@example.com/',
  'see https://example.com/a:b@c',
];

describe('DETECTOR_NAMES', () => {
  it('lists every detector once', () => {
    expect([...DETECTOR_NAMES].sort()).toEqual(
      [
        ...['aws_key', 'credit_card', 'email', 'iban', 'jwt', 'password_in_url', 'phone', 'private_key', 'ssn'],
        ...['stripe_key', 'github_token', 'gitlab_token', 'slack_token', 'slack_webhook', 'google_api_key', 'gcp_service_account'],
        ...['openai_key', 'anthropic_key', 'npm_token', 'azure_connection_string', 'sendgrid_key', 'twilio_key', 'auth_header', 'secret_assignment'],
      ].sort(),
    );
    expect(new Set(DETECTOR_NAMES).size).toBe(DETECTOR_NAMES.length);
  });
});

describe('findSensitive: true positives', () => {
  it.each(POSITIVES)('$name (only its detector)', ({ detector, text, spans }) => {
    expect(findSensitive(text, [detector])).toEqual(expectedFindings(text, detector, spans));
  });

  it.each(POSITIVES)('$name (all detectors)', ({ detector, text, spans }) => {
    expect(spansOf(text, findSensitive(text, DETECTOR_NAMES))).toEqual(spans.map((s) => `${detector}:${s}`));
  });

  it('covers every detector outside the secret catalog (catalog.test.ts covers those)', () => {
    const catalog: readonly DetectorName[] = [...SECRET_DETECTOR_NAMES, ...ASSIGNMENT_DETECTOR_NAMES];
    expect(new Set(POSITIVES.map((c) => c.detector))).toEqual(new Set(DETECTOR_NAMES.filter((d) => !catalog.includes(d))));
  });

  it('an AWS secret too short for aws_key is still masked by its name (secret_assignment)', () => {
    const text = 'aws_secret_access_key = tooShortToBeAKey';
    expect(findSensitive(text, ['aws_key'])).toEqual([]);
    expect(spansOf(text, findSensitive(text, DETECTOR_NAMES))).toEqual(['secret_assignment:tooShortToBeAKey']);
  });
});

describe('findSensitive: false positives', () => {
  it.each(NEGATIVES.map((text) => ({ text })))('nothing in $text', ({ text }) => {
    expect(spansOf(text, findSensitive(text, DETECTOR_NAMES))).toEqual([]);
  });
});

describe('findSensitive: combining and overlaps', () => {
  it('returns findings sorted by start across detectors', () => {
    const text =
      `7,alice@example.com,4111 1111 1111 1111,123-45-6789,(415) 555-0132,DE89 3704 0044 0532 0130 00,` +
      `${JWT},AKIAIOSFODNN7EXAMPLE,postgres://app:s3cr3t@db.internal:5432/orders`;
    expect(spansOf(text, findSensitive(text, DETECTOR_NAMES))).toEqual([
      'email:alice@example.com',
      'credit_card:4111 1111 1111 1111',
      'ssn:123-45-6789',
      'phone:(415) 555-0132',
      'iban:DE89 3704 0044 0532 0130 00',
      `jwt:${JWT}`,
      'aws_key:AKIAIOSFODNN7EXAMPLE',
      'password_in_url:s3cr3t',
    ]);
  });

  it('keeps the earliest-starting, longest span when two detectors overlap', () => {
    // "+1 123-45-6789" is an E.164 phone number that contains an SSN shape.
    const text = 'call +1 123-45-6789';
    expect(spansOf(text, findSensitive(text, ['ssn']))).toEqual(['ssn:123-45-6789']);
    expect(spansOf(text, findSensitive(text, ['phone']))).toEqual(['phone:+1 123-45-6789']);
    expect(spansOf(text, findSensitive(text, ['ssn', 'phone']))).toEqual(['phone:+1 123-45-6789']);
  });

  it('masks only the password of URL userinfo even with the email detector on', () => {
    const text = 'postgres://app:s3cr3t@db.internal:5432/orders';
    expect(findSensitive(text, ['email'])).toEqual([]);
    expect(spansOf(text, findSensitive(text, ['email', 'password_in_url']))).toEqual(['password_in_url:s3cr3t']);
  });

  it('only runs the requested detectors', () => {
    const text = 'alice@example.com 123-45-6789';
    expect(spansOf(text, findSensitive(text, ['ssn']))).toEqual(['ssn:123-45-6789']);
    expect(findSensitive(text, [])).toEqual([]);
  });

  it('ignores a repeated detector name', () => {
    const text = 'alice@example.com';
    expect(findSensitive(text, ['email', 'email'])).toEqual(findSensitive(text, ['email']));
  });

  it('finds nothing in an empty string', () => {
    expect(findSensitive('', DETECTOR_NAMES)).toEqual([]);
  });

  it('throws a TypeError for an unknown detector', () => {
    expect(() => findSensitive('x', ['nope' as DetectorName])).toThrow(TypeError);
  });

  it('is stable across calls (no regex state leaks between texts)', () => {
    const a = 'x 123-45-6789 y 123-45-6789';
    const b = '123-45-6789';
    expect(findSensitive(a, ['ssn'])).toHaveLength(2);
    expect(findSensitive(b, ['ssn'])).toEqual([{ detector: 'ssn', start: 0, end: 11 }]);
  });
});

describe('luhnValid', () => {
  it.each([
    ['4111111111111111', true],
    ['5500000000000004', true],
    ['378282246310005', true],
    ['79927398713', true],
    ['4111111111111112', false],
    ['79927398710', false],
    ['4111 1111 1111 1111', false], // digits only
    ['', false],
    ['0', false],
    ['41111111111111a1', false],
  ] as const)('%s -> %s', (digits, valid) => {
    expect(luhnValid(digits)).toBe(valid);
  });
});

describe('ibanValid', () => {
  it.each([
    ['GB82WEST12345698765432', true],
    ['DE89 3704 0044 0532 0130 00', true],
    ['NL91ABNA0417164300', true],
    ['BE68539007547034', true],
    ['gb82west12345698765432', true],
    ['GB82WEST12345698765433', false],
    ['GB82WEST1234', false], // too short
    ['1282WEST12345698765432', false], // country must be letters
    ['GBX2WEST12345698765432', false], // check digits must be digits
    ['GB82WEST1234569876543!', false],
    ['', false],
  ] as const)('%s -> %s', (iban, valid) => {
    expect(ibanValid(iban)).toBe(valid);
  });
});

describe('findSensitive: large and hostile input', () => {
  const MB = 1 << 20;
  const fill = (unit: string): string => unit.repeat(Math.ceil(MB / unit.length)).slice(0, MB);

  it('scans 1 MB of ordinary text with all detectors', () => {
    const paragraph =
      'On 2024-01-15T10:20:30Z order ORD-2024-000123 (SKU-12345-XL, qty 3) was paid 1234.56 EUR ' +
      'from 192.168.1.20 by customer 100234 using client v1.2.3; trace 123e4567-e89b-12d3-a456-426614174000 ' +
      'and digest e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855. Contact ops@example.com.\n';
    const count = Math.ceil(MB / paragraph.length);
    const text = paragraph.repeat(count);
    expect(text.length).toBeGreaterThanOrEqual(MB);
    const findings = findSensitive(text, DETECTOR_NAMES);
    expect(findings).toHaveLength(count);
    expect(findings.every((f) => f.detector === 'email')).toBe(true);
  });

  // Inputs shaped to provoke backtracking in each pattern; they must finish
  // (vitest's timeout is the only bound; no timing is asserted).
  it.each([
    ['digits', '1'.repeat(MB)],
    ['grouped digits', fill('4111 ')],
    ['dashed digits', fill('123-')],
    ['at signs', '@'.repeat(MB)],
    ['long local parts', fill(`${'a'.repeat(70)}@`)],
    ['dotted labels', `a@${fill('a.')}`],
    ['eyJ runs', fill('eyJ')],
    ['unterminated jwt', `eyJ${'a'.repeat(MB)}`],
    ['BEGIN markers', fill('-----BEGIN PRIVATE KEY-----')],
    ['plus signs', fill('+1 (')],
    ['scheme separators', fill('a://b:')],
    ['iban-like groups', `GB82${fill(' ABCD')}`],
    ['secret context words', fill('aws_secret_access_key= ')],
  ] as const)('finishes on %s', (_name, text) => {
    expect(Array.isArray(findSensitive(text, DETECTOR_NAMES))).toBe(true);
  });
});
