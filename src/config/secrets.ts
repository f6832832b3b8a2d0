// Secret references in configuration: `${ENV_VAR}` templates, `{ env: NAME }`
// or `{ file: PATH }`. They are resolved only when a connection is opened, inside
// the broker, and the resolved value is never printed, journaled or returned.

import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { DrawbridgeError } from '../errors.js';

export type SecretRef =
  | { readonly kind: 'template'; readonly template: string; readonly describe: string }
  | { readonly kind: 'env'; readonly name: string; readonly describe: string }
  | { readonly kind: 'file'; readonly path: string; readonly describe: string };

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TEMPLATE_VAR = /\$\{([^}]*)\}/g;

/** zod schema for a secret-bearing field: a string (may contain ${VAR}) or {env} / {file}. */
export const secretRefSchema = z
  .union([
    z
      .string()
      .min(1)
      .superRefine((value, ctx) => {
        for (const match of value.matchAll(TEMPLATE_VAR)) {
          if (!ENV_NAME.test(match[1] ?? '')) ctx.addIssue({ code: 'custom', message: `"\${${match[1]}}" is not a valid environment variable reference` });
        }
      }),
    z.strictObject({ env: z.string().regex(ENV_NAME, 'must be an environment variable name') }),
    z.strictObject({ file: z.string().min(1) }),
  ])
  .transform((value): SecretRef => {
    if (typeof value === 'string') {
      const names = [...value.matchAll(TEMPLATE_VAR)].map((m) => m[1]);
      return { kind: 'template', template: value, describe: names.length > 0 ? names.map((n) => `$${n}`).join(', ') : 'inline value' };
    }
    if ('env' in value) return { kind: 'env', name: value.env, describe: `$${value.env}` };
    return { kind: 'file', path: value.file, describe: `file ${value.file}` };
  });

export interface SecretEnvironment {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Relative file references resolve against the config directory. */
  readonly baseDir: string;
}

/** Resolves a reference. Errors name what is missing, never a value. */
export function resolveSecret(ref: SecretRef, environment: SecretEnvironment): string {
  switch (ref.kind) {
    case 'template':
      return ref.template.replace(TEMPLATE_VAR, (_all, name: string) => {
        const value = environment.env[name];
        if (value === undefined || value === '') throw missing(`environment variable ${name} is not set`);
        return value;
      });
    case 'env': {
      const value = environment.env[ref.name];
      if (value === undefined || value === '') throw missing(`environment variable ${ref.name} is not set`);
      return value;
    }
    case 'file': {
      const path = isAbsolute(ref.path) ? ref.path : resolvePath(environment.baseDir, ref.path);
      try {
        return readFileSync(path, 'utf8').trim();
      } catch {
        throw missing(`secret file ${path} cannot be read`);
      }
    }
  }
}

/** The environment variables `ref` needs that are unset (or empty) in `env`: names only, never a value. */
export function unsetVariables(ref: SecretRef, env: Readonly<Record<string, string | undefined>>): string[] {
  const names = ref.kind === 'env' ? [ref.name] : ref.kind === 'template' ? [...ref.template.matchAll(TEMPLATE_VAR)].map((m) => m[1] ?? '') : [];
  return [...new Set(names.filter((name) => env[name] === undefined || env[name] === ''))];
}

/**
 * True when text carries a password written inline: a URL with a password in
 * its user info (`postgres://u:pw@h/db`), or a `password=` parameter (URL query
 * or libpq key/value form). `${VAR}` references are not inline, but a reference
 * elsewhere in the string does not excuse a literal password
 * (`postgres://u:pw@${HOST}/db` is refused).
 */
export function containsInlineCredential(text: string): boolean {
  const literal = text.replace(TEMPLATE_VAR, '');
  if (/[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/@:\s]*:[^/@\s]+@/.test(literal)) return true;
  return /(?:^|[?&;\s])(?:ssl)?password=[^&;\s]/i.test(literal);
}

function missing(what: string): DrawbridgeError {
  return new DrawbridgeError('config.secret_missing', `A secret needed by this connection is missing: ${what}.`);
}
