// Expected failures of risk rules and the risk admin API (stable codes, zh-CN / English).
import { AppError } from '../platform/errors.ts';

const make = (code: string, status: number) => (message: string) => new AppError(code, status, message);

export const riskErrors = {
  /** An order refused by an amount or velocity rule. */
  limitExceeded: make('RISK_LIMIT_EXCEEDED', 403),
  /** An order from a blocked merchant, payer IP or payer account. */
  blocked: make('RISK_BLOCKED', 403),
  invalidParam: make('RISK_PARAM_INVALID', 400),
  alertNotFound: make('RISK_ALERT_NOT_FOUND', 404),
  blockNotFound: make('RISK_BLOCK_NOT_FOUND', 404),
};
