// Expected refusals of the pure calculations: a typed error with a stable code, so the
// service layer can map it to an HTTP 4xx (FUND_…) without parsing messages.

export type CalcErrorCode =
  | 'no_units'
  | 'duplicate_unit'
  | 'area_not_positive'
  | 'amount_negative'
  | 'balance_negative'
  | 'no_weight'
  | 'units_too_many'
  | 'bad_period'
  | 'bad_ballot'
  | 'bad_chain'
  | 'invalid_transition'
  | 'role_not_allowed';

export class CalcError extends Error {
  readonly code: CalcErrorCode;
  constructor(code: CalcErrorCode, message: string) {
    super(message);
    this.name = 'CalcError';
    this.code = code;
  }
}

/** Byte-wise (code unit) order of ids, the same order as the database's COLLATE "C" for ASCII ids. */
export const compareIds = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
