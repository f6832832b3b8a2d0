// Config directories for kubectl tests: a `staging` connection to the fake API
// server (namespace shop, impersonation on), the kubectl tool, a local identity,
// the given rules and detector masking. One place, so the test files differ
// only in their rules.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FakeKube } from './fake-kube/server.js';

export const STAGING_TOOLS = `kind: connection
name: staging
type: kubernetes
description: fake cluster
kubeconfig: { file: kubeconfig }
namespace: shop
impersonate: true
---
kind: tool
name: kubectl
type: kubectl
connections: [staging]
`;

export interface KubeConfigOptions {
  /** YAML list items under `rules:` (indented two spaces). */
  readonly rules: string;
  /** The whole tools/cluster.yaml; default STAGING_TOOLS. */
  readonly tools?: string;
  /** YAML flow mapping for `approval:`; default no waiting. */
  readonly approval?: string;
  readonly identity?: { readonly subject: string; readonly groups: readonly string[] };
}

/** Writes the directory (kubeconfig for the fake included) and returns its path; the caller removes it. */
export function writeKubeConfigDir(fake: FakeKube, options: KubeConfigOptions): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-kube-'));
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'kubeconfig'), fake.kubeconfig('shop'));
  writeFileSync(join(dir, 'tools', 'cluster.yaml'), options.tools ?? STAGING_TOOLS);
  const identity = options.identity ?? { subject: 'dev@example.com', groups: ['developers'] };
  writeFileSync(
    join(dir, 'policies', 'gateway.yaml'),
    `kind: gateway
identity: { mode: local, subject: ${identity.subject}, groups: [${identity.groups.join(', ')}] }
journal: { path: journal.db }
approval: ${options.approval ?? '{ wait: 0ms, store: approvals.db }'}
`,
  );
  writeFileSync(
    join(dir, 'policies', 'rules.yaml'),
    `kind: policy
rules:
${options.rules}
masking:
  - name: detectors
    match: { tool: kubectl }
    detectors: all
`,
  );
  return dir;
}
