// Server-side Tables (meta.k8s.io/v1) as structured columns and rows, with
// kubectl's column choices (wide, NAMESPACE for -A, TYPE/ prefix for several
// types, ages for dates): the gateway renders its own text table from them.
// Pure; the caller masks the table's objects first.

import { isRecord } from '../mask.js';
import { ageOf, RFC3339 } from './age.js';

export type TableCell = string | number | boolean | null;

export interface TableInput {
  columnDefinitions: Array<{ name: string; type: string; format?: string; priority?: number }>;
  rows: Array<{ cells: unknown[]; object?: unknown }>;
}

export interface TableOptions {
  /** -o wide: include columns with priority > 0. */
  wide: boolean;
  /** --no-headers: accepted for the caller's text renderer; the structured columns are returned either way. */
  noHeaders?: boolean;
  /** Prefix for the NAME column ("pod" → "pod/web-1"), as kubectl does when several types are listed. */
  showKind?: string | null;
  /** -A: a NAMESPACE column first, from row.object.metadata.namespace. */
  namespaceColumn?: boolean;
  /** For date columns (RFC 3339 cells become ages). */
  now: Date;
}

/** A server-side Table (meta.k8s.io/v1) as structured columns and rows, with kubectl's column choices. */
export function renderTable(
  table: TableInput,
  options: TableOptions,
): { columns: Array<{ name: string; type: string }>; rows: Array<Array<string | number | boolean | null>> } {
  const defs = Array.isArray(table.columnDefinitions) ? table.columnDefinitions : [];
  const picked: Array<{ index: number; def: TableInput['columnDefinitions'][number] }> = [];
  defs.forEach((def, index) => {
    if (options.wide || (def.priority ?? 0) <= 0) picked.push({ index, def });
  });
  const nameIndex = picked.findIndex(({ def }) => def.format === 'name' || def.name.toLowerCase() === 'name');
  const isDate = picked.map(({ def }) => def.type === 'date' || def.format === 'date');

  const columns: Array<{ name: string; type: string }> = [];
  if (options.namespaceColumn === true) columns.push({ name: 'NAMESPACE', type: 'string' });
  picked.forEach(({ def }, i) => columns.push({ name: def.name.toUpperCase(), type: isDate[i] === true ? 'string' : def.type }));

  const rows: TableCell[][] = [];
  for (const row of Array.isArray(table.rows) ? table.rows : []) {
    const cells = Array.isArray(row.cells) ? row.cells : [];
    const out: TableCell[] = [];
    if (options.namespaceColumn === true) {
      const meta = isRecord(row.object) ? row.object['metadata'] : undefined;
      const ns = isRecord(meta) ? meta['namespace'] : undefined;
      out.push(typeof ns === 'string' ? ns : '');
    }
    picked.forEach(({ index }, i) => {
      const raw = cells[index];
      let cell: TableCell;
      if (isDate[i] === true && typeof raw === 'string' && RFC3339.test(raw)) cell = ageOf(raw, options.now);
      else cell = tableCell(raw);
      if (i === nameIndex && typeof options.showKind === 'string' && options.showKind !== '' && typeof cell === 'string') {
        cell = `${options.showKind}/${cell}`;
      }
      out.push(cell);
    });
    rows.push(out);
  }
  return { columns, rows };
}

function tableCell(raw: unknown): TableCell {
  if (raw === null || raw === undefined) return null;
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : String(raw);
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'string') {
    // kubectl: truncate at the first newline, carriage return or form feed.
    const cut = raw.search(/[\f\n\r]/);
    return cut < 0 ? raw : `${raw.slice(0, cut)}...`;
  }
  if (typeof raw === 'object') return JSON.stringify(raw);
  return String(raw);
}
