// Settlement's ledger postings (chart of accounts in docs/architecture.md). They run inside the
// caller's transaction, beside the settlement entries that mirror them, so a posting
// and the day it becomes available commit together.
import type { Tx } from '../platform/db.ts';
import { assert } from '../platform/assert.ts';
import type { Ledger, TransferInput, TransferResultCode } from '../ledger/index.ts';
import { ACCOUNT_FLAGS, TRANSFER_FLAGS } from '../ledger/index.ts';
import { ACCOUNT_CODE, LEDGER_CNY, accountIds } from '../payment/index.ts';

export const SETTLE_ACCOUNT_CODE = {
  utility_collection: 2101, // 代收水电 (credit normal), per merchant and bureau
  fee_income: 4001, // 手续费收入 (credit normal), platform
  channel_cost: 5001, // 渠道成本 (debit normal), platform
} as const;
export const SETTLE_TRANSFER_CODE = {
  fee: 201, channel_cost: 202, utility: 203, split: 204, fee_return: 205, cost_return: 206, clawback: 207, payout: 210,
} as const;

export const settleAccountIds = {
  feeIncome: 'plat:fee_income',
  channelCost: 'plat:channel_cost',
  utility: (mchNo: string, bureau: string) => `util:${mchNo}:${bureau}`,
};

export interface Posting { id: string; debit: string; credit: string; amountFen: bigint; code: number; ref: string }

export type SettlePostings = ReturnType<typeof createSettlePostings>;

export function createSettlePostings(ledger: Ledger) {
  const accountFor = (id: string) => {
    if (id === settleAccountIds.feeIncome) return { id, code: SETTLE_ACCOUNT_CODE.fee_income, flags: 0, ref: 'platform:fee_income' };
    if (id === settleAccountIds.channelCost) return { id, code: SETTLE_ACCOUNT_CODE.channel_cost, flags: 0, ref: 'platform:channel_cost' };
    const [kind, a, b] = id.split(':');
    const guarded = ACCOUNT_FLAGS.debits_must_not_exceed_credits | ACCOUNT_FLAGS.history;
    if (kind === 'mch') return { id, code: ACCOUNT_CODE.merchant_pending, flags: guarded, ref: `merchant:${a}` };
    if (kind === 'util') return { id, code: SETTLE_ACCOUNT_CODE.utility_collection, flags: guarded, ref: `utility:${a}:${b}` };
    if (kind === 'ch') return { id, code: ACCOUNT_CODE.channel_clearing, flags: 0, ref: `channel:${a}` };
    throw new Error(`no account shape for ${id}`);
  };

  /** Creates the accounts if they are not there yet (idempotent; same fields as the payment center's). */
  async function ensureAccounts(tx: Tx, ids: string[]): Promise<void> {
    const unique = [...new Set(ids)];
    const results = await ledger.createAccountsIn(tx, unique.map((id) => ({ ...accountFor(id), ledger: LEDGER_CNY, metadata: null })));
    results.forEach((r, i) => assert(r === 'ok' || r === 'exists', `settlement account ${unique[i]}: ${r}`));
  }

  const plain = (p: Posting, flags = 0): TransferInput => ({
    id: p.id, debit_account_id: p.debit, credit_account_id: p.credit, amount: p.amountFen, ledger: LEDGER_CNY, code: p.code,
    flags, pending_id: null, timeout_s: 0, ref: p.ref, metadata: null,
  });

  return {
    ensureAccounts,
    /** Posts transfers that must succeed (amounts > 0 only); an overdraft is a bug. */
    async post(tx: Tx, postings: Posting[]): Promise<void> {
      const live = postings.filter((p) => p.amountFen > 0n);
      if (live.length === 0) return;
      await ensureAccounts(tx, live.flatMap((p) => [p.debit, p.credit]));
      const results = await ledger.applyInTransaction(tx, live.map((p) => plain(p)));
      results.forEach((r, i) => assert(r === 'ok' || r === 'exists', `settlement posting ${live[i].id}: ${r}`));
    },
    /** Posts a transfer that may be refused for want of balance; returns whether it went through. */
    async tryPost(tx: Tx, p: Posting): Promise<boolean> {
      if (p.amountFen <= 0n) return true;
      await ensureAccounts(tx, [p.debit, p.credit]);
      const [r] = await ledger.applyInTransaction(tx, [plain(p)]);
      if (r === 'exceeds_credits' || r === 'id_already_failed') return false;
      assert(r === 'ok' || r === 'exists', `settlement posting ${p.id}: ${r}`);
      return true;
    },
    /** Payout holds (pending transfers), one per payout; returns each result. Accounts must exist. */
    async holdPayouts(tx: Tx, payouts: Array<{ payoutId: string; partyId: string; ifCode: string; amountFen: bigint }>): Promise<TransferResultCode[]> {
      if (payouts.length === 0) return [];
      return ledger.applyInTransaction(tx, payouts.map((p) => plain({
        id: `stl:${p.payoutId}`, debit: p.partyId, credit: accountIds.channelClearing(p.ifCode), amountFen: p.amountFen, code: SETTLE_TRANSFER_CODE.payout, ref: p.payoutId,
      }, TRANSFER_FLAGS.pending)));
    },
    async payoutSettled(tx: Tx, payoutId: string, succeeded: boolean): Promise<void> {
      const flag = succeeded ? TRANSFER_FLAGS.post_pending : TRANSFER_FLAGS.void_pending;
      const [r] = await ledger.applyInTransaction(tx, [{
        id: `stl:${payoutId}:${succeeded ? 'post' : 'void'}`, debit_account_id: null, credit_account_id: null, amount: null, ledger: 0, code: 0,
        flags: flag, pending_id: `stl:${payoutId}`, timeout_s: 0, ref: payoutId, metadata: null,
      }]);
      assert(r === 'ok' || r === 'exists', `payout ${succeeded ? 'post' : 'void'} ${payoutId}: ${r}`);
    },
  };
}
