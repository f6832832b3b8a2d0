// The connection's OpenAPI 3.0/3.1 document (YAML or JSON), loaded once when
// the connection opens, and the request matched against it: METHOD and the
// normalised path against the document's path templates (concrete paths
// before templated ones), giving the operationId and checking the path
// parameters against their schemas. A request that matches no operation is
// `undocumented`: only a rule naming that operation may allow it. Pure except
// for reading the file.

import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { parseDocument } from 'yaml';
import { DrawbridgeError } from '../../errors.js';
import type { ParsedRequest } from '../backend.js';
import { HTTP_ERRORS } from './errors.js';
import type { HttpDetail, HttpDocumentation, HttpMethod } from './types.js';

/**
 * What a path parameter's schema may say, as checked: type (string, integer,
 * number, boolean; a 3.1 list of them), enum, const, pattern, minLength,
 * maxLength, minimum, maximum, exclusiveMinimum/exclusiveMaximum (3.0 booleans
 * or 3.1 numbers), multipleOf. Annotations are ignored (ANNOTATIONS); any other
 * keyword makes the document refused when loaded, never silently unchecked.
 */
export interface ParameterSchema {
  readonly types: readonly ('string' | 'integer' | 'number' | 'boolean')[] | null;
  readonly enum: readonly string[] | null;
  readonly pattern: RegExp | null;
  readonly minLength: number | null;
  readonly maxLength: number | null;
  readonly minimum: { readonly value: number; readonly exclusive: boolean } | null;
  readonly maximum: { readonly value: number; readonly exclusive: boolean } | null;
  readonly multipleOf: number | null;
}

type TemplateSegment =
  { readonly kind: 'literal'; readonly text: string } | { readonly kind: 'template'; readonly regex: RegExp; readonly names: readonly string[] };

interface DocumentedPath {
  readonly template: string;
  readonly segments: readonly TemplateSegment[];
  /** Per segment: 2 literal, 1 mixed (`{name}.json`), 0 a whole parameter; compared left to right, higher first. */
  readonly rank: readonly number[];
  readonly operations: ReadonlyMap<HttpMethod, DocumentedOperation>;
}

interface DocumentedOperation {
  readonly operationId: string | null;
  readonly parameters: ReadonlyMap<string, ParameterSchema>;
}

export interface OpenApiDocument {
  /** The file it came from, for messages. */
  readonly source: string;
  readonly version: string;
  readonly paths: readonly DocumentedPath[];
}

const METHODS: ReadonlyArray<readonly [string, HttpMethod]> = [
  ['get', 'GET'],
  ['head', 'HEAD'],
  ['options', 'OPTIONS'],
  ['post', 'POST'],
  ['put', 'PUT'],
  ['patch', 'PATCH'],
  ['delete', 'DELETE'],
];

/** Schema keywords that say nothing about which values are valid. */
const ANNOTATIONS = new Set([
  'description',
  'title',
  'example',
  'examples',
  'default',
  'deprecated',
  'nullable',
  'format',
  'readOnly',
  'writeOnly',
  'xml',
  'externalDocs',
  '$comment',
]);
const CHECKED = new Set([
  'type',
  'enum',
  'const',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
]);

type Json = Readonly<Record<string, unknown>>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads and compiles the document; any problem is config.invalid naming the file and what is wrong. */
export function loadOpenApi(path: string, baseDir: string): OpenApiDocument {
  const full = isAbsolute(path) ? path : resolvePath(baseDir, path);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch {
    throw new DrawbridgeError('config.invalid', `The OpenAPI document ${full} cannot be read.`);
  }
  return parseOpenApi(text, full);
}

/** Compiles a document's text (YAML or JSON: JSON is YAML). */
export function parseOpenApi(text: string, source: string): OpenApiDocument {
  function invalid(what: string): never {
    throw new DrawbridgeError('config.invalid', `The OpenAPI document ${source} ${what}.`);
  }
  const parsed = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (parsed.errors.length > 0) invalid(`is not valid YAML or JSON: ${parsed.errors[0]?.message ?? 'parse error'}`);
  const root: unknown = parsed.toJS({ maxAliasCount: 100 });
  if (!isObject(root)) invalid('is not an object');
  const doc = root as Json;
  const version = doc['openapi'];
  if (typeof version !== 'string' || !/^3\.[01]\.\d+/.test(version))
    invalid(`is not OpenAPI 3.0 or 3.1 (openapi: ${JSON.stringify(version ?? doc['swagger'] ?? null)})`);
  const paths = doc['paths'] ?? {};
  if (!isObject(paths)) invalid('has no paths object');

  const deref = (value: unknown, where: string): Json => {
    let current = value;
    for (let hops = 0; isObject(current) && typeof current['$ref'] === 'string'; hops++) {
      const ref = current['$ref'];
      if (hops > 16) invalid(`has a $ref chain at ${where} that loops (${ref})`);
      if (!ref.startsWith('#/')) invalid(`has a $ref at ${where} that is not a local reference the gateway follows (${ref})`);
      current = ref
        .slice(2)
        .split('/')
        .map((p) => decodeURIComponent(p).replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce<unknown>((node, key) => (isObject(node) ? node[key] : undefined), doc);
      if (current === undefined) invalid(`has a $ref at ${where} that points nowhere (${ref})`);
    }
    if (!isObject(current)) invalid(`has something other than an object at ${where}`);
    return current as Json;
  };

  const compileSchema = (value: unknown, where: string): ParameterSchema => {
    const schema = deref(value, where);
    for (const key of Object.keys(schema)) {
      if (!CHECKED.has(key) && !ANNOTATIONS.has(key) && !key.startsWith('x-')) {
        invalid(`uses schema keyword ${key} at ${where}, which the gateway cannot check on a path parameter`);
      }
    }
    const num = (key: string): number | null => {
      const v = schema[key];
      if (v === undefined || typeof v === 'boolean') return null;
      if (typeof v !== 'number') invalid(`has a non-number ${key} at ${where}`);
      return v as number;
    };
    const given = schema['type'];
    const typeList = given === undefined ? null : Array.isArray(given) ? given : [given];
    const types = typeList?.filter((t) => t !== 'null') ?? null;
    if (types?.some((t) => !['string', 'integer', 'number', 'boolean'].includes(t as string))) {
      invalid(`gives a path parameter at ${where} a type the gateway cannot check (${JSON.stringify(given)})`);
    }
    const enumValues = schema['const'] !== undefined ? [schema['const']] : Array.isArray(schema['enum']) ? schema['enum'] : null;
    let pattern: RegExp | null = null;
    if (schema['pattern'] !== undefined) {
      try {
        pattern = new RegExp(String(schema['pattern']), 'u');
      } catch {
        invalid(`has a pattern at ${where} that is not a valid regular expression`);
      }
    }
    // 3.0: exclusiveMinimum is a boolean about minimum; 3.1: a number of its own. The tighter bound wins.
    const bound = (plain: string, exclusive: string, tighter: (a: number, b: number) => boolean) => {
      const p = num(plain);
      const e = schema[exclusive];
      if (typeof e === 'number') return p !== null && tighter(p, e) ? { value: p, exclusive: false } : { value: e, exclusive: true };
      return p === null ? null : { value: p, exclusive: e === true };
    };
    return {
      types: types as ParameterSchema['types'],
      enum: enumValues ? enumValues.map((v) => String(v)) : null,
      pattern,
      minLength: num('minLength'),
      maxLength: num('maxLength'),
      minimum: bound('minimum', 'exclusiveMinimum', (a, b) => a > b),
      maximum: bound('maximum', 'exclusiveMaximum', (a, b) => a < b),
      multipleOf: num('multipleOf'),
    };
  };

  const pathParameters = (list: unknown, where: string): Map<string, ParameterSchema> => {
    const result = new Map<string, ParameterSchema>();
    if (list === undefined) return result;
    if (!Array.isArray(list)) invalid(`has parameters at ${where} that are not a list`);
    (list as unknown[]).forEach((item, i) => {
      const at = `${where} parameter ${i}`;
      const parameter = deref(item, at);
      if (parameter['in'] !== 'path') return;
      const pname = parameter['name'];
      if (typeof pname !== 'string') invalid(`has a path parameter without a name at ${at}`);
      const style = parameter['style'];
      if (style !== undefined && style !== 'simple')
        invalid(`uses style ${String(style)} for path parameter ${String(pname)} at ${at}; the gateway checks style simple only`);
      if (parameter['schema'] === undefined) invalid(`has path parameter ${String(pname)} at ${at} without a schema (content is not supported)`);
      result.set(pname as string, compileSchema(parameter['schema'], `${at} (${String(pname)})`));
    });
    return result;
  };

  const compiled = Object.entries(paths as Json).map(([template, item]): DocumentedPath => {
    if (!template.startsWith('/')) invalid(`has a path that does not start with "/" (${template})`);
    const pathItem = deref(item, `paths.${template}`);
    const shared = pathParameters(pathItem['parameters'], `paths.${template}`);
    const segments = template
      .slice(1)
      .split('/')
      .map((segment): TemplateSegment => {
        // Literal segments compare with the request's decoded segments: decode them once too (a malformed escape stays as written).
        if (!segment.includes('{')) return { kind: 'literal', text: decodeLiteral(segment) };
        const names: string[] = [];
        const body = segment.replace(/\{([^{}]+)\}|([^{]+)/g, (_m, pname: string | undefined, literal: string | undefined) => {
          if (pname !== undefined) {
            names.push(pname);
            return '(.+?)';
          }
          return (literal ?? '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        });
        if (/[{}]/.test(segment.replace(/\{[^{}]+\}/g, ''))) invalid(`has an unbalanced brace in path ${template}`);
        return { kind: 'template', regex: new RegExp(`^${body}$`, 's'), names };
      });
    const rank = segments.map((s) => (s.kind === 'literal' ? 2 : s.regex.source === '^(.+?)$' ? 0 : 1));
    const operations = new Map<HttpMethod, DocumentedOperation>();
    for (const [key, method] of METHODS) {
      if (pathItem[key] === undefined) continue;
      const operation = deref(pathItem[key], `paths.${template}.${key}`);
      const own = pathParameters(operation['parameters'], `paths.${template}.${key}`);
      const operationId = operation['operationId'];
      operations.set(method, { operationId: typeof operationId === 'string' ? operationId : null, parameters: new Map([...shared, ...own]) });
    }
    return { template, segments, rank, operations };
  });
  const byRank = (a: DocumentedPath, b: DocumentedPath): number => {
    for (let i = 0; i < Math.min(a.rank.length, b.rank.length); i++) {
      const d = (b.rank[i] as number) - (a.rank[i] as number);
      if (d !== 0) return d;
    }
    return 0;
  };
  return { source, version, paths: [...compiled].sort(byRank) };
}

function decodeLiteral(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function matchTemplate(path: DocumentedPath, segments: readonly string[]): Record<string, string> | null {
  if (path.segments.length !== segments.length) return null;
  const values: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const t = path.segments[i] as TemplateSegment;
    const s = segments[i] as string;
    if (t.kind === 'literal') {
      if (t.text !== s) return null;
      continue;
    }
    const m = t.regex.exec(s);
    if (!m) return null;
    t.names.forEach((n, j) => (values[n] = m[j + 1] as string));
  }
  return values;
}

const INTEGER = /^-?(0|[1-9]\d*)$/;
const NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

/** Why `value` does not satisfy `schema`, or null. */
export function parameterProblem(schema: ParameterSchema, value: string): string | null {
  if (schema.types) {
    const fits = schema.types.some((t) =>
      t === 'string' ? true : t === 'integer' ? INTEGER.test(value) : t === 'number' ? NUMBER.test(value) : value === 'true' || value === 'false',
    );
    if (!fits) return `must be ${schema.types.map((t) => (t === 'integer' ? 'an integer' : t === 'boolean' ? 'true or false' : `a ${t}`)).join(' or ')}`;
  }
  if (schema.enum && !schema.enum.includes(value)) return `must be one of ${schema.enum.join(', ')}`;
  const length = [...value].length;
  if (schema.minLength !== null && length < schema.minLength) return `must be at least ${schema.minLength} characters`;
  if (schema.maxLength !== null && length > schema.maxLength) return `must be at most ${schema.maxLength} characters`;
  if (schema.pattern && !schema.pattern.test(value)) return `must match ${schema.pattern.source}`;
  const numeric = NUMBER.test(value) ? Number(value) : null;
  if (numeric !== null) {
    const { minimum: min, maximum: max } = schema;
    if (min && (min.exclusive ? numeric <= min.value : numeric < min.value)) return `must be ${min.exclusive ? 'more than' : 'at least'} ${min.value}`;
    if (max && (max.exclusive ? numeric >= max.value : numeric > max.value)) return `must be ${max.exclusive ? 'less than' : 'at most'} ${max.value}`;
    if (schema.multipleOf !== null && schema.multipleOf > 0 && !Number.isInteger(numeric / schema.multipleOf))
      return `must be a multiple of ${schema.multipleOf}`;
  } else if (schema.minimum || schema.maximum || schema.multipleOf !== null) {
    return 'must be a number';
  }
  return null;
}

/**
 * Matches METHOD + decoded segments: the most concrete matching path wins
 * (literal segments before templated ones, left to right), as OpenAPI says;
 * if that path has no operation for the method the request is undocumented
 * (HEAD falls back to the path's GET, as servers answer it). Throws
 * http.parameter_invalid when a path parameter fails its schema.
 */
export function matchOpenApi(document: OpenApiDocument, method: HttpMethod, segments: readonly string[]): HttpDocumentation {
  for (const path of document.paths) {
    const values = matchTemplate(path, segments);
    if (values === null) continue;
    const operation = path.operations.get(method) ?? (method === 'HEAD' ? path.operations.get('GET') : undefined);
    if (!operation) return { kind: 'undocumented' };
    for (const [pname, value] of Object.entries(values)) {
      const schema = operation.parameters.get(pname);
      const problem = schema ? parameterProblem(schema, value) : null;
      if (problem) {
        const op = operation.operationId ?? `${method} ${path.template}`;
        throw new DrawbridgeError('http.parameter_invalid', `Refused: path parameter ${pname} of ${op} ${problem}; got ${JSON.stringify(value)}.`, {
          hint: HTTP_ERRORS['http.parameter_invalid'].hint,
        });
      }
    }
    return { kind: 'documented', operationId: operation.operationId, template: path.template, parameters: values };
  }
  return { kind: 'undocumented' };
}

/**
 * At resolve: the request with its documentation. Without a document it is
 * `no-document`; undocumented, its operation becomes `undocumented` and only a
 * rule naming that operation may allow or approve it.
 */
export function documentRequest(request: ParsedRequest<HttpDetail>, document: OpenApiDocument | null): ParsedRequest<HttpDetail> {
  if (document === null) return { ...request, detail: { ...request.detail, documentation: { kind: 'no-document' } } };
  const documentation = matchOpenApi(document, request.detail.method, request.detail.segments);
  const detail: HttpDetail = { ...request.detail, documentation };
  if (documentation.kind === 'documented') {
    const named = documentation.operationId ? `operation ${documentation.operationId}` : `${request.detail.method} ${documentation.template}`;
    return { ...request, reasons: [...request.reasons, `documented: ${named}`], detail };
  }
  return {
    ...request,
    operation: 'undocumented',
    explicitOnly: true,
    reasons: [...request.reasons, `no operation of the OpenAPI document matches ${request.detail.method} ${request.detail.path}`],
    detail,
  };
}
