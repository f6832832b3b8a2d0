// The mask stage: applies the masking rules that apply to this call to a
// result (columns by lineage, then content detectors on every value) and to
// free text (error messages, notices). Reports what was masked — column or
// detector and a count — never the values.

import type { Cell, ParsedRequest, TabularResult } from '../backends/backend.js';
import type { Identity } from '../identity/identity.js';
import { anyGlob, qualifiedMatch } from '../policy/match.js';
import { findSensitive, type DetectorName } from './detectors.js';
import type { MaskingRule } from './rules.js';
import { maskValue, type MaskStyle } from './styles.js';

export interface MaskCount {
  /** The column (table.column) or detector name. */
  readonly target: string;
  readonly by: 'column' | 'detector';
  readonly rule: string;
  readonly count: number;
}

/** Marks a value whose origin lineage could not establish (see backends' lineage). */
const OPAQUE = '?';

interface ColumnPattern {
  readonly pattern: string;
  readonly style: MaskStyle;
  readonly rule: string;
}

export interface Masker {
  /** True when some column rule applies: the call's data may include masked columns. */
  readonly hasColumnRules: boolean;
  maskResult(result: TabularResult): { result: TabularResult; masked: MaskCount[] };
  /**
   * Masks free text that may carry data (errors, notices). When the request read a
   * masked column, every quoted value the agent did not itself send is redacted:
   * PostgreSQL quotes the offending value in messages like invalid input syntax.
   */
  maskText(text: string, request: Pick<ParsedRequest, 'reads' | 'input'> | null): { text: string; masked: MaskCount[] };
}

export function applicableRules(rules: readonly MaskingRule[], tool: string, connection: string, identity: Identity): MaskingRule[] {
  return rules.filter((r) => {
    const m = r.match;
    if (m.tool && !anyGlob(m.tool, tool)) return false;
    if (m.connection && !anyGlob(m.connection, connection)) return false;
    if (m.subject && !anyGlob(m.subject, identity.subject)) return false;
    if (m.groups && !identity.groups.some((g) => m.groups?.includes(g))) return false;
    return true;
  });
}

export function createMasker(rules: readonly MaskingRule[], key: Uint8Array): Masker {
  const columns: ColumnPattern[] = rules.flatMap((r) =>
    r.columns.map((c) => (typeof c === 'string' ? { pattern: c, style: r.style, rule: r.name } : { pattern: c.column, style: c.style, rule: r.name })),
  );
  // Each detector masks with the style of the first rule that enables it.
  const detectorStyle = new Map<DetectorName, { style: MaskStyle; rule: string }>();
  for (const r of rules) for (const d of r.detectors) if (!detectorStyle.has(d)) detectorStyle.set(d, { style: r.style, rule: r.name });
  const detectors = [...detectorStyle.keys()];

  const counter = () => {
    const counts = new Map<string, { target: string; by: 'column' | 'detector'; rule: string; count: number }>();
    return {
      add(target: string, by: 'column' | 'detector', rule: string) {
        const k = `${by}\u0000${target}\u0000${rule}`;
        const c = counts.get(k);
        if (c) c.count++;
        else counts.set(k, { target, by, rule, count: 1 });
      },
      list: (): MaskCount[] => [...counts.values()],
    };
  };

  const columnRule = (sources: readonly string[]): { pattern: ColumnPattern; label: string } | null => {
    for (const source of sources) {
      if (source === OPAQUE) {
        // Origin unknown: with any column rule in force, fail closed.
        const first = columns[0];
        if (first) return { pattern: { ...first, style: 'redact' }, label: 'unknown-origin' };
        continue;
      }
      const hit = columns.find((c) => qualifiedMatch(c.pattern, source));
      if (hit) return { pattern: hit, label: source.split('.').slice(-2).join('.') };
    }
    return null;
  };

  const scan = (text: string, count: ReturnType<typeof counter>): string => {
    if (detectors.length === 0 || text.length === 0) return text;
    const findings = findSensitive(text, detectors);
    if (findings.length === 0) return text;
    let out = '';
    let at = 0;
    for (const f of findings) {
      const how = detectorStyle.get(f.detector);
      if (!how) continue;
      out += text.slice(at, f.start) + maskValue(text.slice(f.start, f.end), how.style, key, f.detector);
      at = f.end;
      count.add(f.detector, 'detector', how.rule);
    }
    return out + text.slice(at);
  };

  return {
    hasColumnRules: columns.length > 0,
    maskResult(result) {
      const count = counter();
      const plan = result.columns.map((c) => columnRule(c.sources));
      const rows = result.rows.map((row) =>
        row.map((cell, i): Cell => {
          if (cell === null) return null;
          const rule = plan[i];
          if (rule) {
            count.add(rule.label, 'column', rule.pattern.rule);
            return maskValue(String(cell), rule.pattern.style, key, rule.label);
          }
          if (typeof cell === 'boolean') return cell;
          const text = String(cell);
          const masked = scan(text, count);
          return masked === text ? cell : masked;
        }),
      );
      const notices = result.notices.map((n) => scan(n, count));
      return { result: { ...result, rows, notices }, masked: count.list() };
    },
    maskText(text, request) {
      const count = counter();
      let out = text;
      const readsMasked = request !== null && columns.length > 0 && request.reads.some((s) => columnRule([s]) !== null);
      if (readsMasked) {
        const sent = JSON.stringify(request.input);
        const keep = (value: string) => value.length > 0 && sent.includes(value);
        out = out
          .replace(/"((?:[^"\\]|\\.)*)"/g, (all, inner: string) => (keep(inner) ? all : (count.add('error-text', 'column', 'quoted-values'), '"[masked]"')))
          .replace(/\)=\(([^)]*)\)/g, (all, inner: string) => (keep(inner) ? all : (count.add('error-text', 'column', 'quoted-values'), ')=([masked])')))
          .replace(/(row contains|Failing row contains) \(.*\)/g, (_all, lead: string) => (count.add('error-text', 'column', 'quoted-values'), `${lead} ([masked])`));
      }
      out = scan(out, count);
      return { text: out, masked: count.list() };
    },
  };
}
