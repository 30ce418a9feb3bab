// The payment center's ledger postings (chart of accounts in docs/architecture.md). Every call
// runs inside the caller's transaction, so an order's state change and its postings
// commit together. No 二清: money sits in the channel's clearing account (what the
// channel owes) and the merchant's pending account (what is owed to the merchant);
// there is no platform account that receives merchant money.
import type { Tx } from '../platform/db.ts';
import { assert } from '../platform/assert.ts';
import type { Ledger, TransferInput, TransferResultCode } from '../ledger/index.ts';
import { ACCOUNT_FLAGS, TRANSFER_FLAGS } from '../ledger/index.ts';
import { ACCOUNT_CODE, LEDGER_CNY, TRANSFER_CODE, accountIds } from './types.ts';

export type Postings = ReturnType<typeof createPostings>;

export function createPostings(ledger: Ledger) {
  /** Creates the accounts a posting needs if they are not there yet (idempotent). */
  async function ensureAccounts(tx: Tx, accounts: Array<{ id: string; code: number; flags: number; ref: string }>) {
    const results = await ledger.createAccountsIn(tx, accounts.map((a) => ({ id: a.id, ledger: LEDGER_CNY, code: a.code, flags: a.flags, ref: a.ref, metadata: null })));
    results.forEach((r, i) => assert(r === 'ok' || r === 'exists', `payment account ${accounts[i].id}: ${r}`));
  }

  const channel = (ifCode: string) => ({ id: accountIds.channelClearing(ifCode), code: ACCOUNT_CODE.channel_clearing, flags: 0, ref: `channel:${ifCode}` });
  const merchant = (mchNo: string) => ({
    id: accountIds.merchantPending(mchNo), code: ACCOUNT_CODE.merchant_pending,
    flags: ACCOUNT_FLAGS.debits_must_not_exceed_credits | ACCOUNT_FLAGS.history, ref: `merchant:${mchNo}`,
  });

  function transfer(id: string, debit: string | null, credit: string | null, amount: bigint | null, code: number, flags: number, pendingId: string | null, ref: string): TransferInput {
    return { id, debit_account_id: debit, credit_account_id: credit, amount, ledger: flags & (TRANSFER_FLAGS.post_pending | TRANSFER_FLAGS.void_pending) ? 0 : LEDGER_CNY, code: flags & (TRANSFER_FLAGS.post_pending | TRANSFER_FLAGS.void_pending) ? 0 : code, flags, pending_id: pendingId, timeout_s: 0, ref, metadata: null };
  }

  async function apply(tx: Tx, transfers: TransferInput[]): Promise<TransferResultCode[]> {
    return ledger.applyInTransaction(tx, transfers);
  }

  const ok = (r: TransferResultCode) => r === 'ok' || r === 'exists';

  return {
    /** Payment success: Dr channel clearing, Cr merchant pending. */
    async paymentSucceeded(tx: Tx, o: { payOrderId: string; mchNo: string; ifCode: string; amount: bigint }) {
      await ensureAccounts(tx, [channel(o.ifCode), merchant(o.mchNo)]);
      const [r] = await apply(tx, [transfer(`pay:${o.payOrderId}`, accountIds.channelClearing(o.ifCode), accountIds.merchantPending(o.mchNo), o.amount, TRANSFER_CODE.payment, 0, null, o.payOrderId)]);
      assert(ok(r), `payment posting for ${o.payOrderId}: ${r}`);
    },
    /** Refund requested: hold the amount on the merchant's pending account. Returns false when the balance is short. */
    async refundHeld(tx: Tx, r: { refundOrderId: string; mchNo: string; ifCode: string; amount: bigint }): Promise<boolean> {
      await ensureAccounts(tx, [channel(r.ifCode), merchant(r.mchNo)]);
      const [res] = await apply(tx, [transfer(`refund:${r.refundOrderId}`, accountIds.merchantPending(r.mchNo), accountIds.channelClearing(r.ifCode), r.amount, TRANSFER_CODE.refund, TRANSFER_FLAGS.pending, null, r.refundOrderId)]);
      if (res === 'exceeds_credits') return false;
      assert(ok(res), `refund hold for ${r.refundOrderId}: ${res}`);
      return true;
    },
    async refundSettled(tx: Tx, refundOrderId: string, succeeded: boolean) {
      const flag = succeeded ? TRANSFER_FLAGS.post_pending : TRANSFER_FLAGS.void_pending;
      const [res] = await apply(tx, [transfer(`refund:${refundOrderId}:${succeeded ? 'post' : 'void'}`, null, null, null, TRANSFER_CODE.refund, flag, `refund:${refundOrderId}`, refundOrderId)]);
      assert(ok(res), `refund ${succeeded ? 'post' : 'void'} for ${refundOrderId}: ${res}`);
    },
    /** Payout requested: hold on the merchant's pending account until the channel answers. */
    async payoutHeld(tx: Tx, p: { transferId: string; mchNo: string; ifCode: string; amount: bigint }): Promise<boolean> {
      await ensureAccounts(tx, [channel(p.ifCode), merchant(p.mchNo)]);
      const [res] = await apply(tx, [transfer(`payout:${p.transferId}`, accountIds.merchantPending(p.mchNo), accountIds.channelClearing(p.ifCode), p.amount, TRANSFER_CODE.payout, TRANSFER_FLAGS.pending, null, p.transferId)]);
      if (res === 'exceeds_credits') return false;
      assert(ok(res), `payout hold for ${p.transferId}: ${res}`);
      return true;
    },
    async payoutSettled(tx: Tx, transferId: string, succeeded: boolean) {
      const flag = succeeded ? TRANSFER_FLAGS.post_pending : TRANSFER_FLAGS.void_pending;
      const [res] = await apply(tx, [transfer(`payout:${transferId}:${succeeded ? 'post' : 'void'}`, null, null, null, TRANSFER_CODE.payout, flag, `payout:${transferId}`, transferId)]);
      assert(ok(res), `payout ${succeeded ? 'post' : 'void'} for ${transferId}: ${res}`);
    },
    /** Division: Dr merchant pending, Cr each receiver, as one linked chain. Returns false when the balance is short. */
    async divided(tx: Tx, d: { mchNo: string; parts: Array<{ divisionId: string; receiverId: string; amount: bigint }> }): Promise<boolean> {
      await ensureAccounts(tx, [merchant(d.mchNo), ...d.parts.map((p) => ({
        id: accountIds.receiver(p.receiverId), code: ACCOUNT_CODE.division_receiver, flags: ACCOUNT_FLAGS.debits_must_not_exceed_credits, ref: `receiver:${p.receiverId}`,
      }))]);
      const transfers = d.parts.map((p, i) => transfer(`div:${p.divisionId}`, accountIds.merchantPending(d.mchNo), accountIds.receiver(p.receiverId), p.amount, TRANSFER_CODE.division, i < d.parts.length - 1 ? TRANSFER_FLAGS.linked : 0, null, p.divisionId));
      const results = await apply(tx, transfers);
      if (results.some((r) => r === 'exceeds_credits')) return false;
      results.forEach((r, i) => assert(ok(r), `division ${d.parts[i].divisionId}: ${r}`));
      return true;
    },
  };
}
