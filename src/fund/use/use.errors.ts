// Expected refusals of the fund's use side: stable FUND_ codes, Chinese first.
import { AppError } from '../../platform/errors.ts';
import { CalcError } from '../calc/index.ts';

export const useErrors = {
  invalid: (message: string) => new AppError('FUND_INVALID_REQUEST', 400, message),
  notFound: (what: string, id: string) => new AppError(`FUND_${what.toUpperCase()}_NOT_FOUND`, 404, `${{ application: '支用申请', estate: '小区', building: '幢', batch: '结息批次' }[what] ?? what} ${id} 不存在 / no ${what} ${id}`),
  noUnits: () => new AppError('FUND_NO_UNITS_IN_SCOPE', 400, '所选范围内没有房屋，请检查幢号和单元 / no units in the chosen scope: check the building and stair'),
  scopeTooLarge: (max: number) => new AppError('FUND_SCOPE_TOO_LARGE', 400, `分摊范围超过 ${max} 户，请按幢或单元拆分申请 / more than ${max} units in scope: split the application by building or stair`),
  keyReused: (key: string) => new AppError('FUND_REQUEST_KEY_REUSED', 409, `请求键 ${key} 已用于另一个不同的请求 / requestKey ${key} was already used for a different request`),
  state: (status: string, wanted: string) => new AppError('FUND_INVALID_STATE', 409, `申请当前状态为 ${status}，不能${wanted} / the application is ${status}: cannot ${wanted}`),
  unitNotInScope: (unitId: string) => new AppError('FUND_UNIT_NOT_IN_SCOPE', 400, `房屋 ${unitId} 不在本申请的分摊范围内 / unit ${unitId} is not in this application's scope`),
  balanceShort: (short: Array<{ unitId: string; shareFen: bigint; availableFen: bigint; shortFen: bigint }>) => new AppError(
    'FUND_BALANCE_SHORT', 409,
    `${short.length} 户维修资金余额不足，需先续筹 / ${short.length} household(s) cannot pay their share: top up first (${short.slice(0, 10).map((s) => `${s.unitId} short ${s.shortFen} fen`).join(', ')}${short.length > 10 ? ', …' : ''})`,
    { short: short.map((s) => ({ unitId: s.unitId, shareFen: s.shareFen.toString(), availableFen: s.availableFen.toString(), shortFen: s.shortFen.toString() })) },
  ),
  accountBlocked: (accountId: string) => new AppError('FUND_ACCOUNT_BLOCKED', 409, `专户 ${accountId} 日终对账存在未处理差错，划拨暂停，请先处理对账差错 / the supervision account ${accountId} has an open reconciliation difference: resolve it (custos recon mistakes) before paying out`),
  payoutSettled: (status: string) => new AppError('FUND_PAYOUT_ALREADY_SETTLED', 409, `划拨结果已登记为 ${status}，不能更改 / the payout result was already recorded as ${status}`),
  fromCalc: (e: CalcError) => {
    if (e.code === 'invalid_transition') return new AppError('FUND_INVALID_TRANSITION', 409, e.message);
    if (e.code === 'role_not_allowed') return new AppError('FUND_FORBIDDEN', 403, e.message);
    if (e.code === 'units_too_many') return new AppError('FUND_SCOPE_TOO_LARGE', 400, e.message);
    if (e.code === 'no_weight') return new AppError('FUND_INTEREST_NO_BALANCE', 409, e.message);
    if (e.code === 'bad_period') return new AppError('FUND_INVALID_PERIOD', 400, e.message);
    return new AppError('FUND_INVALID_REQUEST', 400, e.message);
  },
};

/** Runs pure calculation code, turning its typed refusals into FUND_ AppErrors. */
export function calc<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof CalcError) throw useErrors.fromCalc(error);
    throw error;
  }
}

// --- small input readers (every bad field is a FUND_INVALID_REQUEST naming the field) ---

export type Body = Record<string, unknown>;

export function asBody(value: unknown, field: string | null = null): Body {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw useErrors.invalid(field === null ? '请求体应为 JSON 对象 / the body must be a JSON object' : `字段 ${field} 应为对象 / ${field} must be an object`);
  }
  return value as Body;
}

/** A string field; `label` names it in messages (e.g. "contractor.name"). */
export function str(b: Body, field: string, maxLen: number, optional = false, label = field): string | null {
  const v = b[field];
  if (v === undefined || v === null || v === '') {
    if (optional) return null;
    throw useErrors.invalid(`缺少字段 ${label} / ${label} is required`);
  }
  if (typeof v !== 'string' || v.length > maxLen || v.trim() === '') throw useErrors.invalid(`字段 ${label} 应为不超过 ${maxLen} 字的非空字符串 / ${label} must be a non-blank string of at most ${maxLen} characters`);
  return v.trim();
}

export function oneOf<T extends string>(b: Body, field: string, allowed: readonly T[], optional = false): T | null {
  const v = str(b, field, 64, optional);
  if (v === null) return null;
  if (!(allowed as readonly string[]).includes(v)) throw useErrors.invalid(`字段 ${field} 应为 ${allowed.join(' | ')} 之一 / ${field} must be one of ${allowed.join(', ')}`);
  return v as T;
}

export function fen(b: Body, field: string, max: bigint, label = field): bigint {
  const v = b[field];
  const text = typeof v === 'number' && Number.isSafeInteger(v) ? String(v) : v;
  if (typeof text !== 'string' || !/^[0-9]{1,15}$/.test(text) || BigInt(text) <= 0n || BigInt(text) > max) {
    throw useErrors.invalid(`字段 ${label} 应为正整数分（不超过 ${max}）/ ${label} must be a positive whole number of fen up to ${max}, as a string`);
  }
  return BigInt(text);
}

export const KEY_PATTERN = /^[A-Za-z0-9_.:\-]{1,64}$/;
export function requestKey(b: Body, optional = false): string | null {
  const v = str(b, 'requestKey', 64, optional);
  if (v !== null && !KEY_PATTERN.test(v)) throw useErrors.invalid('requestKey 只能含字母、数字和 _.:- ，最长 64 / requestKey: 1–64 of A-Z a-z 0-9 _ . : -');
  return v;
}
