// The example configurations in examples/ load and decide as their comments say.

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { loadParser } from '../../src/backends/postgres/ast.js';
import { makeIdentity } from '../../src/identity/identity.js';
import { evaluate } from '../../src/policy/evaluate.js';

const dev = makeIdentity({ kind: 'local', subject: 'dev@example.com', groups: ['developers'], issuer: 'local' });

describe('examples/ssh', () => {
  const config = loadConfig('examples/ssh');
  const tool = config.tools.get('ssh_exec');
  it.each([
    ['df -h', 'allow'],
    ['journalctl -u nginx | grep error | tail -n 5', 'allow'],
    ['journalctl -u nginx | sh', 'deny'],
    ['systemctl restart nginx', 'approve'],
    ['rm -rf /var/log', 'deny'],
    ['bash -c id', 'deny'],
  ])('%s → %s', async (command, effect) => {
    await loadParser();
    const request = tool!.backend.parse({ connection: 'web', command }, { tool: 'ssh_exec', connection: 'web' });
    expect(evaluate(request, dev, config.rules, new Date()).effect).toBe(effect);
  });
});

describe('examples/kubernetes', () => {
  it('loads with its five rules', () => {
    const config = loadConfig('examples/kubernetes');
    expect(config.tools.has('kubectl')).toBe(true);
    expect(config.rules.map((r) => r.name)).toEqual(['k8s-no-namespace-delete', 'k8s-no-secrets', 'k8s-exec-needs-approval', 'k8s-writes-need-approval', 'k8s-reads']);
  });
});
