// Small helpers shared by the benchmark sections: percentiles, number
// formatting, Markdown tables, a deterministic PRNG, temp dirs that are
// removed at the end (or on a hard timeout), and a description of the machine.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, platform, release, tmpdir } from 'node:os';
import { join } from 'node:path';

// ---------------------------------------------------------------------------
// Statistics

/** Nearest-rank percentile (p in 0..100) of a non-empty sample. */
export function percentile(sample: readonly number[], p: number): number {
  if (sample.length === 0) throw new RangeError('percentile of an empty sample');
  const sorted = [...sample].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

export interface RoundRobinSample {
  readonly target: string;
  readonly calls: number;
  readonly p50: number;
  readonly p95: number;
}

/**
 * Interleaved round-robin timing: each round calls every target once, rotating
 * which goes first, so drift (CPU frequency, other load) hits all of them alike.
 * The first `warmup` rounds are not timed. `check` sees each answer untimed,
 * with its round, and throws when an answer is wrong.
 */
export async function roundRobin<T extends { readonly name: string }>(
  targets: readonly T[],
  options: { readonly warmup: number; readonly calls: number },
  call: (target: T) => Promise<unknown>,
  check: (target: T, answer: unknown, round: number, rounds: number) => void,
): Promise<RoundRobinSample[]> {
  const times = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const rounds = options.warmup + options.calls;
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < targets.length; k++) {
      const target = targets[(round + k) % targets.length] as T;
      const t0 = performance.now();
      const answer = await call(target);
      const elapsed = performance.now() - t0;
      check(target, answer, round, rounds);
      if (round >= options.warmup) times.get(target.name)?.push(elapsed);
    }
  }
  return targets.map((t) => {
    const sample = times.get(t.name) ?? [];
    return { target: t.name, calls: sample.length, p50: percentile(sample, 50), p95: percentile(sample, 95) };
  });
}

export function median(sample: readonly number[]): number {
  return percentile(sample, 50);
}

/** Runs `fn` `times` times and returns the median wall time in ms. */
export function medianMs(times: number, fn: () => void): number {
  const sample: number[] = [];
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    fn();
    sample.push(performance.now() - t0);
  }
  return median(sample);
}

// ---------------------------------------------------------------------------
// Formatting

/** ms with sensible precision: 0.123, 1.23, 12.3, 123. */
export function ms(value: number): string {
  if (value < 1) return value.toFixed(3);
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return value.toFixed(0);
}

export function ratio(value: number): string {
  return `${value.toFixed(value < 10 ? 2 : 1)}×`;
}

/** 1234567 → "1,234,567" (no locale surprises). */
export function int(value: number): string {
  return Math.round(value)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, align?: readonly ('l' | 'r')[]): string {
  const sep = header.map((_, i) => ((align?.[i] ?? (i === 0 ? 'l' : 'r')) === 'r' ? '---:' : ':---'));
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(sep), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------
// Deterministic pseudo-random numbers (mulberry32), so every run measures the same data

export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T;
}

// ---------------------------------------------------------------------------
// Temp dirs, removed by cleanupTempDirs() (also called on the hard timeout)

const tempDirs = new Set<string>();

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `drawbridge-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export function cleanupTempDirs(): void {
  for (const dir of [...tempDirs]) removeTempDir(dir);
}

// ---------------------------------------------------------------------------
// The machine

export interface MachineInfo {
  readonly date: string;
  readonly node: string;
  readonly cpu: string;
  readonly cores: number;
  readonly os: string;
  /** Filesystem type of the temp dir (where the journals live), e.g. ext4 or tmpfs. */
  readonly tmpFs: string;
}

function filesystemOf(path: string): string {
  try {
    // The longest mount point that prefixes `path`.
    let best = { point: '', type: 'unknown' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, point, type] = line.split(' ');
      if (point === undefined || type === undefined) continue;
      const isPrefix = path === point || path.startsWith(point.endsWith('/') ? point : `${point}/`);
      if (isPrefix && point.length >= best.point.length) best = { point, type };
    }
    return best.type;
  } catch {
    return 'unknown';
  }
}

export function machineInfo(): MachineInfo {
  const cpuList = cpus();
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    node: process.version,
    cpu: (cpuList[0]?.model ?? 'unknown').replace(/\s+/g, ' ').trim(),
    cores: cpuList.length,
    os: `${platform()} ${release()}`,
    tmpFs: `${tmpdir()} (${filesystemOf(tmpdir())})`,
  };
}
