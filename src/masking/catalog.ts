// The secret catalog: provider credential formats (Stripe, GitHub, GitLab,
// Slack, Google, OpenAI, Anthropic, npm, Azure, SendGrid, Twilio, HTTP
// Authorization headers), each a named detector that finds where a credential
// sits in free text. Pure and synchronous, like detectors.ts, which registers
// these scanners next to the PII detectors.
//
// Attribution. The token formats are ported from two maintained rule sets, both
// MIT licensed, and adapted (see "Adapted" below):
//   - gitleaks v8.30.0, config/gitleaks.toml (https://github.com/gitleaks/gitleaks),
//     Copyright (c) 2019 Zachary Rice, MIT License: stripe-access-token,
//     github-pat / -oauth / -app-token / -refresh-token / -fine-grained-pat,
//     gitlab-* (pat, deploy, runner, CI job, trigger, feed, mail, agent, OAuth,
//     SCIM, feature-flag, runner registration), slack-* (bot, user, app,
//     config, legacy, webhook), gcp-api-key, openai-api-key, anthropic-api-key /
//     -admin-api-key, npm-access-token, sendgrid-api-token, twilio-api-key.
//   - secretlint 13.0.x, @secretlint/secretlint-rule-{github,gitlab,slack,stripe,
//     openai,anthropic,npm,sendgrid} (https://github.com/secretlint/secretlint),
//     Copyright (c) 2020 azu, MIT License: the ghs_ installation-token form, the
//     sk-ant-<kind><NN>- family, the SG.<id>.<secret> shape, Slack's
//     dash-separated segments.
// Our own (no upstream rule): Azure connection-string keys and SAS signatures
// (Microsoft's documented AccountKey= / SharedAccessKey= /
// SharedAccessSignature= / sig= forms), the Twilio Account SID + auth token
// pair, Stripe webhook secrets (whsec_), and Authorization header credentials.
//
// Adapted: upstream rules are written for repository scanning, where a miss is
// cheap to re-run and a false alarm is costly; here a miss leaks a live
// credential to an agent. So minimum lengths stay, but fixed maximum lengths
// become generous bounds (a longer token is masked whole, never let through),
// gitleaks' entropy filters and allow-lists are dropped, and gitleaks' Go RE2
// syntax is rewritten for V8 with explicit left boundaries.
//
// Linear time. Every pattern is one global regex whose quantifiers are bounded
// and never nested ambiguously: each repetition either consumes a character no
// other branch can, or is followed by a literal that ends it. An attempt that
// fails has read at most a constant number of characters (a minimum length or a
// fixed-width field); an attempt that succeeds consumes what it read, and the
// scan resumes after it. A literal pre-check (`anyOf`) skips the regex entirely
// for text that cannot hold the family's prefix. test/masking/linear.test.ts
// checks the n vs 4n ratio on hostile inputs.

import type { Finding } from './detectors.js';

export type SecretDetectorName =
  | 'stripe_key'
  | 'github_token'
  | 'gitlab_token'
  | 'slack_token'
  | 'slack_webhook'
  | 'google_api_key'
  | 'openai_key'
  | 'anthropic_key'
  | 'npm_token'
  | 'azure_connection_string'
  | 'sendgrid_key'
  | 'twilio_key'
  | 'auth_header';

export const SECRET_DETECTOR_NAMES: readonly SecretDetectorName[] = Object.freeze([
  'stripe_key',
  'github_token',
  'gitlab_token',
  'slack_token',
  'slack_webhook',
  'google_api_key',
  'openai_key',
  'anthropic_key',
  'npm_token',
  'azure_connection_string',
  'sendgrid_key',
  'twilio_key',
  'auth_header',
] as const);

type Scanner = (text: string, out: Finding[]) => void;

interface TokenRule {
  /** Global regex. With `suffix`, the last capture group is the secret and ends the match. */
  readonly re: RegExp;
  /** The secret is the last capture group (which ends the match): what precedes it (a key name, a URL) stays visible. */
  readonly suffix?: boolean;
}

interface Family {
  readonly detector: SecretDetectorName;
  /**
   * Short literals (a rare first character makes the search fast), one of which
   * every match contains, checked before `anyOf`: most text is rejected here.
   */
  readonly gate?: readonly string[];
  /**
   * Literal substrings (case-sensitive), one of which every match contains. When
   * none is in the text the family's regexes do not run. Empty: always run.
   */
  readonly anyOf: readonly string[];
  readonly rules: readonly TokenRule[];
}

// The two longest patterns are assembled from named parts (String.raw keeps every
// backslash as written) only so that no line outgrows the formatter's width; the
// result is the very pattern that was ported: test/masking/catalog.test.ts pins
// each one's source and flags to its original regex literal.
const SLACK_DASHED = String.raw`(?:xox[bpeos]|xapp)-[0-9]{1,20}(?:-[A-Za-z0-9]{1,200}){1,8}`;
const SLACK_LONG = String.raw`xox[ar]-(?:[0-9]-)?[A-Za-z0-9]{8,200}(?:-[A-Za-z0-9]{1,200}){0,8}`;
/** Slack tokens (the slack_token family below). */
export const SLACK_TOKEN_RE = new RegExp(String.raw`(?<![A-Za-z0-9_-])(?:${SLACK_DASHED}|${SLACK_LONG})`, 'g');

const AUTH_NAME = String.raw`(?<![A-Za-z0-9_-])(?:proxy-)?authorization`;
// Between the name and the value: ':' or '=', with blanks, and the backslashes and quote of a header map written in JSON.
const AUTH_SEPARATOR = String.raw`\\{0,15}["']?[ \t]{0,8}[:=][ \t]{0,8}\\{0,15}["']?`;
const AUTH_SCHEME = String.raw`(?:(?:basic|bearer|token|apikey|sso-key|digest|negotiate|ntlm|hmac|dpop)[ \t]{1,8})?`;
const AUTH_CREDENTIAL = String.raw`([^\s"',;\\]{6,8192})`;
/** Authorization header credentials (the auth_header family below); the last group is the credential. */
export const AUTH_HEADER_RE = new RegExp(AUTH_NAME + AUTH_SEPARATOR + AUTH_SCHEME + AUTH_CREDENTIAL, 'gi');

// Left boundary: a token does not start inside a longer word (`task_live_…` is
// not a Stripe key), and a start inside a run of the token's own characters is
// refused before the engine reads further.
const FAMILIES: readonly Family[] = [
  {
    detector: 'stripe_key',
    gate: ['_'],
    anyOf: ['_live_', '_test_', '_prod_', 'whsec_'],
    rules: [
      // Secret (sk_) and restricted (rk_) keys; gitleaks allows 10-99 characters, secretlint 24-99:
      // 16 keeps identifiers like rk_test_connection out, and longer keys are masked whole.
      { re: /(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{16,247}/g },
      // Webhook signing secrets (ours).
      { re: /(?<![A-Za-z0-9_])whsec_[A-Za-z0-9+/=]{24,247}/g },
    ],
  },
  {
    detector: 'github_token',
    gate: ['_'],
    anyOf: ['ghp_', 'gho_', 'ghu_', 'ghs_', 'ghr_', 'github_pat_'],
    rules: [
      // Installation tokens in the newer ghs_<id>_<jwt-like> form (secretlint), then the
      // classic ghp_/gho_/ghu_/ghs_/ghr_ (36 base62) and fine-grained github_pat_ (82) forms.
      { re: /(?<![A-Za-z0-9_])(?:ghs_[0-9]{1,20}_[A-Za-z0-9_.-]{16,8192}|gh[pousr]_[A-Za-z0-9_]{30,251}|github_pat_[A-Za-z0-9_]{22,251})/g },
    ],
  },
  {
    detector: 'gitlab_token',
    anyOf: ['gl', 'GR1348941'],
    rules: [
      // glpat- (personal, also the routable form with a dot), gldt- deploy, glrt- runner,
      // glcbt- CI job, glptt- trigger, glft- feed, glimt- incoming mail, glagent- agent,
      // gloas- OAuth app secret, glsoat- SCIM, glffct- feature flags, glsapat-/gltst- (newer).
      { re: /(?<![A-Za-z0-9_-])gl(?:pat|dt|rt|cbt|ptt|ft|imt|agent|oas|soat|ffct|sapat|tst)-[A-Za-z0-9_.-]{20,512}/g },
      // Runner registration tokens.
      { re: /(?<![A-Za-z0-9_-])GR1348941[A-Za-z0-9_-]{20,64}/g },
    ],
  },
  {
    detector: 'slack_token',
    anyOf: ['xox', 'xapp-'],
    rules: [
      // Bot (xoxb), user (xoxp), config/refresh (xoxe), legacy (xoxo, xoxs), app-level (xapp):
      // a numeric first segment, then dash-separated alphanumeric segments. Workspace access
      // and refresh tokens (xoxa, xoxr) may have one long segment instead.
      { re: SLACK_TOKEN_RE },
    ],
  },
  {
    detector: 'slack_webhook',
    anyOf: ['hooks.slack.com'],
    // The path after /services/ (or /workflows/, /triggers/) is the secret; the host stays visible.
    rules: [{ re: /hooks\.slack\.com\/(?:services|workflows|triggers)\/([A-Za-z0-9_/+-]{8,512})/g, suffix: true }],
  },
  {
    detector: 'google_api_key',
    anyOf: ['AIza'],
    rules: [{ re: /(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35,100}/g }],
  },
  {
    detector: 'openai_key',
    gate: ['k-'],
    anyOf: ['sk-'],
    rules: [
      // Project, service-account and admin keys (sk-proj-…, sk-svcacct-…, sk-admin-…), and the
      // legacy sk-<48 alphanumerics> form (gitleaks requires the T3BlbkFJ marker; any long
      // alphanumeric run after sk- is masked here, which also covers OpenAI-compatible providers).
      // sk-ant-… never matches: "ant" is followed by a dash, not 32 alphanumerics.
      { re: /(?<![A-Za-z0-9_-])sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,512}|[A-Za-z0-9]{32,256})/g },
    ],
  },
  {
    detector: 'anthropic_key',
    gate: ['k-'],
    anyOf: ['sk-ant-'],
    // sk-ant-api03-…, sk-ant-admin01-…, sk-ant-oat01-… (gitleaks pins api03/admin01 and 93 characters + AA).
    rules: [{ re: /(?<![A-Za-z0-9_-])sk-ant-[a-z]{2,10}[0-9]{2}-[A-Za-z0-9_-]{32,512}/g }],
  },
  {
    detector: 'npm_token',
    gate: ['_'],
    anyOf: ['npm_'],
    rules: [{ re: /(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36,251}/g }],
  },
  {
    detector: 'azure_connection_string',
    gate: ['='],
    anyOf: [],
    rules: [
      // Storage, Service Bus, Event Hubs, IoT Hub and SignalR connection strings: the key
      // (or a whole SAS) after its name, up to the next ';' (ours). Names are matched
      // case-insensitively, as the SDKs parse them.
      { re: /(?<![A-Za-z0-9])(?:AccountKey|SharedAccessKey|SharedAccessSignature|SharedSecretValue)[ \t]{0,4}=[ \t]{0,4}([^;"'\s<>]{8,4096})/gi, suffix: true },
      // The signature of a SAS URL (…?sv=…&sig=…): the rest of the URL stays readable.
      { re: /[?&]sig=([A-Za-z0-9%+/=_-]{16,1024})/g, suffix: true },
    ],
  },
  {
    detector: 'sendgrid_key',
    anyOf: ['SG.'],
    rules: [{ re: /(?<![A-Za-z0-9_])SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}/g }],
  },
  {
    detector: 'twilio_key',
    anyOf: ['SK'],
    // API key SIDs (SK + 32 hex) are masked wherever they appear; Account SIDs (AC…) only
    // with an auth token next to them (scanTwilio below).
    rules: [{ re: /(?<![A-Za-z0-9])SK[0-9a-fA-F]{32}(?![A-Za-z0-9])/g }],
  },
  {
    detector: 'auth_header',
    // Header names are case-insensitive; programs print them capitalised, lower-case or upper-case.
    // (A mixed-case spelling is not pre-checked: a known limit, listed in the README.)
    gate: ['zation', 'ZATION'],
    anyOf: ['uthorization', 'UTHORIZATION'],
    rules: [
      // Authorization / Proxy-Authorization header credentials (curl -H, HTTP dumps, JSON
      // header maps): the credential after the scheme, or the raw value when there is none (ours).
      {
        re: AUTH_HEADER_RE,
        suffix: true,
      },
    ],
  },
];

function anyIn(text: string, literals: readonly string[]): boolean {
  for (const literal of literals) if (text.includes(literal)) return true;
  return false;
}

function present(text: string, gate: readonly string[] | undefined, literals: readonly string[]): boolean {
  if (gate !== undefined && !anyIn(text, gate)) return false;
  return literals.length === 0 || anyIn(text, literals);
}

function runRule(rule: TokenRule, detector: SecretDetectorName, text: string, out: Finding[]): void {
  const re = rule.re;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const end = m.index + m[0].length;
    if (rule.suffix) {
      const secret = m[m.length - 1] ?? '';
      if (secret.length > 0) out.push({ detector, start: end - secret.length, end });
    } else {
      out.push({ detector, start: m.index, end });
    }
  }
}

// Twilio Account SID followed (within a few separator characters: a comma and
// quotes in code, a colon in basic auth, '=' in a connection string) by a
// 32-hex auth token. Both are masked: together they are a full credential.
const TWILIO_PAIR_RE = /(?<![A-Za-z0-9])AC[0-9a-fA-F]{32}(?![A-Za-z0-9])([\s"',:;=()|/\\]{1,16})([0-9a-fA-F]{32})(?![A-Za-z0-9])/g;

function scanTwilioPair(text: string, out: Finding[]): void {
  if (!text.includes('AC')) return;
  TWILIO_PAIR_RE.lastIndex = 0;
  for (let m = TWILIO_PAIR_RE.exec(text); m !== null; m = TWILIO_PAIR_RE.exec(text)) {
    const tokenStart = m.index + 34 + (m[1] ?? '').length;
    out.push({ detector: 'twilio_key', start: m.index, end: m.index + 34 });
    out.push({ detector: 'twilio_key', start: tokenStart, end: tokenStart + 32 });
  }
}

function familyScanner(family: Family): Scanner {
  return (text, out) => {
    if (!present(text, family.gate, family.anyOf)) return;
    for (const rule of family.rules) runRule(rule, family.detector, text, out);
  };
}

function family(detector: SecretDetectorName): Scanner {
  const found = FAMILIES.find((f) => f.detector === detector);
  if (!found) throw new TypeError(`secret catalog: no family for ${detector}`);
  return familyScanner(found);
}

const twilioKeys = family('twilio_key');

/** One scanner per secret family, keyed by detector name. */
export const SECRET_SCANNERS: Readonly<Record<SecretDetectorName, Scanner>> = Object.freeze({
  stripe_key: family('stripe_key'),
  github_token: family('github_token'),
  gitlab_token: family('gitlab_token'),
  slack_token: family('slack_token'),
  slack_webhook: family('slack_webhook'),
  google_api_key: family('google_api_key'),
  openai_key: family('openai_key'),
  anthropic_key: family('anthropic_key'),
  npm_token: family('npm_token'),
  azure_connection_string: family('azure_connection_string'),
  sendgrid_key: family('sendgrid_key'),
  twilio_key: (text: string, out: Finding[]) => {
    twilioKeys(text, out);
    scanTwilioPair(text, out);
  },
  auth_header: family('auth_header'),
});
