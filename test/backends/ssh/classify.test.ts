// What each parsed ssh_exec command may do to a host: read only in the forms
// that cannot write, admin for programs that run programs (wherever they
// live), write for the rest. Pure and table-driven.

import { describe, expect, it } from 'vitest';
import { classifyCommands } from '../../../src/backends/ssh/classify.js';
import { parseShellCommand } from '../../../src/backends/ssh/parse.js';

const classify = (text: string) => classifyCommands(parseShellCommand(text, { allowPipeline: true }).commands);

const table: Array<[string, 'read' | 'write' | 'admin', RegExp?]> = [
  // Reads.
  ['uptime', 'read'],
  ['systemctl status nginx', 'read'],
  ['/usr/bin/df -h /var', 'read'],
  ['/bin/cat /etc/hostname', 'read'],
  ['sort -u -k2 access.log', 'read'],
  ['uniq -c sorted.txt', 'read'],
  ['date +%s', 'read'],
  ["date -d '1 hour ago' +%H", 'read'],
  ['hostname -f', 'read'],
  ['mount', 'read'],
  ['dmesg -T', 'read'],
  ['ss -tlnp', 'read'],
  ['journalctl -u nginx --since today -n 50', 'read'],
  ['file /bin/ls', 'read'],
  ['top -b -n 1', 'read'],
  ['find /var/log -name "*.gz"', 'read'],
  ['journalctl -u nginx | grep error | tail -n 5', 'read'],
  // Forms of read programs that write.
  ['sort -o /etc/cron.d/x in', 'write', /sort -o writes a file/],
  ['sort -uo /etc/cron.d/x in', 'write', /writes a file/],
  ['sort --output=/etc/cron.d/x in', 'write', /writes a file/],
  ['sort --out=/etc/cron.d/x in', 'write', /writes a file/],
  ['uniq in /etc/cron.d/x', 'write', /second file name/],
  ['date -s 2020-01-01', 'write', /sets the clock/],
  ['date --set=2020-01-01', 'write', /sets the clock/],
  ['date 010112002030', 'write', /sets the clock/],
  ['hostname evil', 'write', /host name/],
  ['hostname -F /tmp/name', 'write', /host name/],
  ['mount /dev/sdb1 /mnt', 'write', /mounts/],
  ['dmesg -C', 'write', /kernel log/],
  ['dmesg --clear', 'write', /kernel log/],
  ['ss -K dst 10.0.0.1', 'write', /kills sockets/],
  ['journalctl --vacuum-time=1s', 'write', /changes the journal/],
  ['journalctl --rotate', 'write', /changes the journal/],
  ['journalctl --cursor-file=/etc/x -n 1', 'write', /writes a file/],
  ['file -C -m /tmp/magic', 'write', /compiled magic/],
  ['sar -o /tmp/data 1 1', 'write', /data file/],
  ['top', 'write', /interactive/],
  ['systemctl restart nginx', 'write', /systemctl restart may change/],
  ['systemctl --now status nginx', 'write'],
  ['journalctl -n 5 | sort -o /tmp/x', 'write', /pipeline.*writes a file/s],
  // Not the system's program: never read.
  ['/tmp/x/cat /etc/hostname', 'write', /not in a system directory/],
  ['/home/u/bin/uptime', 'write', /not in a system directory/],
  ['rm -rf /tmp/x', 'write'],
  ['tee /tmp/x', 'write'],
  // Programs that run programs, by name or by arguments, wherever they live.
  ['bash -c id', 'admin', /bash runs other programs/],
  ['sh -c id', 'admin'],
  ['/tmp/x/sh -c id', 'admin'],
  ['env rm -rf /', 'admin'],
  ['/usr/bin/env id', 'admin'],
  ['xargs rm', 'admin'],
  ['sudo id', 'admin'],
  ['su -c id', 'admin'],
  ['nohup id', 'admin'],
  ['timeout 5 id', 'admin'],
  ['nice id', 'admin'],
  ['watch id', 'admin'],
  ['ssh other id', 'admin'],
  ["find / -exec rm '{}' \\;", 'admin', /find -exec/],
  ['find /tmp -execdir id \\;', 'admin'],
  ['find /tmp -delete', 'admin'],
  ['find /tmp -fprint0 /etc/x', 'admin', /-fprint0/],
  ['awk \'BEGIN{system("id")}\'', 'admin'],
  ["perl -e 'system(1)'", 'admin'],
  ["python3 -c 'import os'", 'admin'],
  ["sed -n '1e id' f", 'admin'],
  ['tar -cf x --to-command=sh .', 'admin', /tar --to-command=sh runs a program/],
  ['tar -cf /dev/null --checkpoint=1 --checkpoint-action=exec=id .', 'admin'],
  ['tar -xIsh -f x', 'admin'],
  ['git -c core.pager=sh log', 'admin'],
  ['sort --compress-program=sh big', 'admin', /runs a program/],
  ['systemctl -H other status nginx', 'admin', /another host/],
  ['less +!id f', 'admin'],
  ['man -P id ls', 'admin'],
  ['journalctl -n 5 | sh', 'admin'],
];

describe('ssh command classification', () => {
  it.each(table)('%j is %s', (text, access, why) => {
    const c = classify(text);
    expect(c.access).toBe(access);
    if (why) expect(c.reasons.join('; ')).toMatch(why);
    expect(c.runsPrograms.length > 0).toBe(access === 'admin');
  });

  it('names each program that runs programs once', () => {
    expect(classify('env x | env y | sh').runsPrograms).toEqual(['env', 'sh']);
  });

  it('says why, pipeline first, the verdict last', () => {
    expect(classify('journalctl -n 5 | grep x').reasons).toEqual(['a pipeline of journalctl | grep', 'read-only program']);
    expect(classify('rm -f x').reasons).toEqual(['a program that may change the host']);
  });
});
