// Masking throughput, in process: cells per second through createMasker (all
// detectors plus a column rule) on a realistic 10,000×6 result, and MB/s of the
// content detectors alone on 10 MB of realistic free text (without sensitive
// values, with personal data, and with credentials of every secret-catalog
// family). Data is generated deterministically, so runs are comparable.

import type { TabularResult } from '../src/backends/backend.js';
import { DETECTOR_NAMES, findSensitive } from '../src/masking/detectors.js';
import { createMasker } from '../src/masking/masker.js';
import type { MaskingRule } from '../src/masking/rules.js';
import { fakeSecrets } from '../test/support/fake-secrets.js';
import { int, median, ms, pick, prng, table } from './support.js';

const WORDS = (
  'the customer called about order shipment delayed refund requested invoice account update address changed ' +
  'payment failed retry scheduled escalated to tier two resolved closed pending review warehouse carrier tracking ' +
  'package damaged replacement sent discount applied subscription renewed cancelled migration job finished with ' +
  'warnings latency spike on checkout service deploy rolled back ticket merged duplicate see previous note'
).split(' ');
const FIRST = ['Ada', 'Grace', 'Alan', 'Marie', 'José', 'Zoë', 'Björn', 'Amara', 'Mei', 'Ravi', 'Yuki', 'Fatima', 'Lucas', 'Chloé', 'Kwame', 'Noor'];
const LAST = [
  'Lovelace',
  'Hopper',
  'Turing',
  'Curie',
  'Álvarez',
  'Müller',
  'Lindqvist',
  'Okafor',
  'Chen',
  'Patel',
  'Tanaka',
  'Zahra',
  'Moreau',
  'Dubois',
  'Mensah',
  'Haddad',
];
const CITIES = ['San Francisco', 'New York', 'Chicago', 'Berlin', 'London', 'Paris', 'Amsterdam', 'Madrid', 'Lisbon', 'Toronto'];

/** Sensitive values of every detector kind (public test numbers / documentation examples). */
const PII: readonly string[] = [
  'ada.lovelace@example.com',
  'card 4111 1111 1111 1111 exp 12/27',
  '5555555555554444',
  'SSN 219-09-9999',
  'call +1 (415) 555-0132',
  '212-555-0187',
  'IBAN DE89370400440532013000',
  'GB82 WEST 1234 5698 7654 32',
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
  'AKIAIOSFODNN7EXAMPLE',
  'postgres://app:s3cr3t-pw@db.internal:5432/orders',
];

/**
 * Credentials as they show up in notes and logs: one line of the test suite's
 * fake env file and YAML (every family of the secret catalog, generated, none real).
 */
export const CREDENTIALS: readonly string[] = Object.freeze(
  [...fakeSecrets(42).files['app.env'].split('\n'), ...fakeSecrets(43).files['config.yaml'].split('\n')].filter((line) => /[=:]\s*\S/.test(line)),
);

/** A realistic note: words, order numbers, amounts, dates, ids; with probability `piiRate` one sensitive value (from `pool`). */
export function note(rand: () => number, piiRate: number, pool: readonly string[] = PII): string {
  const parts: string[] = [];
  const n = 8 + Math.floor(rand() * 40);
  for (let i = 0; i < n; i++) {
    const r = rand();
    if (r < 0.06) parts.push(`#${100000 + Math.floor(rand() * 900000)}`);
    else if (r < 0.1) parts.push(`$${(rand() * 500).toFixed(2)}`);
    else if (r < 0.13) parts.push(`2024-0${1 + Math.floor(rand() * 9)}-1${Math.floor(rand() * 10)}T10:${10 + Math.floor(rand() * 50)}:00Z`);
    else if (r < 0.15) parts.push(`req-${Math.floor(rand() * 0xffffffff).toString(16)}`);
    else if (r < 0.16) parts.push(`10.0.${Math.floor(rand() * 255)}.${Math.floor(rand() * 255)}`);
    else parts.push(pick(rand, WORDS));
  }
  if (rand() < piiRate) parts.splice(Math.floor(rand() * parts.length), 0, pick(rand, pool));
  return parts.join(' ');
}

export const TABLE_RULES: MaskingRule[] = [
  { name: 'pii', match: {}, columns: ['support_tickets.email'], detectors: [...DETECTOR_NAMES], patterns: [], style: 'redact' },
];

/** 10,000 × 6: id, customer, email (column rule), city, amount, note (free text, 10% with PII). */
export function realisticResult(rows = 10_000): TabularResult {
  const rand = prng(42);
  const col = (name: string, type: string) => ({ name, type, sources: [`public.support_tickets.${name}`] });
  const data: Array<Array<string | number>> = [];
  for (let i = 1; i <= rows; i++) {
    const first = pick(rand, FIRST);
    const last = pick(rand, LAST);
    data.push([i, `${first} ${last}`, `${first.toLowerCase()}.${i}@example.com`, pick(rand, CITIES), (rand() * 1000).toFixed(2), note(rand, 0.1)]);
  }
  return {
    columns: [col('id', 'int4'), col('customer', 'text'), col('email', 'text'), col('city', 'text'), col('amount', 'numeric'), col('note', 'text')],
    rows: data,
    command: 'SELECT',
    affectedRows: null,
    truncated: null,
    notices: [],
    bytes: 0,
  };
}

export interface MaskingNumbers {
  readonly cells: number;
  readonly medianMs: number;
  readonly cellsPerSecond: number;
  readonly maskedColumn: number;
  readonly maskedDetector: number;
}

export function maskingThroughput(repeats = 7): MaskingNumbers {
  const result = realisticResult();
  const masker = createMasker(TABLE_RULES, new TextEncoder().encode('bench-key'));
  const cells = result.rows.length * result.columns.length;
  const first = masker.maskResult(result);
  const maskedColumn = first.masked.filter((m) => m.by === 'column').reduce((n, m) => n + m.count, 0);
  const maskedDetector = first.masked.filter((m) => m.by === 'detector').reduce((n, m) => n + m.count, 0);
  if (maskedColumn !== result.rows.length) throw new Error(`column rule masked ${maskedColumn} cells, expected ${result.rows.length}`);
  const sample: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    masker.maskResult(result);
    sample.push(performance.now() - t0);
  }
  const m = median(sample);
  return { cells, medianMs: m, cellsPerSecond: cells / (m / 1000), maskedColumn, maskedDetector };
}

export interface ScanNumbers {
  readonly label: string;
  readonly megabytes: number;
  readonly cells: number;
  readonly medianMs: number;
  readonly mbPerSecond: number;
  readonly findings: number;
}

/** ~`megabytes` MB of notes (UTF-8 bytes), scanned cell by cell as the masker does. */
export function detectorThroughput(label: string, piiRate: number, megabytes = 10, repeats = 3, pool: readonly string[] = PII): ScanNumbers {
  const rand = prng(7);
  const cells: string[] = [];
  let bytes = 0;
  while (bytes < megabytes * 1_000_000) {
    const text = note(rand, piiRate, pool);
    cells.push(text);
    bytes += Buffer.byteLength(text);
  }
  let findings = 0;
  const sample: number[] = [];
  for (let i = 0; i < repeats; i++) {
    let count = 0;
    const t0 = performance.now();
    for (const cell of cells) count += findSensitive(cell, DETECTOR_NAMES).length;
    sample.push(performance.now() - t0);
    findings = count;
  }
  const m = median(sample);
  return { label, megabytes: bytes / 1_000_000, cells: cells.length, medianMs: m, mbPerSecond: bytes / 1_000_000 / (m / 1000), findings };
}

/** The "Masking throughput" table of bench/results.md (used by run.ts and masking-only.ts). */
export function maskingTable(masking: MaskingNumbers, scans: readonly ScanNumbers[]): string {
  return table(
    ['Workload', 'Size', 'Median time', 'Throughput', 'Masked'],
    [
      [
        '`createMasker(…).maskResult`: all detectors + a column rule; id, name, email (column rule), city, amount, free-text note (10% with PII)',
        `${int(masking.cells)} cells (10,000 × 6)`,
        `${ms(masking.medianMs)} ms`,
        `${int(masking.cellsPerSecond)} cells/s`,
        `${int(masking.maskedColumn)} by column, ${int(masking.maskedDetector)} by detectors`,
      ],
      ...scans.map((s) => [
        `\`findSensitive\`, all detectors, cell by cell: ${s.label}`,
        `${s.megabytes.toFixed(1)} MB (${int(s.cells)} cells)`,
        `${ms(s.medianMs)} ms`,
        `${s.mbPerSecond.toFixed(1)} MB/s`,
        `${int(s.findings)} findings`,
      ]),
    ],
    ['l', 'r', 'r', 'r', 'r'],
  );
}

/** The scan workloads of the masking section: notes with personal data, with credentials, and with neither. */
export function scanWorkloads(quick: boolean): ScanNumbers[] {
  const megabytes = quick ? 1 : 10;
  const repeats = quick ? 1 : 3;
  return [
    detectorThroughput('notes, 5% with PII', 0.05, megabytes, repeats),
    detectorThroughput('notes, 5% with credentials (every secret-catalog family)', 0.05, megabytes, repeats, CREDENTIALS),
    detectorThroughput('notes, no PII', 0, megabytes, repeats),
  ];
}
