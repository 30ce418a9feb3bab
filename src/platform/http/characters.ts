// The edge's character check: every string a request carries (path params, query,
// body — nested, keys included) is refused with 400 INVALID_CHARACTER naming the field
// when it holds a character no field can store: NUL (PostgreSQL refuses 0x00 in text
// and jsonb, which used to surface as a 500), other C0 controls and DEL, or a lone
// UTF-16 surrogate (which the driver would silently turn into U+FFFD). A field that
// legitimately holds several lines says so in its schema with `"x-multiline": true`
// (tab, LF and CR are then allowed), and so do the free-text fields named in
// FREE_TEXT_FIELDS wherever they appear (also on routes without a body schema); a raw document body
// (a channel's notification as a string) is treated as multi-line. Headers need no check: Node's HTTP parser
// already refuses control characters in them.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';

/** Schema keyword: this string field may hold tab, LF and CR. */
export const MULTILINE = 'x-multiline';

const LINE_FORBIDDEN = /[\u0000-\u001F\u007F]|\p{Cs}/u;
const MULTILINE_FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]|\p{Cs}/u;
const DEPTH_MAX = 64;
/** Free-text field names that may hold several lines wherever they appear. */
export const FREE_TEXT_FIELDS: ReadonlySet<string> = new Set(['note', 'comment', 'description', 'remark', 'reason']);
const NODES_MAX = 100_000;

type Schema = Record<string, unknown> | undefined;

export const invalidCharacter = (field: string) =>
  new AppError('INVALID_CHARACTER', 400, `字段 ${field} 含有不允许的控制字符（如 NUL）或无效的 Unicode / the field ${field} holds a control character (e.g. NUL) or invalid Unicode; remove it`, { field });

const tooDeep = (field: string) =>
  new AppError('INVALID_REQUEST', 400, `请求嵌套过深或元素过多 / the request is nested too deeply or has too many elements at ${field}`, { field });

/** True when the string may be stored in a field of this kind. */
export function cleanText(value: string, multiline = false): boolean {
  return !(multiline ? MULTILINE_FORBIDDEN : LINE_FORBIDDEN).test(value);
}

function isMultiline(schema: Schema): boolean {
  if (!schema) return false;
  if (schema[MULTILINE] === true) return true;
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    const branches = schema[key];
    if (Array.isArray(branches) && branches.some((b) => isMultiline(b as Schema))) return true;
  }
  return false;
}

function childSchema(schema: Schema, key: string | number): Schema {
  if (!schema) return undefined;
  if (typeof key === 'number') {
    const items = schema.items;
    return items && typeof items === 'object' && !Array.isArray(items) ? (items as Schema) : undefined;
  }
  const props = schema.properties as Record<string, Schema> | undefined;
  if (props && Object.hasOwn(props, key)) return props[key];
  const extra = schema.additionalProperties;
  return extra && typeof extra === 'object' ? (extra as Schema) : undefined;
}

/** Throws INVALID_CHARACTER for the first bad string under `value` (bounded walk). */
export function checkValue(value: unknown, field: string, schema: Schema, budget = { nodes: NODES_MAX }, depth = 0): void {
  budget.nodes -= 1;
  if (depth > DEPTH_MAX || budget.nodes < 0) throw tooDeep(field);
  if (typeof value === 'string') {
    if (!cleanText(value, isMultiline(schema))) throw invalidCharacter(field);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) checkValue(value[i], `${field}[${i}]`, childSchema(schema, i), budget, depth + 1);
    return;
  }
  if (Buffer.isBuffer(value)) return;
  for (const [key, child] of Object.entries(value)) {
    if (!cleanText(key)) throw invalidCharacter(`${field}.${JSON.stringify(key).slice(1, -1)}`);
    const own = childSchema(schema, key);
    const sub = FREE_TEXT_FIELDS.has(key) ? { ...own, [MULTILINE]: true } : own;
    checkValue(child, `${field}.${key}`, sub, budget, depth + 1);
  }
}

export function checkRequest(request: FastifyRequest): void {
  const schema = (request.routeOptions.schema ?? {}) as Record<string, Schema>;
  checkValue(request.params, 'params', schema.params);
  checkValue(request.query, 'query', schema.querystring);
  const body = request.body;
  // A raw text body (a channel's notification) is one document: lines are allowed.
  if (typeof body === 'string') {
    if (!cleanText(body, true)) throw invalidCharacter('body');
  } else checkValue(body, 'body', schema.body);
}

/** Installs the check on every route registered after this call. */
export function installCharacterCheck(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    checkRequest(request);
  });
}
