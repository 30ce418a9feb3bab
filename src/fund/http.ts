// Small helpers shared by the fund's routes: bigint-safe JSON and parameter parsing
// that answers 400 with a stable FUND_ code.
import { badRequest } from '../platform/errors.ts';
import { parseFen } from '../platform/money.ts';

export const toJson = (value: unknown) => JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));

export const security = [{ bearer: [] }];

export function fenParam(value: unknown, name: string, options: { min?: bigint; max?: bigint } = {}): bigint {
  const fen = parseFen(value);
  const min = options.min ?? 1n;
  const max = options.max ?? 100_000_000_000n;
  if (fen === null || fen < min || fen > max) throw badRequest('FUND_PARAM_INVALID', `${name} 须为 ${min}–${max} 的整数分 / ${name} must be whole fen between ${min} and ${max}`);
  return fen;
}

export function idParam(value: unknown, name: string): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_]{1,64}$/.test(value)) throw badRequest('FUND_PARAM_INVALID', `${name} 格式不对 / ${name} is not a valid id`);
  return value;
}

export function textParam(value: unknown, name: string, maxChars = 200, required = true): string {
  if (value === undefined && !required) return '';
  if (typeof value !== 'string' || (required && value.trim() === '') || [...value].length > maxChars) {
    throw badRequest('FUND_PARAM_INVALID', `${name} 必填，最多 ${maxChars} 字 / ${name} is required, at most ${maxChars} characters`);
  }
  return value.trim();
}
