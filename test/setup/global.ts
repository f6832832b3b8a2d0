// Vitest globalSetup: one throwaway PostgreSQL cluster for the whole test run,
// seeded with the demo "shop" database. Provides connection URLs to tests via
// inject(); tests must not stop the cluster or assume they are alone in it.

import type { TestProject } from 'vitest/node';
import { startCluster } from '../../dev/cluster.js';
import { seedDemo } from '../../dev/seed.js';

declare module 'vitest' {
  export interface ProvidedContext {
    pgSuperuserUrl: string;
    pgGatewayUrl: string;
    pgDatabase: string;
    /** A seeded database nobody connects to, for `CREATE DATABASE … TEMPLATE` (see test/support/fixtures.ts). */
    pgTemplate: string;
    /** Superuser URL of the maintenance database `postgres`. */
    pgAdminUrl: string;
    pgGatewayPassword: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const debug = process.env['DRAWBRIDGE_DEVDB_DEBUG'] === '1';
  const cluster = await startCluster(debug ? { log: (line) => process.stderr.write(`[devdb] ${line}\n`) } : {});
  try {
    const password = 'gateway-test-password';
    const seeded = await seedDemo(cluster, { gatewayPassword: password });
    await seedDemo(cluster, { database: 'shop_template', gatewayPassword: password });
    project.provide('pgTemplate', 'shop_template');
    project.provide('pgAdminUrl', cluster.superuserUrl);
    project.provide('pgGatewayPassword', password);
    project.provide('pgSuperuserUrl', seeded.superuserUrl);
    project.provide('pgGatewayUrl', seeded.gatewayUrl);
    project.provide('pgDatabase', seeded.database);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return async () => {
    await cluster.stop();
  };
}
