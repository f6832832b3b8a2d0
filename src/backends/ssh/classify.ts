// Pure classification of parsed ssh_exec commands: what each program may do to
// the host. `read` is earned, never assumed: only a short list of programs from
// the system directories, and only in forms whose arguments cannot write
// (`sort -o`, `date -s`, `ss -K`, `journalctl --vacuum-*` are writes). Programs
// that run other programs are `admin` wherever they live. Anything else is a
// write until a rule names it.

import { isSystemProgram, SYSTEM_PROGRAM_DIRS } from './policy.js';
import type { SimpleCommand } from './parse.js';

type SshAccess = 'read' | 'write' | 'admin';

export interface Classification {
  readonly access: SshAccess;
  /** Programs that run other programs (policy operation `runs_programs`). */
  readonly runsPrograms: readonly string[];
  /** Why, one line per finding, for explain, refusals and the approval prompt. */
  readonly reasons: readonly string[];
}

/** Programs that run other programs (or a shell) given as arguments. */
const RUNS_PROGRAMS = new Set([
  'sh',
  'bash',
  'dash',
  'zsh',
  'ksh',
  'mksh',
  'fish',
  'csh',
  'tcsh',
  'busybox',
  'env',
  'xargs',
  'sudo',
  'su',
  'doas',
  'pkexec',
  'runuser',
  'nohup',
  'timeout',
  'nice',
  'ionice',
  'chrt',
  'taskset',
  'watch',
  'setsid',
  'stdbuf',
  'unbuffer',
  'script',
  'time',
  'chroot',
  'nsenter',
  'unshare',
  'flock',
  'systemd-run',
  'at',
  'batch',
  'crontab',
  'ssh',
  'scp',
  'sftp',
  'rsync',
  'ftp',
  'telnet',
  'nc',
  'ncat',
  'socat',
  'eval',
  'exec',
  'command',
  'builtin',
  'source',
  '.',
  'strace',
  'ltrace',
  'gdb',
  'perf',
  'valgrind',
  'python',
  'python2',
  'python3',
  'perl',
  'ruby',
  'node',
  'nodejs',
  'php',
  'lua',
  'tclsh',
  'wish',
  'Rscript',
  'julia',
  'deno',
  'bun',
  'java',
  'jshell',
  'expect',
  'awk',
  'gawk',
  'mawk',
  'nawk',
  'vi',
  'vim',
  'nvim',
  'ex',
  'ed',
  'emacs',
  'nano',
  'less',
  'more',
  'man',
  'make',
  'docker',
  'podman',
  'kubectl',
  'crictl',
  'ctr',
  'git',
  // GNU sed's `e` command and `w` flag run programs and write files.
  'sed',
]);

/** Programs whose usual forms only read; the argument rules below catch the forms that do not. */
const READ_PROGRAMS = new Set([
  'uptime',
  'hostname',
  'uname',
  'whoami',
  'id',
  'date',
  'df',
  'du',
  'free',
  'ps',
  'ls',
  'cat',
  'head',
  'tail',
  'grep',
  'egrep',
  'fgrep',
  'wc',
  'sort',
  'uniq',
  'cut',
  'stat',
  'file',
  'journalctl',
  'dmesg',
  'ss',
  'netstat',
  'lsof',
  'w',
  'who',
  'last',
  'nproc',
  'lscpu',
  'lsblk',
  'mount',
  'findmnt',
  'getent',
  'printenv',
  'pwd',
  'echo',
  'true',
  'md5sum',
  'sha256sum',
  'dig',
  'host',
  'nslookup',
  'test',
  'readlink',
  'realpath',
  'basename',
  'dirname',
  'tr',
  'column',
  'jq',
  'zcat',
  'zgrep',
  'vmstat',
  'iostat',
  'mpstat',
  'sar',
  'top',
]);
const SYSTEMCTL_READS = new Set(['status', 'show', 'is-active', 'is-enabled', 'is-failed', 'list-units', 'list-unit-files', 'list-timers', 'cat']);

/**
 * Whether an option is present, read the way getopt does, failing closed: a
 * short letter anywhere in a `-abc` cluster counts (even if it is really an
 * option's value), and a long option counts when written as any prefix of its
 * name (`--out=f` is `--output=f` to GNU getopt_long).
 */
function hasOption(args: readonly string[], short: string, long: readonly string[]): string | null {
  for (const a of args) {
    if (/^-[^-]/.test(a) && [...a.slice(1)].some((ch) => short.includes(ch))) return a;
    if (a.startsWith('--') && a.length > 2) {
      const name = a.slice(2).split('=')[0] as string;
      if (name !== '' && long.some((l) => l.startsWith(name))) return a;
    }
  }
  return null;
}

const operands = (args: readonly string[]) => args.filter((a) => !a.startsWith('-') || a === '-');

/** A reason when this form of a read program changes the host; null when it only reads. */
function writesByArguments(program: string, args: readonly string[]): string | null {
  let hit: string | null;
  switch (program) {
    case 'sort':
      hit = hasOption(args, 'o', ['output']);
      return hit ? `sort ${hit} writes a file` : null;
    case 'uniq':
      return operands(args).length > 1 ? 'uniq with a second file name writes that file' : null;
    case 'date': {
      if ((hit = hasOption(args, 's', ['set']))) return `date ${hit} sets the clock`;
      // An operand that is not +FORMAT (nor the value of -d/-f/-r) sets the clock: `date 010112002030`.
      const valued = new Set(['-d', '--date', '-f', '--file', '-r', '--reference']);
      const setting = args.find((a, i) => !a.startsWith('-') && !a.startsWith('+') && !valued.has(args[i - 1] ?? ''));
      return setting !== undefined ? `date ${setting} sets the clock` : null;
    }
    case 'hostname': {
      const flags = new Set([
        '-f',
        '--fqdn',
        '--long',
        '-s',
        '--short',
        '-i',
        '--ip-address',
        '-I',
        '--all-ip-addresses',
        '-d',
        '--domain',
        '-A',
        '--all-fqdns',
        '-a',
        '--alias',
        '-V',
        '--version',
        '-h',
        '--help',
      ]);
      const other = args.find((a) => !flags.has(a));
      return other !== undefined ? `hostname ${other} may set the host name` : null;
    }
    case 'mount':
      return args.some((a) => a !== '-l') ? 'mount with arguments mounts file systems (run it bare, or use findmnt, to list)' : null;
    case 'dmesg':
      hit = hasOption(args, 'CcDEn', ['clear', 'read-clear', 'console-off', 'console-on', 'console-level']);
      return hit ? `dmesg ${hit} changes the kernel log` : null;
    case 'ss':
      hit = hasOption(args, 'KD', ['kill', 'diag']);
      return hit ? `ss ${hit} kills sockets or writes a file` : null;
    case 'journalctl':
      hit = hasOption(args, '', [
        'rotate',
        'vacuum-size',
        'vacuum-time',
        'vacuum-files',
        'flush',
        'sync',
        'relinquish-var',
        'smart-relinquish-var',
        'setup-keys',
        'update-catalog',
        'cursor-file',
      ]);
      return hit ? `journalctl ${hit} changes the journal or writes a file` : null;
    case 'file':
      hit = hasOption(args, 'C', ['compile']);
      return hit ? `file ${hit} writes a compiled magic file` : null;
    case 'sar':
      hit = hasOption(args, 'o', []);
      return hit ? `sar ${hit} writes a data file` : null;
    case 'top':
      return args.includes('-b') ? null : 'top without -b is interactive';
    default:
      return null;
  }
}

/** A reason when this program, by its arguments, runs other programs. */
function runsByArguments(program: string, args: readonly string[]): string | null {
  let hit: string | null;
  switch (program) {
    case 'find': {
      const action = args.find((a) => ['-exec', '-execdir', '-ok', '-okdir', '-delete', '-fls'].includes(a) || a.startsWith('-fprint'));
      return action ? `find ${action} runs programs or changes files` : null;
    }
    case 'tar': {
      const option = args.find(
        (a) =>
          /^--(to-command|use-compress-program|checkpoint-action|rsh-command|info-script|new-volume-script)/.test(a) || a === '-F' || /^-[A-Za-z]*I/.test(a),
      );
      return option ? `tar ${option} runs a program` : null;
    }
    case 'sort':
      hit = hasOption(args, '', ['compress-program']);
      return hit ? `sort ${hit} runs a program` : null;
    case 'systemctl':
      hit = hasOption(args, 'H', ['host']);
      return hit ? `systemctl ${hit} connects to another host over ssh` : null;
    default:
      return null;
  }
}

/** Classifies a parsed command (one program, or each stage of a pipeline). */
export function classifyCommands(commands: readonly SimpleCommand[]): Classification {
  const runsPrograms: string[] = [];
  const reasons: string[] = [];
  let allRead = true;
  for (const { argv, program } of commands) {
    const args = argv.slice(1);
    const argv0 = argv[0] as string;
    const runs = RUNS_PROGRAMS.has(program) ? `${program} runs other programs` : runsByArguments(program, args);
    if (runs) {
      runsPrograms.push(program);
      reasons.push(runs);
      allRead = false;
      continue;
    }
    if (!isSystemProgram(argv0)) {
      reasons.push(`${argv0} is not in a system directory (${SYSTEM_PROGRAM_DIRS.join(', ')})`);
      allRead = false;
      continue;
    }
    if (program === 'systemctl') {
      if (!SYSTEMCTL_READS.has(args[0] ?? '')) {
        reasons.push(`systemctl ${args[0] ?? ''} may change the host`.trimEnd());
        allRead = false;
      }
      continue;
    }
    if (program === 'find') continue; // its writing actions are in runsByArguments
    if (!READ_PROGRAMS.has(program)) {
      allRead = false;
      continue;
    }
    const writes = writesByArguments(program, args);
    if (writes) {
      reasons.push(writes);
      allRead = false;
    }
  }
  const access: SshAccess = runsPrograms.length > 0 ? 'admin' : allRead ? 'read' : 'write';
  if (commands.length > 1) reasons.unshift(`a pipeline of ${commands.map((c) => c.program).join(' | ')}`);
  reasons.push(access === 'read' ? 'read-only program' : access === 'write' ? 'a program that may change the host' : 'runs arbitrary programs');
  return { access, runsPrograms: [...new Set(runsPrograms)], reasons };
}
