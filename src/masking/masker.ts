// The mask stage: applies the masking rules that apply to this call to a
// result (columns by lineage, then content detectors on every value) and to
// free text (error messages, notices). Reports what was masked — column,
// detector or a backend's field masks, and a count — never the values. How a
// backend's error text quotes data is the backend's (BackendDefinition.redactQuoted).

import { TEXT_PART, UNKNOWN_SOURCE, type Cell, type ParsedRequest, type RedactQuoted, type TabularResult } from '../backends/backend.js';
import type { Identity } from '../identity/identity.js';
import { anyGlob, qualifiedMatch } from '../policy/match.js';
import { findSensitive, type DetectorName } from './detectors.js';
import { compilePattern, type MaskingRule } from './rules.js';
import { maskValue, type MaskStyle } from './styles.js';

/** What a mask was applied by: a column rule, a content detector (or operator pattern), or a backend's own masking of a field. */
type MaskedBy = 'column' | 'detector' | 'field';

export interface MaskCount {
  /** The column (table.column), detector name, or field target (secret.data, env, …). */
  readonly target: string;
  readonly by: MaskedBy;
  readonly rule: string;
  readonly count: number;
}

/** The rule name reported for masks a backend applies by itself, whatever the policy says. */
export const BUILT_IN_RULE = 'built-in';
/** Rule names of the masker's own: a notice withheld because the request read masked data, values an error text quoted. */
const WITHHELD_RULE = 'withheld';
const QUOTED_VALUES_RULE = 'quoted-values';
/** Every rule name a MaskCount may carry besides the names declared in masking rules (metrics label them as such). */
export const GATEWAY_MASK_RULES: readonly string[] = [BUILT_IN_RULE, WITHHELD_RULE, QUOTED_VALUES_RULE];

/** Options of maskText. */
interface MaskTextOptions {
  /**
   * Exact strings no detector or pattern masks in this text: the caller's own
   * subject and groups in a refusal message ("No rule allows … for
   * dev@example.com"). The caller knows them already; masking them only makes
   * the refusal unreadable. Nothing else is exempt, and only whole findings
   * equal to one of these strings are kept.
   */
  readonly exempt?: readonly string[];
}

/** Sums two mask reports (same target, by and rule add up), keeping first-seen order. */
export function mergeMaskCounts(a: readonly MaskCount[], b: readonly MaskCount[]): MaskCount[] {
  const out = new Map<string, MaskCount>();
  for (const m of [...a, ...b]) {
    const k = `${m.by}\u0000${m.target}\u0000${m.rule}`;
    const seen = out.get(k);
    out.set(k, seen ? { ...seen, count: seen.count + m.count } : { ...m });
  }
  return [...out.values()];
}

interface ColumnPattern {
  readonly pattern: string;
  readonly style: MaskStyle;
  readonly rule: string;
}

export interface Masker {
  /** True when some column rule applies: the call's data may include masked columns. */
  readonly hasColumnRules: boolean;
  /**
   * Masks a result. Notices are free text a function wrote, possibly from data the
   * request cannot show (RAISE NOTICE '%', value): when the request read a masked
   * column (or data of unknown origin) they are withheld, else the detectors run.
   */
  maskResult(result: TabularResult, request?: Pick<ParsedRequest, 'reads' | 'input'> | null): { result: TabularResult; masked: MaskCount[] };
  /**
   * Masks free text that may carry data (errors). When the request read a masked
   * column (or data of unknown origin), the values the backend's error text quotes
   * are redacted first (its redactQuoted), unless a value is text the agent sent
   * itself; then the detectors run on the whole text.
   */
  maskText(text: string, request: Pick<ParsedRequest, 'reads' | 'input'> | null, options?: MaskTextOptions): { text: string; masked: MaskCount[] };
}

/**
 * Column types whose text form cannot hold anything a detector looks for (no
 * letters beyond a fixed format, at most 10 digits in a run): scanning them is
 * pure cost. int8, numeric and floats ARE scanned — a card number fits in them.
 */
const UNSCANNED_TYPES: ReadonlySet<string> = new Set(['bool', 'int2', 'int4', 'oid', 'date', 'time', 'timetz', 'timestamp', 'timestamptz', 'interval', 'uuid']);

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

/**
 * A masker for the rules that apply to a call. `redactQuoted` is how the called
 * backend's error text quotes values (none: error text is only scanned by the detectors).
 */
export function createMasker(rules: readonly MaskingRule[], key: Uint8Array, redactQuoted: RedactQuoted = (text) => text): Masker {
  const columns: ColumnPattern[] = rules.flatMap((r) =>
    r.columns.map((c) => (typeof c === 'string' ? { pattern: c, style: r.style, rule: r.name } : { pattern: c.column, style: c.style, rule: r.name })),
  );
  // Each detector masks with the style of the first rule that enables it.
  const detectorStyle = new Map<DetectorName, { style: MaskStyle; rule: string }>();
  for (const r of rules) for (const d of r.detectors) if (!detectorStyle.has(d)) detectorStyle.set(d, { style: r.style, rule: r.name });
  const detectors = [...detectorStyle.keys()];

  const counter = () => {
    const counts = new Map<string, { target: string; by: MaskedBy; rule: string; count: number }>();
    return {
      add(target: string, by: MaskedBy, rule: string, n = 1) {
        if (n <= 0) return;
        const k = `${by}\u0000${target}\u0000${rule}`;
        const c = counts.get(k);
        if (c) c.count += n;
        else counts.set(k, { target, by, rule, count: n });
      },
      list: (): MaskCount[] => [...counts.values()],
    };
  };

  const columnRule = (sources: readonly string[]): { pattern: ColumnPattern; label: string } | null => {
    for (const source of sources) {
      if (source === UNKNOWN_SOURCE) {
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

  const patterns = rules.flatMap((r) => (r.patterns ?? []).map((p) => ({ re: compilePattern(p), rule: r.name, style: r.style })));

  /** Operator patterns: mask the last capture group of each match (the value), keep the rest (the key). */
  const applyPatterns = (text: string, count: ReturnType<typeof counter>, exempt: ReadonlySet<string>): string => {
    let out = text;
    for (const p of patterns) {
      p.re.lastIndex = 0;
      let result = '';
      let at = 0;
      for (const m of out.matchAll(p.re)) {
        const indices = m.indices;
        if (!indices || m[0] === '') continue;
        let group = indices.length - 1;
        while (group > 0 && indices[group] === undefined) group--;
        const span = indices[group];
        if (!span) continue;
        if (exempt.size > 0 && exempt.has(out.slice(span[0], span[1]))) continue;
        result += out.slice(at, span[0]) + maskValue(out.slice(span[0], span[1]), p.style, key, `pattern:${p.rule}`);
        at = span[1];
        count.add(`pattern:${p.rule}`, 'detector', p.rule);
      }
      out = at === 0 ? out : result + out.slice(at);
    }
    return out;
  };

  const NO_EXEMPTIONS: ReadonlySet<string> = new Set();

  const scan = (input: string, count: ReturnType<typeof counter>, exempt: ReadonlySet<string> = NO_EXEMPTIONS): string => {
    const text = patterns.length > 0 && input.length > 0 ? applyPatterns(input, count, exempt) : input;
    if (detectors.length === 0 || text.length === 0) return text;
    const findings = findSensitive(text, detectors);
    if (findings.length === 0) return text;
    let out = '';
    let at = 0;
    for (const f of findings) {
      const how = detectorStyle.get(f.detector);
      if (!how) continue;
      // Security decision: only a finding that is exactly one of the exempt strings
      // (the caller's own subject or a group) stays; one that merely contains it,
      // or is contained in it, is masked as usual.
      if (exempt.size > 0 && exempt.has(text.slice(f.start, f.end))) continue;
      out += text.slice(at, f.start) + maskValue(text.slice(f.start, f.end), how.style, key, f.detector);
      at = f.end;
      count.add(f.detector, 'detector', how.rule);
    }
    return out + text.slice(at);
  };

  /** True when the request read a masked column or data of unknown origin. */
  const readsMasked = (request: Pick<ParsedRequest, 'reads'> | null | undefined): boolean =>
    request !== null && request !== undefined && columns.length > 0 && request.reads.some((s) => columnRule([s]) !== null);

  return {
    hasColumnRules: columns.length > 0,
    maskResult(result, request = null) {
      const count = counter();
      // Masks the backend applied by field before the rows were built (Kubernetes
      // Secret data, credential env values, …) count like any other mask.
      for (const f of result.fieldMasks ?? []) count.add(f.target, 'field', BUILT_IN_RULE, f.count);
      const plan = result.columns.map((c) => columnRule(c.sources));
      const scanned = result.columns.map((c) => !UNSCANNED_TYPES.has(c.type));
      const rows = result.rows.map((row) =>
        row.map((cell, i): Cell => {
          if (cell === null) return null;
          const rule = plan[i];
          if (rule) {
            count.add(rule.label, 'column', rule.pattern.rule);
            return maskValue(String(cell), rule.pattern.style, key, rule.label);
          }
          if (typeof cell === 'boolean' || !scanned[i]) return cell;
          const text = String(cell);
          const masked = scan(text, count);
          return masked === text ? cell : masked;
        }),
      );
      const withhold = readsMasked(request);
      const notices = result.notices.map((n) => {
        if (!withhold) return scan(n, count);
        count.add('notice', 'column', WITHHELD_RULE);
        return '[masked: notice withheld, the statement read masked data]';
      });
      return { result: { ...result, rows, notices }, masked: count.list() };
    },
    maskText(text, request, options = {}) {
      const count = counter();
      const exempt: ReadonlySet<string> = new Set((options.exempt ?? []).filter((s) => s.length > 0));
      let out = text;
      if (request && readsMasked(request)) {
        // A value the agent sent itself is not data the request read: it stays.
        const sent = JSON.stringify(request.input);
        const keep = (value: string) => value.length > 0 && (sent.includes(value) || sent.includes(JSON.stringify(value).slice(1, -1)));
        out = redactQuoted(out, keep, () => count.add('error-text', 'column', QUOTED_VALUES_RULE));
      }
      out = scan(out.split(TEXT_PART).join(' '), count, exempt);
      return { text: out, masked: count.list() };
    },
  };
}
