// The ledger's data model (TigerBeetle's, adapted): accounts with four balances and
// a version, transfers that debit one account and credit another on the same ledger.

export const ACCOUNT_FLAGS = {
  debits_must_not_exceed_credits: 1,
  credits_must_not_exceed_debits: 2,
  history: 4,
} as const;
export type AccountFlagName = keyof typeof ACCOUNT_FLAGS;
export const ACCOUNT_FLAGS_ALL = 7;

export const TRANSFER_FLAGS = {
  linked: 1,
  pending: 2,
  post_pending: 4,
  void_pending: 8,
  closing_debit: 16,
  closing_credit: 32,
} as const;
export type TransferFlagName = keyof typeof TRANSFER_FLAGS;
export const TRANSFER_FLAGS_ALL = 63;

/** States of a pending transfer (column `status`). */
export const PENDING_STATUS = { pending: 1, posted: 2, voided: 3, expired: 4 } as const;

/** At most this many transfers (or accounts) in one call, as in TigerBeetle. */
export const BATCH_MAX = 8190;
/** Longest pending timeout: one year. */
export const TIMEOUT_S_MAX = 366 * 24 * 3600;
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$/;
/** Ids the ledger makes itself (expiry voids) start with '#', which clients cannot use. */
export const EXPIRY_ID_PREFIX = '#expire:';

export interface AccountInput {
  id: string;
  ledger: number;
  code: number;
  flags: number;
  ref: string | null;
  metadata: string | null; // canonical JSON text or null
}

export interface Account {
  id: string;
  ledger: number;
  code: number;
  flags: number;
  ref: string | null;
  metadata: string | null;
  debits_posted: bigint;
  credits_posted: bigint;
  debits_pending: bigint;
  credits_pending: bigint;
  version: bigint;
  closed: boolean;
  ts: bigint;
}

export interface TransferInput {
  id: string;
  debit_account_id: string | null;
  credit_account_id: string | null;
  /** null: for post_pending the full pending amount, for void_pending the pending amount. */
  amount: bigint | null;
  ledger: number;
  code: number;
  flags: number;
  pending_id: string | null;
  timeout_s: number;
  ref: string | null;
  metadata: string | null;
}

/** A row of ledger_transfers: an applied transfer, or a failed id (failure set). */
export interface TransferRow {
  id: string;
  ts: bigint;
  debit_account_id: string | null;
  credit_account_id: string | null;
  amount: bigint;
  ledger: number;
  code: number;
  flags: number;
  pending_id: string | null;
  timeout_s: number;
  expires_at: bigint;
  status: number | null;
  ref: string | null;
  metadata: string | null;
  failure: string | null;
  dr: Balances | null;
  cr: Balances | null;
}

export interface Balances {
  debits_posted: bigint;
  credits_posted: bigint;
  debits_pending: bigint;
  credits_pending: bigint;
}

export type AccountResultCode =
  | 'ok'
  | 'exists'
  | 'exists_with_different_fields'
  | 'id_invalid'
  | 'ledger_must_not_be_zero'
  | 'code_must_not_be_zero'
  | 'flags_invalid'
  | 'flags_are_mutually_exclusive';

export type TransferResultCode =
  | 'ok'
  | 'exists'
  | 'exists_with_different_fields'
  | 'id_already_failed'
  | 'id_invalid'
  | 'flags_invalid'
  | 'flags_are_mutually_exclusive'
  | 'closing_transfer_must_be_pending'
  | 'account_id_must_not_be_empty'
  | 'accounts_must_be_different'
  | 'amount_must_be_positive'
  | 'ledger_must_not_be_zero'
  | 'code_must_not_be_zero'
  | 'timeout_reserved_for_pending_transfer'
  | 'pending_id_must_be_empty'
  | 'pending_id_must_not_be_empty'
  | 'pending_id_must_be_different'
  | 'account_not_found'
  | 'ledger_mismatch'
  | 'account_closed'
  | 'overflows'
  | 'exceeds_credits'
  | 'exceeds_debits'
  | 'pending_not_found'
  | 'pending_transfer_not_pending'
  | 'pending_mismatch'
  | 'pending_already_resolved'
  | 'pending_expired'
  | 'exceeds_pending_amount'
  | 'pending_amount_mismatch'
  | 'linked_event_failed'
  | 'linked_event_chain_open';

export interface TransferResult {
  id: string;
  result: TransferResultCode;
}
export interface AccountResult {
  id: string;
  result: AccountResultCode;
}

export function flagsToNames<T extends Record<string, number>>(table: T, flags: number): Array<keyof T & string> {
  const names: Array<keyof T & string> = [];
  for (const [name, bit] of Object.entries(table)) if ((flags & bit) !== 0) names.push(name as keyof T & string);
  return names;
}
