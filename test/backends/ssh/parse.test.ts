// The ssh_exec command grammar: what is accepted as plain argv, and the
// permanent evasion table of shell constructs that must be refused.

import { describe, expect, it } from 'vitest';
import { parseShellCommand, quoteArgv } from '../../../src/backends/ssh/parse.js';
import { DrawbridgeError } from '../../../src/errors.js';

const accepted: Array<[string, string[][]]> = [
  ['uptime', [['uptime']]],
  ['systemctl status nginx', [['systemctl', 'status', 'nginx']]],
  ['/usr/bin/df -h /var', [['/usr/bin/df', '-h', '/var']]],
  ["grep -r 'a b' /etc/nginx", [['grep', '-r', 'a b', '/etc/nginx']]],
  ['grep "quoted \\"x\\" here" f', [['grep', 'quoted "x" here', 'f']]],
  ["echo '$HOME' '`id`' '$(id)'", [['echo', '$HOME', '`id`', '$(id)']]],
  ['ls *.log', [['ls', '*.log']]],
  ['cat a\\ b', [['cat', 'a b']]],
  ['tail -n 100 /var/log/syslog', [['tail', '-n', '100', '/var/log/syslog']]],
  ['journalctl -u nginx --since "1 hour ago"', [['journalctl', '-u', 'nginx', '--since', '1 hour ago']]],
  ['echo a#b', [['echo', 'a#b']]],
  ['  spaced   out  ', [['spaced', 'out']]],
  ["echo ''", [['echo', '']]],
];

const refused: Array<[string, RegExp]> = [
  ['echo $(rm -rf /)', /\$/],
  ['echo `rm -rf /`', /`/],
  ['echo "$(rm -rf /)"', /double quotes/],
  ['echo "`id`"', /double quotes/],
  ['echo $HOME', /\$/],
  ['echo ${HOME}', /\$/],
  ['ls; rm -rf /', /list \(;\)/],
  ['ls && rm -rf /', /&/],
  ['ls || rm -rf /', /\|\|/],
  ['ls & rm -rf /', /&/],
  ['sleep 100 &', /&/],
  ['ls | sh', /pipe/],
  ['cat /etc/passwd > /tmp/x', /redirection/],
  ['cat < /etc/shadow', /redirection|heredoc/],
  ['cat <<EOF', /heredoc|redirection/],
  ['diff <(ls a) <(ls b)', /redirection|substitution/],
  ['(rm -rf /)', /subshell/],
  ['{ rm -rf /; }', /brace/],
  ['echo {a,b}', /brace/],
  ['ls\nrm -rf /', /newline/],
  ['ls\rrm', /carriage/],
  ['ls # rm', /comment/],
  ['FOO=bar ls', /assignment/],
  ['PATH=/tmp ls', /assignment/],
  ["'rm' -rf /", /quoted/],
  ['"rm" -rf /', /quoted/],
  ['\\rm -rf /', /quoted|escaped/],
  ['r"m" -rf /', /quoted/],
  ['./evil', /relative path/],
  ['bin/evil', /relative path/],
  ['~/evil', /glob or tilde/],
  ['/usr/bin/r* -rf /', /glob/],
  ['ls \\\nrm', /line continuation/],
  ['ls\u0000rm', /control/],
  // The shared tokenizer's stricter readings (test/backends/shared/words.test.ts).
  ['echo "\\$HOME"', /escaped \$ inside double quotes/],
  ['echo "\\`id\\`"', /escaped ` inside double quotes/],
  ['echo "a\nrm -rf /"', /newline/],
  ["echo 'a\rb'", /carriage/],
  ['echo a\u0085b', /control/],
  ['echo a\u00a0b', /unusual space/],
  ['echo a\u200bb', /invisible/],
];

describe('ssh command grammar', () => {
  it.each(accepted)('accepts %j', (text, argvs) => {
    const parsed = parseShellCommand(text);
    expect(parsed.commands.map((c) => c.argv)).toEqual(argvs);
  });

  it.each(refused)('refuses %j', (text, why) => {
    let error: unknown;
    try {
      parseShellCommand(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DrawbridgeError);
    expect((error as DrawbridgeError).code).toMatch(/^(ssh\.refused|input\.invalid)$/);
    expect((error as DrawbridgeError).message).toMatch(why);
  });

  it('splits a pipeline only when a rule allows it', () => {
    const parsed = parseShellCommand('journalctl -u nginx | grep error | tail -n 5', { allowPipeline: true });
    expect(parsed.commands.map((c) => c.program)).toEqual(['journalctl', 'grep', 'tail']);
    expect(() => parseShellCommand('ls || x', { allowPipeline: true })).toThrow(/\|\|/);
    expect(() => parseShellCommand('ls | | x', { allowPipeline: true })).toThrow(/empty pipeline stage/);
  });

  it('re-quotes argv so the remote shell sees literal words', () => {
    expect(quoteArgv(['echo', '$(id)', "it's", 'a b', '*', 'plain-word'])).toBe("echo '$(id)' 'it'\\''s' 'a b' '*' plain-word");
  });
});
