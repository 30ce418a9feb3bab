// Refunds (退款): partial and repeated, never above what was paid. Creating a refund
// holds its amount on the merchant's pending account (a pending ledger transfer) in
// the same transaction as the refund row; the channel's answer posts or voids it.
import { transact, type Database, type Tx } from '../platform/db.ts';
import { businessNo } from '../platform/ids.ts';
import { ChannelUnavailable, type ChannelAsyncState } from '../channel/contract.ts';
import * as repo from './payment.repo.ts';
import { forEachBounded } from '../platform/check-schedule.ts';
import { paymentErrors } from './payment.errors.ts';
import type { Channels } from './channels.ts';
import type { Postings } from './postings.ts';
import type { NotifyService } from './notify.service.ts';
import { requestHash } from './order.service.ts';
import { ASYNC_STATE, PAY_STATE, fenNumber } from './types.ts';

export interface RefundInput {
  mchNo: string; appId: string; payOrderId: string | null; mchOrderNo: string | null; mchRefundNo: string; refundAmount: bigint;
  currency: string; refundReason: string; clientIp: string | null; notifyUrl: string | null; channelExtra: string | null; extParam: string | null;
}

export function refundParams(r: repo.RefundRow): Record<string, unknown> {
  return {
    refundOrderId: r.refund_order_id, payOrderId: r.pay_order_id, mchNo: r.mch_no, appId: r.app_id, mchRefundNo: r.mch_refund_no,
    payAmount: fenNumber(r.pay_amount), refundAmount: fenNumber(r.refund_amount), currency: r.currency, state: r.state,
    channelOrderNo: r.channel_refund_no, errCode: r.err_code, errMsg: r.err_msg, extParam: r.ext_param,
    successTime: r.success_at ? r.success_at.getTime() : null, createdAt: r.created_at.getTime(),
  };
}

export type RefundService = ReturnType<typeof createRefundService>;

export function createRefundService(deps: { db: Database; channels: Channels; postings: Postings; notify: NotifyService; publicUrl: string; onRefunded?: (tx: Tx, refund: repo.RefundRow) => Promise<void> }) {
  const { db, channels, postings, notify } = deps;

  async function create(input: RefundInput): Promise<repo.RefundRow> {
    const hash = requestHash({ ...input, refundAmount: input.refundAmount.toString() });
    const existing = await repo.findRefundByMchRefundNo(db.kysely, input.mchNo, input.mchRefundNo);
    if (existing) return sameOrConflict(existing, hash);
    const refundOrderId = businessNo('R');
    const created = await transact(db, async (tx) => {
      const order = input.payOrderId ? await repo.findPayOrder(tx, input.payOrderId, true)
        : await lockByMchOrderNo(tx, input.mchNo, input.mchOrderNo as string);
      if (!order || order.mch_no !== input.mchNo) throw paymentErrors.orderNotFound(`订单不存在 / no order ${input.payOrderId ?? input.mchOrderNo}`);
      if (order.state !== PAY_STATE.success) {
        throw paymentErrors.orderStateInvalid(`订单未支付成功，不能退款 / only paid orders can be refunded (state ${order.state})`);
      }
      // Under the order's lock: a concurrent refund with the same number waits here.
      const again = await repo.findRefundByMchRefundNo(tx, input.mchNo, input.mchRefundNo);
      if (again) return { row: again, fresh: false };
      const active = await repo.sumActiveRefunds(tx, order.pay_order_id);
      if (active + input.refundAmount > order.amount) {
        throw paymentErrors.refundExceeds(`退款总额不能超过支付金额：已退/退款中 ${active} 分，本次 ${input.refundAmount} 分，支付 ${order.amount} 分 / refunds would exceed the paid amount`);
      }
      const row = {
        refund_order_id: refundOrderId, pay_order_id: order.pay_order_id, mch_no: order.mch_no, app_id: input.appId,
        mch_refund_no: input.mchRefundNo, if_code: order.if_code as string, pay_amount: order.amount, refund_amount: input.refundAmount,
        currency: input.currency, refund_reason: input.refundReason, client_ip: input.clientIp, notify_url: input.notifyUrl,
        channel_extra: input.channelExtra, ext_param: input.extParam, state: ASYNC_STATE.processing, request_hash: hash,
      };
      if (!(await repo.insertRefund(tx, row))) {
        const other = await repo.findRefundByMchRefundNo(tx, input.mchNo, input.mchRefundNo);
        return { row: other as repo.RefundRow, fresh: false };
      }
      const held = await postings.refundHeld(tx, { refundOrderId, mchNo: order.mch_no, ifCode: order.if_code as string, amount: input.refundAmount });
      if (!held) throw paymentErrors.balanceInsufficient('商户待结算余额不足，无法退款（可能已分账或结算）/ the merchant balance is too low for this refund (already divided or settled)');
      return { row: (await repo.findRefund(tx, refundOrderId)) as repo.RefundRow, fresh: true };
    });
    if (!created.fresh) return sameOrConflict(created.row, hash);
    return sendToChannel(created.row);
  }

  function sameOrConflict(existing: repo.RefundRow, hash: string): repo.RefundRow {
    if (existing.request_hash !== hash) {
      throw paymentErrors.duplicateRefundNo(`商户退款单号已存在且参数不同 / mchRefundNo ${existing.mch_refund_no} was already used with different parameters`);
    }
    return existing;
  }

  async function lockByMchOrderNo(tx: Tx, mchNo: string, mchOrderNo: string) {
    const found = await repo.findPayOrderByMchOrderNo(tx, mchNo, mchOrderNo);
    return found ? repo.findPayOrder(tx, found.pay_order_id, true) : null;
  }

  async function sendToChannel(refund: repo.RefundRow): Promise<repo.RefundRow> {
    const adapter = channels.get(refund.if_code);
    if (!adapter) return refund;
    const order = (await repo.findPayOrder(db.kysely, refund.pay_order_id)) as repo.PayOrderRow;
    let state: ChannelAsyncState;
    try {
      state = await adapter.refund({
        refundOrderId: refund.refund_order_id, payOrderId: refund.pay_order_id, channelOrderNo: order.channel_order_no,
        payAmountFen: refund.pay_amount, refundAmountFen: refund.refund_amount, reason: refund.refund_reason,
        notifyUrl: `${deps.publicUrl}/api/channel/notify/${refund.if_code}`,
      });
    } catch (error) {
      if (error instanceof ChannelUnavailable) return refund; // stays in progress; polling asks again
      throw error;
    }
    return applyChannelState(refund.refund_order_id, state);
  }

  /** Settles a refund from the channel's word: post or void the hold, notify. Idempotent. */
  async function applyChannelState(refundOrderId: string, state: ChannelAsyncState): Promise<repo.RefundRow> {
    if (state.status !== 'success' && state.status !== 'failed') {
      if (state.channelNo) await repo.updateRefund(db.kysely, refundOrderId, { channel_refund_no: state.channelNo });
      return (await repo.findRefund(db.kysely, refundOrderId)) as repo.RefundRow;
    }
    return transact(db, async (tx) => {
      const refund = await repo.findRefund(tx, refundOrderId, true);
      if (!refund) throw paymentErrors.refundNotFound(`no refund ${refundOrderId}`);
      if (refund.state === ASYNC_STATE.success || refund.state === ASYNC_STATE.failed) return refund;
      const order = (await repo.findPayOrder(tx, refund.pay_order_id, true)) as repo.PayOrderRow;
      const succeeded = state.status === 'success';
      await postings.refundSettled(tx, refundOrderId, succeeded);
      const fields: Partial<repo.RefundRow> = succeeded
        ? { state: ASYNC_STATE.success, success_at: state.successAt ?? new Date(), channel_refund_no: state.channelNo }
        : { state: ASYNC_STATE.failed, err_code: state.errCode ?? 'REFUND_FAILED', err_msg: state.errMsg, channel_refund_no: state.channelNo };
      await repo.updateRefund(tx, refundOrderId, fields);
      if (succeeded) {
        const refunded = order.refund_amount + refund.refund_amount;
        await repo.updatePayOrder(tx, order.pay_order_id, {
          refund_amount: refunded, refund_times: order.refund_times + 1,
          state: refunded === order.amount ? PAY_STATE.refunded : order.state,
        });
      }
      const settled = { ...refund, ...fields } as repo.RefundRow;
      if (succeeded && deps.onRefunded) await deps.onRefunded(tx, settled);
      await notify.enqueue(tx, { kind: 'refund_order', refId: refundOrderId, mchNo: refund.mch_no, appId: refund.app_id, notifyUrl: refund.notify_url, params: refundParams(settled) });
      return settled;
    });
  }

  async function findForMerchant(mchNo: string, key: { refundOrderId?: string | null; mchRefundNo?: string | null }): Promise<repo.RefundRow> {
    const refund = key.refundOrderId ? await repo.findRefund(db.kysely, key.refundOrderId)
      : key.mchRefundNo ? await repo.findRefundByMchRefundNo(db.kysely, mchNo, key.mchRefundNo) : null;
    if (!refund || refund.mch_no !== mchNo) throw paymentErrors.refundNotFound(`退款单不存在 / no refund ${key.refundOrderId ?? key.mchRefundNo}`);
    return refund;
  }

  /** One round of the check schedule over the due open ones (see orders.pollOpen); resends (same id) those the channel never saw. */
  async function pollOpen(o: { forceBefore: Date | null; limit: number; concurrency: number; now?: Date }): Promise<number> {
    const open = await repo.claimDueRefunds(db.kysely, { now: o.now ?? new Date(), limit: o.limit, forceBefore: o.forceBefore });
    let settled = 0;
    await forEachBounded(open, o.concurrency, async (refund) => {
      const adapter = channels.get(refund.if_code);
      if (!adapter) return;
      const state = await adapter.queryRefund(refund.refund_order_id);
      if (state.status === 'not_found') {
        await sendToChannel(refund);
        return;
      }
      const after = await applyChannelState(refund.refund_order_id, state);
      if (after.state === ASYNC_STATE.success || after.state === ASYNC_STATE.failed) settled += 1;
    }, () => {});
    return settled;
  }

  return { create, applyChannelState, findForMerchant, pollOpen };
}
