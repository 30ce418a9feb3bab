// Transfers (转账 / payouts) from a merchant's balance to a bank card or wallet. The
// amount is held (pending ledger transfer) with the transfer row; the channel's
// result posts or voids it. A transfer number is sent to the channel once: retries
// and polling ask about the same id, so a payout is never paid twice.
import { transact, type Database } from '../platform/db.ts';
import { businessNo } from '../platform/ids.ts';
import { ChannelUnavailable, type ChannelAsyncState } from '../channel/contract.ts';
import * as repo from './payment.repo.ts';
import { forEachBounded } from '../platform/check-schedule.ts';
import { paymentErrors } from './payment.errors.ts';
import type { Channels } from './channels.ts';
import type { Postings } from './postings.ts';
import type { NotifyService } from './notify.service.ts';
import { requestHash } from './order.service.ts';
import { ASYNC_STATE, fenNumber } from './types.ts';

export interface TransferOrderInput {
  mchNo: string; appId: string; mchOrderNo: string; ifCode: string | null; entryType: string; amount: bigint; currency: string;
  accountNo: string; accountName: string | null; bankName: string | null; clientIp: string | null; transferDesc: string;
  notifyUrl: string | null; channelExtra: string | null; extParam: string | null;
}

export function transferParams(t: repo.TransferOrderRow): Record<string, unknown> {
  return {
    transferId: t.transfer_id, mchNo: t.mch_no, appId: t.app_id, mchOrderNo: t.mch_order_no, ifCode: t.if_code,
    entryType: t.entry_type, amount: fenNumber(t.amount), currency: t.currency, accountNo: t.account_no, accountName: t.account_name,
    bankName: t.bank_name, transferDesc: t.transfer_desc, state: t.state, channelOrderNo: t.channel_order_no, errCode: t.err_code,
    errMsg: t.err_msg, extParam: t.ext_param, successTime: t.success_at ? t.success_at.getTime() : null, createdAt: t.created_at.getTime(),
  };
}

export type TransferService = ReturnType<typeof createTransferService>;

export function createTransferService(deps: { db: Database; channels: Channels; postings: Postings; notify: NotifyService; publicUrl: string }) {
  const { db, channels, postings, notify } = deps;

  async function create(input: TransferOrderInput): Promise<repo.TransferOrderRow> {
    const hash = requestHash({ ...input, amount: input.amount.toString() });
    const ifCode = input.ifCode ?? channels.defaultIfCode;
    if (!channels.get(ifCode)) throw paymentErrors.invalidParam(`未知渠道 / unknown ifCode ${ifCode}`);
    const transferId = businessNo('T');
    const result = await transact(db, async (tx) => {
      const inserted = await repo.insertTransferOrder(tx, {
        transfer_id: transferId, mch_no: input.mchNo, app_id: input.appId, mch_order_no: input.mchOrderNo, if_code: ifCode,
        entry_type: input.entryType, amount: input.amount, currency: input.currency, account_no: input.accountNo,
        account_name: input.accountName, bank_name: input.bankName, client_ip: input.clientIp, transfer_desc: input.transferDesc,
        notify_url: input.notifyUrl, channel_extra: input.channelExtra, ext_param: input.extParam, state: ASYNC_STATE.processing,
        request_hash: hash,
      });
      if (!inserted) return { row: (await repo.findTransferByMchOrderNo(tx, input.mchNo, input.mchOrderNo)) as repo.TransferOrderRow, fresh: false };
      const held = await postings.payoutHeld(tx, { transferId, mchNo: input.mchNo, ifCode, amount: input.amount });
      if (!held) throw paymentErrors.balanceInsufficient('商户待结算余额不足，无法转账 / the merchant balance is too low for this transfer');
      return { row: (await repo.findTransferOrder(tx, transferId)) as repo.TransferOrderRow, fresh: true };
    });
    if (!result.fresh) {
      if (result.row.request_hash !== hash) {
        throw paymentErrors.duplicateOrderNo(`转账商户订单号已存在且参数不同 / mchOrderNo ${input.mchOrderNo} was already used for another transfer`);
      }
      return result.row;
    }
    return sendToChannel(result.row);
  }

  async function sendToChannel(t: repo.TransferOrderRow): Promise<repo.TransferOrderRow> {
    const adapter = channels.get(t.if_code);
    if (!adapter) return t;
    let state: ChannelAsyncState;
    try {
      state = await adapter.transfer({
        transferId: t.transfer_id, amountFen: t.amount, entryType: t.entry_type, accountNo: t.account_no, accountName: t.account_name,
        bankName: t.bank_name, desc: t.transfer_desc, notifyUrl: `${deps.publicUrl}/api/channel/notify/${t.if_code}`,
      });
    } catch (error) {
      if (error instanceof ChannelUnavailable) return t;
      throw error;
    }
    return applyChannelState(t.transfer_id, state);
  }

  async function applyChannelState(transferId: string, state: ChannelAsyncState): Promise<repo.TransferOrderRow> {
    if (state.status !== 'success' && state.status !== 'failed') {
      if (state.channelNo) await repo.updateTransferOrder(db.kysely, transferId, { channel_order_no: state.channelNo });
      return (await repo.findTransferOrder(db.kysely, transferId)) as repo.TransferOrderRow;
    }
    return transact(db, async (tx) => {
      const t = await repo.findTransferOrder(tx, transferId, true);
      if (!t) throw paymentErrors.transferNotFound(`no transfer ${transferId}`);
      if (t.state === ASYNC_STATE.success || t.state === ASYNC_STATE.failed) return t;
      const succeeded = state.status === 'success';
      await postings.payoutSettled(tx, transferId, succeeded);
      const fields: Partial<repo.TransferOrderRow> = succeeded
        ? { state: ASYNC_STATE.success, success_at: state.successAt ?? new Date(), channel_order_no: state.channelNo }
        : { state: ASYNC_STATE.failed, err_code: state.errCode ?? 'TRANSFER_FAILED', err_msg: state.errMsg, channel_order_no: state.channelNo };
      await repo.updateTransferOrder(tx, transferId, fields);
      const settled = { ...t, ...fields } as repo.TransferOrderRow;
      await notify.enqueue(tx, { kind: 'transfer_order', refId: transferId, mchNo: t.mch_no, appId: t.app_id, notifyUrl: t.notify_url, params: transferParams(settled) });
      return settled;
    });
  }

  async function findForMerchant(mchNo: string, key: { transferId?: string | null; mchOrderNo?: string | null }): Promise<repo.TransferOrderRow> {
    const t = key.transferId ? await repo.findTransferOrder(db.kysely, key.transferId)
      : key.mchOrderNo ? await repo.findTransferByMchOrderNo(db.kysely, mchNo, key.mchOrderNo) : null;
    if (!t || t.mch_no !== mchNo) throw paymentErrors.transferNotFound(`转账单不存在 / no transfer ${key.transferId ?? key.mchOrderNo}`);
    return t;
  }

  /** One round of the check schedule over the due open ones (see orders.pollOpen); resends (same id) those the channel never saw. */
  async function pollOpen(o: { forceBefore: Date | null; limit: number; concurrency: number; now?: Date }): Promise<number> {
    const open = await repo.claimDueTransfers(db.kysely, { now: o.now ?? new Date(), limit: o.limit, forceBefore: o.forceBefore });
    let settled = 0;
    await forEachBounded(open, o.concurrency, async (t) => {
      const adapter = channels.get(t.if_code);
      if (!adapter) return;
      const state = await adapter.queryTransfer(t.transfer_id);
      if (state.status === 'not_found') {
        await sendToChannel(t);
        return;
      }
      const after = await applyChannelState(t.transfer_id, state);
      if (after.state === ASYNC_STATE.success || after.state === ASYNC_STATE.failed) settled += 1;
    }, () => {});
    return settled;
  }

  return { create, applyChannelState, findForMerchant, pollOpen };
}
