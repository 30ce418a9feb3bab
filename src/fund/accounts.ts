// The fund's chart of accounts in the ledger (contract between the register/deposit
// and use/yield halves). Household accounts (分户账) are credit-normal and may not be
// overdrawn; the fund's bank account is debit-normal.
import type { Tx } from '../platform/db.ts';
import { assert } from '../platform/assert.ts';
import { ACCOUNT_FLAGS, type AccountInput, type Ledger } from '../ledger/index.ts';
import { LEDGER_CNY } from '../payment/types.ts';

export const FUND_ACCOUNT_CODE = { household_principal: 3101, household_interest: 3102, fund_bank: 3001, fund_yield: 3002, fund_payable: 3201 } as const;

/** Transfer codes the register/deposit half posts with (B uses its own in 33xx). */
export const FUND_TRANSFER_CODE = { deposit: 3501, counter_deposit: 3502, refund: 3503 } as const;

export const fundAccountIds = {
  principal: (unitId: string) => `hh:${unitId}:principal`, // 分户账 本金
  interest: (unitId: string) => `hh:${unitId}:interest`, // 分户账 利息 (增值收益)
  bank: (city: string) => `fund:${city}:bank`, // 专户 银行存款
  yield: (city: string) => `fund:${city}:yield`, // 增值收益 待分摊
  payable: (applicationId: string) => `fund:use:${applicationId}`, // approved repair money awaiting payout
};

/** At most this many units per call (each gets two accounts; the ledger takes 8190 per batch). */
export const HOUSEHOLD_BATCH_MAX = 4000;

const householdFlags = ACCOUNT_FLAGS.debits_must_not_exceed_credits | ACCOUNT_FLAGS.history;

async function create(tx: Tx, ledger: Ledger, accounts: AccountInput[]): Promise<void> {
  if (accounts.length === 0) return;
  const results = await ledger.createAccountsIn(tx, accounts);
  results.forEach((r, i) => assert(r === 'ok' || r === 'exists', `fund account ${accounts[i].id}: ${r}`));
}

/** Creates the principal and interest accounts of each unit (idempotent). */
export async function ensureHouseholdAccounts(tx: Tx, ledger: Ledger, unitIds: string[]): Promise<void> {
  assert(unitIds.length <= HOUSEHOLD_BATCH_MAX, 'household accounts batch within limit');
  const accounts: AccountInput[] = [];
  for (const unitId of unitIds) {
    accounts.push({ id: fundAccountIds.principal(unitId), ledger: LEDGER_CNY, code: FUND_ACCOUNT_CODE.household_principal, flags: householdFlags, ref: `unit:${unitId}`, metadata: null });
    accounts.push({ id: fundAccountIds.interest(unitId), ledger: LEDGER_CNY, code: FUND_ACCOUNT_CODE.household_interest, flags: householdFlags, ref: `unit:${unitId}`, metadata: null });
  }
  await create(tx, ledger, accounts);
}

/** Creates the city's fund bank and yield accounts (idempotent). */
export async function ensureFundAccounts(tx: Tx, ledger: Ledger, city: string): Promise<void> {
  await create(tx, ledger, [
    { id: fundAccountIds.bank(city), ledger: LEDGER_CNY, code: FUND_ACCOUNT_CODE.fund_bank, flags: ACCOUNT_FLAGS.history, ref: `city:${city}`, metadata: null },
    { id: fundAccountIds.yield(city), ledger: LEDGER_CNY, code: FUND_ACCOUNT_CODE.fund_yield, flags: ACCOUNT_FLAGS.history, ref: `city:${city}`, metadata: null },
  ]);
}
