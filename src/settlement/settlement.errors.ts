// Expected failures of settlement, each with a stable code, an HTTP status and a
// message that says what to fix (Chinese first).
import { AppError } from '../platform/errors.ts';

const make = (code: string, status: number) => (message: string) => new AppError(code, status, message);

export const settleErrors = {
  invalidParam: make('PARAM_INVALID', 400),
  feeRuleInvalid: make('FEE_RULE_INVALID', 400),
  dateInvalid: make('SETTLE_DATE_INVALID', 400),
  dateFuture: make('SETTLE_DATE_FUTURE', 400),
  merchantNotFound: make('MERCHANT_NOT_FOUND', 404),
  partyNotFound: make('PARTY_NOT_FOUND', 404),
  settlementNotFound: make('SETTLEMENT_NOT_FOUND', 404),
  batchNotFound: make('BATCH_NOT_FOUND', 404),
  holdNotFound: make('HOLD_NOT_FOUND', 404),
  holdConflict: make('HOLD_CONFLICT', 409),
  settlementState: make('SETTLEMENT_STATE_INVALID', 409),
  balanceInsufficient: make('BALANCE_INSUFFICIENT', 409),
  accountMissing: make('PARTY_ACCOUNT_MISSING', 409),
};
