// Jeepay's wire format: requests as JSON or form, authenticated by app, signature and
// a reqTime window before anything else is read; answers in the envelope
// {"code":0,"msg":"SUCCESS","data":{…},"sign":"…"} with `data` signed by the app's
// secret; errors as {"code":9999,"msg":…,"errCode":STABLE_CODE,"requestId":…}.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../platform/errors.ts';
import { paymentErrors } from './payment.errors.ts';
import { isSignType, sign, verify, type SignType } from './sign.ts';
import type { App, MerchantService } from './merchant.service.ts';
import { AMOUNT_MAX_FEN, fenNumber } from './types.ts';
import type { Outbound } from '../platform/outbound.ts';

export type Params = Record<string, unknown>;

/** The `version` values clients send: Jeepay documents `1.0`; some SDKs send `1.0.0`. */
export const ACCEPTED_VERSIONS = ['1.0', '1.0.0'] as const;

/**
 * reqTime normalised by magnitude: 10 digits are seconds, 13 milliseconds (Jeepay's
 * documented unit), 16 microseconds (e.g. Go's time.Now().UnixMicro()). Anything else
 * is null. A JSON number or a string of digits; a 16-digit number is below 2^53, exact.
 */
export function reqTimeToMs(raw: unknown): number | null {
  if (typeof raw !== 'string' && typeof raw !== 'number') return null;
  const text = String(raw);
  if (!/^(?:[0-9]{10}|[0-9]{13}|[0-9]{16})$/.test(text)) return null;
  const value = Number(text);
  if (text.length === 10) return value * 1000;
  if (text.length === 16) return Math.floor(value / 1000);
  return value;
}

export interface Authenticated {
  app: App;
  signType: SignType;
  params: Params;
}

export interface AuthOptions {
  merchants: MerchantService;
  reqTimeWindowMs: number;
  /** Runs after the request is fully authenticated (the per-merchant and per-app rate limits). */
  onAuthenticated?: (app: App) => Promise<void>;
}

export async function authenticate(request: FastifyRequest, options: AuthOptions): Promise<Authenticated> {
  const params = (request.body && typeof request.body === 'object' ? request.body : {}) as Params;
  if (Array.isArray(request.body)) throw paymentErrors.invalidParam('请求体应为对象 / the body must be an object');
  const sig = params.sign;
  if (typeof sig !== 'string' || sig === '') throw paymentErrors.signMissing('缺少签名 sign / the request has no sign');
  const signType = params.signType ?? 'MD5';
  if (!isSignType(signType)) throw paymentErrors.signInvalid(`不支持的签名类型 / signType must be MD5, HMAC-SHA256 or SM3`);
  const mchNo = params.mchNo;
  const appId = params.appId;
  if (typeof mchNo !== 'string' || typeof appId !== 'string' || appId.length > 64) throw paymentErrors.appNotFound('缺少 mchNo 或 appId / mchNo and appId are required');
  const app = await options.merchants.getApp(appId);
  if (!app || app.mchNo !== mchNo || !app.active) throw paymentErrors.appNotFound('商户或应用不存在或已停用 / unknown or disabled mchNo/appId');
  if (!app.signTypes.includes(signType)) throw paymentErrors.signInvalid(`该应用不允许 ${signType} 签名 / this app does not accept ${signType}`);
  if (!verify(params, app.secret, signType)) throw paymentErrors.signInvalid('签名错误 / the signature does not match; check the app secret and the signing rule');
  const reqTimeMs = reqTimeToMs(params.reqTime);
  if (reqTimeMs === null) {
    throw paymentErrors.reqTimeInvalid('reqTime 必须是 10 位（秒）、13 位（毫秒）或 16 位（微秒）的时间戳 / reqTime must be a Unix timestamp of 10 digits (s), 13 (ms) or 16 (µs)');
  }
  const windowS = Math.round(options.reqTimeWindowMs / 1000);
  if (Math.abs(Date.now() - reqTimeMs) > options.reqTimeWindowMs) {
    throw paymentErrors.reqTimeInvalid(`reqTime 不在允许的时间窗口内（±${windowS} 秒），请校准时钟 / reqTime must be the current time within ±${windowS} s; check the client's clock`);
  }
  const version = params.version;
  if (version !== undefined && version !== null && version !== '' && !(ACCEPTED_VERSIONS as readonly unknown[]).includes(version)) {
    throw paymentErrors.invalidParam(`不支持的 version / version must be ${ACCEPTED_VERSIONS.join(' or ')} (got ${JSON.stringify(String(version).slice(0, 16))})`);
  }
  if (app.ipAllowlist && !app.ipAllowlist.includes(request.ip)) throw paymentErrors.ipNotAllowed(`IP ${request.ip} 不在白名单 / ${request.ip} is not on this app's allow-list`);
  if (options.onAuthenticated) await options.onAuthenticated(app);
  return { app, signType, params };
}

export function success(reply: FastifyReply, auth: Authenticated, data: Params) {
  const clean: Params = {};
  for (const [k, v] of Object.entries(data)) if (v !== null && v !== undefined) clean[k] = typeof v === 'bigint' ? fenNumber(v) : v;
  return reply.send({ code: 0, msg: 'SUCCESS', data: clean, sign: sign(clean, auth.app.secret, auth.signType) });
}

export function errorEnvelope(error: unknown, requestId: string): { status: number; body: Params } {
  if (error instanceof AppError) {
    return { status: error.status, body: { code: 9999, msg: error.message, errCode: error.code, message: error.message, requestId } };
  }
  const fe = error as { statusCode?: number; code?: string; message?: string };
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
    const code = fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ? 'PARAM_INVALID_JSON' : 'PARAM_INVALID';
    return { status: fe.statusCode, body: { code: 9999, msg: `请求格式错误 / ${fe.message}`, errCode: code, message: fe.message, requestId } };
  }
  return { status: 500, body: { code: 9999, msg: '系统繁忙 / internal error; quote the requestId', errCode: 'INTERNAL', requestId } };
}

// --- field readers: each failure says which field and what is expected ----------------

export function str(params: Params, name: string, options: { required?: boolean; max?: number; pattern?: RegExp } = {}): string | null {
  const raw = params[name];
  if (raw === undefined || raw === null || raw === '') {
    if (options.required) throw paymentErrors.missingParam(`缺少参数 ${name} / ${name} is required`);
    return null;
  }
  const value = typeof raw === 'number' ? String(raw) : raw;
  if (typeof value !== 'string') throw paymentErrors.invalidParam(`${name} 必须是字符串 / ${name} must be a string`);
  if (value.length > (options.max ?? 256)) throw paymentErrors.invalidParam(`${name} 最长 ${options.max ?? 256} 字符 / ${name} is too long`);
  if (options.pattern && !options.pattern.test(value)) throw paymentErrors.invalidParam(`${name} 格式不正确 / ${name} has an invalid format`);
  return value;
}

export function amount(params: Params, name: string): bigint {
  const raw = params[name];
  if (raw === undefined || raw === null || raw === '') throw paymentErrors.missingParam(`缺少金额 ${name}（单位：分）/ ${name} is required (integer fen)`);
  let fen: bigint | null = null;
  if (typeof raw === 'number' && Number.isSafeInteger(raw)) fen = BigInt(raw);
  else if (typeof raw === 'string' && /^-?[0-9]{1,19}$/.test(raw)) fen = BigInt(raw);
  if (fen === null) throw paymentErrors.invalidAmount(`${name} 必须是以分为单位的整数 / ${name} must be a whole number of fen (got ${JSON.stringify(raw)})`);
  if (fen < 1n) throw paymentErrors.invalidAmount(`${name} 至少为 1 分 / ${name} must be at least 1`);
  if (fen > AMOUNT_MAX_FEN) throw paymentErrors.invalidAmount(`${name} 超过单笔上限 ${AMOUNT_MAX_FEN} 分 / ${name} exceeds the per-order limit`);
  return fen;
}

export function int(params: Params, name: string, allowed: { min: number; max: number; fallback: number }): number {
  const raw = params[name];
  if (raw === undefined || raw === null || raw === '') return allowed.fallback;
  const n = typeof raw === 'number' ? raw : /^-?[0-9]{1,10}$/.test(String(raw)) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < allowed.min || n > allowed.max) throw paymentErrors.invalidParam(`${name} 必须是 ${allowed.min}–${allowed.max} 的整数 / ${name} must be an integer from ${allowed.min} to ${allowed.max}`);
  return n;
}

export function url(params: Params, name: string): string | null {
  const value = str(params, name, { max: 512 });
  if (value !== null && !/^https?:\/\/[^\s]+$/.test(value)) throw paymentErrors.invalidParam(`${name} 必须是 http(s) 地址 / ${name} must be an http(s) URL`);
  return value;
}

/** A URL the platform will call (notifyUrl): also no private, loopback or otherwise non-public host. */
export function callbackUrl(params: Params, name: string, outbound: Outbound): string | null {
  const value = url(params, name);
  if (value === null) return null;
  const verdict = outbound.checkUrl(value);
  if (!verdict.ok) {
    throw paymentErrors.notifyUrlForbidden(`${name} 不能指向内网、本机或保留地址 / ${name} must be a public http(s) address (${verdict.reason})`);
  }
  return value;
}

export function currency(params: Params): string {
  const value = str(params, 'currency', { required: true, max: 8 }) as string;
  if (value.toLowerCase() !== 'cny') throw paymentErrors.invalidParam('currency 目前只支持 cny / currency must be cny');
  return 'cny';
}

export function jsonText(params: Params, name: string, kind: 'object' | 'array'): string | null {
  const value = str(params, name, { max: 4096 });
  if (value === null) return null;
  try {
    const parsed = JSON.parse(value);
    if (kind === 'array' ? !Array.isArray(parsed) : typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('shape');
  } catch {
    throw paymentErrors.invalidParam(`${name} 必须是 JSON ${kind === 'array' ? '数组' : '对象'}字符串 / ${name} must be a JSON ${kind} string`);
  }
  return value;
}

export const NO_PATTERN = /^[A-Za-z0-9_\-.:]{1,64}$/;
