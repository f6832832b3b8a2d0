import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Vitest's default is one worker fewer than the cores (2 cores: one file at a time). Most files
    // wait on I/O (PostgreSQL, sshd, child processes, HTTP), so three files run side by side.
    // Each file has its own databases, ports (from 0), directories and sshd; the one cluster
    // is shared by design. `--maxWorkers=1` runs them one by one again.
    maxWorkers: 3,
  },
});
