// Human units in configuration: durations ("10s", "500ms", "15m") and sizes
// ("1MiB", "500KB"). Parsed once by the config schema into numbers.

import { z } from 'zod';

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_BYTES: Record<string, number> = { B: 1, KB: 1000, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3 };

/** A duration like "10s" → milliseconds. Plain numbers are refused: the unit must be explicit. */
export const durationSchema = z.union([z.string(), z.number()]).transform((value, ctx) => {
  if (typeof value === 'number') {
    ctx.addIssue({ code: 'custom', message: `${value} has no unit; write e.g. ${value}s or ${value}ms` });
    return z.NEVER;
  }
  const match = DURATION.exec(value.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration; write e.g. 500ms, 10s, 15m or 1h` });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * (DURATION_MS[match[2] ?? 'ms'] ?? 1));
});

/** A size like "1MiB" → bytes; a plain integer is bytes. */
export const sizeSchema = z.union([z.number().int().positive(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const match = SIZE.exec(value.trim());
  if (!match) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a size; write e.g. 512KiB, 1MiB or 1000000` });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * (SIZE_BYTES[match[2] ?? 'B'] ?? 1));
});

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function formatSize(bytes: number): string {
  if (bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024}KiB`;
  return `${bytes}B`;
}
