// Pay orders (支付订单): unified order, query, close, the H5 cashier's choice, and
// the one success path that every source (channel notification, polling, closing,
// reconciliation) goes through: lock the order, post to the ledger, change state,
// queue the merchant's notification — one transaction, exactly once.
import { createHash } from 'node:crypto';
import { transact, type Database, type Tx } from '../platform/db.ts';
import { businessNo } from '../platform/ids.ts';
import { AppError } from '../platform/errors.ts';
import { ChannelUnavailable, type ChannelAdapter, type ChannelOrderState } from '../channel/contract.ts';
import * as repo from './payment.repo.ts';
import { paymentErrors } from './payment.errors.ts';
import { allChannelsOpen, type Channels } from './channels.ts';
import { ChannelRejected } from '../channel/guard.ts';
import type { Postings } from './postings.ts';
import type { NotifyService } from './notify.service.ts';
import { PAY_STATE, fenNumber } from './types.ts';
import { GroupCommit } from '../platform/group-commit.ts';
import { forEachBounded } from '../platform/check-schedule.ts';

const ORDER_INSERT_BATCH_MAX = 512;

export interface UnifiedOrderInput {
  mchNo: string; appId: string; mchOrderNo: string; wayCode: string; amount: bigint; currency: string; subject: string;
  body: string; clientIp: string | null; notifyUrl: string | null; returnUrl: string | null; expiredTime: number;
  channelExtra: string | null; extParam: string | null; divisionMode: number;
}

export interface OrderDeps {
  db: Database;
  channels: Channels;
  postings: Postings;
  notify: NotifyService;
  publicUrl: string;
  /** The injected clock, as a Date (polling and expiry). */
  now?: () => Date;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
  onPaid?: (tx: Tx, order: repo.PayOrderRow) => Promise<void>;
  checkOrder?: (input: UnifiedOrderInput) => Promise<void>;
}

export type PaySource = 'notify' | 'poll' | 'close' | 'query' | 'recon' | 'cashier';

/** A fingerprint of a request's business fields (the callers build them in a fixed order). */
export function requestHash(fields: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

export function payOrderParams(o: repo.PayOrderRow): Record<string, unknown> {
  return {
    payOrderId: o.pay_order_id, mchNo: o.mch_no, appId: o.app_id, mchOrderNo: o.mch_order_no, ifCode: o.if_code,
    wayCode: o.way_code, amount: fenNumber(o.amount), currency: o.currency, state: o.state, clientIp: o.client_ip,
    subject: o.subject, body: o.body, channelOrderNo: o.channel_order_no, errCode: o.err_code, errMsg: o.err_msg,
    extParam: o.ext_param, successTime: o.success_at ? o.success_at.getTime() : null, createdAt: o.created_at.getTime(),
    refundAmount: fenNumber(o.refund_amount),
  };
}

export type OrderService = ReturnType<typeof createOrderService>;

export function createOrderService(deps: OrderDeps) {
  const { db, channels, postings, notify } = deps;
  const now = deps.now ?? (() => new Date());
  // New orders from concurrent requests share one INSERT and one commit.
  const inserts = new GroupCommit<repo.NewPayOrder, repo.PayOrderRow | null>(async (items) => {
    const rows = new Map((await repo.insertPayOrders(db.kysely, items)).map((r) => [r.pay_order_id, r]));
    return items.map((o) => rows.get(o.pay_order_id) ?? null);
  }, ORDER_INSERT_BATCH_MAX, db.kind === 'pglite' ? 1 : 4);
  const channelNotifyUrl = (ifCode: string) => `${deps.publicUrl}/api/channel/notify/${ifCode}`;

  async function unifiedOrder(input: UnifiedOrderInput): Promise<repo.PayOrderRow> {
    const hash = requestHash({ ...input, amount: input.amount.toString() });
    const cashier = input.wayCode === 'QR_CASHIER';
    const route = cashier ? null : await routeFor(input.mchNo, input.wayCode);
    if (deps.checkOrder) await deps.checkOrder(input);
    const payOrderId = businessNo('P');
    const [inserted] = await inserts.submit([{
      pay_order_id: payOrderId, mch_no: input.mchNo, app_id: input.appId, mch_order_no: input.mchOrderNo, way_code: input.wayCode,
      if_code: route ? route.ifCode : null, amount: input.amount, currency: input.currency,
      subject: input.subject, body: input.body, client_ip: input.clientIp, notify_url: input.notifyUrl, return_url: input.returnUrl,
      channel_extra: input.channelExtra, ext_param: input.extParam, division_mode: input.divisionMode, state: PAY_STATE.created,
      request_hash: hash, expired_at: new Date(Date.now() + input.expiredTime * 1000),
      // The H5 cashier needs no channel yet: its pay page is ours.
      pay_data_type: cashier ? 'payUrl' : null, pay_data: cashier ? `${deps.publicUrl}/cashier/${payOrderId}` : null,
    }]);
    const order = inserted ?? (await repo.findPayOrderByMchOrderNo(db.kysely, input.mchNo, input.mchOrderNo));
    if (!order) throw new Error(`order ${input.mchOrderNo} vanished after insert`);
    if (!inserted && order.request_hash !== hash) {
      throw paymentErrors.duplicateOrderNo(`商户订单号已存在且参数不同 / mchOrderNo ${input.mchOrderNo} was already used with different parameters (amount, wayCode, subject…); use a new mchOrderNo`);
    }
    if (order.state !== PAY_STATE.created || route === null) return order;
    return createAtChannel(order, route);
  }

  async function routeFor(mchNo: string, wayCode: string): Promise<{ ifCode: string; fallback: string | null }> {
    const route = await repo.findRoute(db.kysely, mchNo, wayCode);
    return route ? { ifCode: route.if_code, fallback: route.fallback_if_code } : { ifCode: channels.defaultIfCode, fallback: null };
  }

  /**
   * Creates the order at the channel (idempotent there by payOrderId), with failover:
   * a channel that refused without sending (breaker open, queue full) passes the
   * order to the route's next channel; one that failed mid-call is marked down and
   * the merchant retries (the order may exist there).
   */
  async function createAtChannel(order: repo.PayOrderRow, route: { ifCode: string; fallback: string | null }, wayCode = order.way_code): Promise<repo.PayOrderRow> {
    const candidates = await channels.candidates(order.if_code ?? route.ifCode, route.fallback);
    if (candidates.length === 0) throw paymentErrors.channelUnavailable(`没有可用的支付渠道 / no channel serves ${wayCode}`);
    const remainingS = Math.max(60, Math.floor((order.expired_at.getTime() - Date.now()) / 1000));
    let adapter: ChannelAdapter | undefined;
    let result;
    for (const candidate of candidates) {
      adapter = candidate;
      try {
        result = await candidate.createOrder({
          payOrderId: order.pay_order_id, amountFen: order.amount, currency: order.currency, subject: order.subject, body: order.body,
          wayCode, clientIp: order.client_ip, channelExtra: order.channel_extra ? JSON.parse(order.channel_extra) : null,
          expireSeconds: remainingS, notifyUrl: channelNotifyUrl(candidate.ifCode),
        });
        break;
      } catch (error) {
        if (error instanceof ChannelRejected) continue;
        if (!(error instanceof ChannelUnavailable)) throw error;
        channels.markDown(candidate.ifCode);
        throw paymentErrors.channelUnavailable(`支付渠道暂不可用，请稍后用同一商户订单号重试 / channel ${candidate.ifCode} is unavailable; retry with the same mchOrderNo`);
      }
    }
    if (!result || !adapter) throw allChannelsOpen(candidates.map((c) => c.ifCode));
    const fields: Partial<repo.PayOrderRow> = {
      if_code: adapter.ifCode, channel_order_no: result.channelOrderNo, pay_data_type: result.payDataType, pay_data: result.payData,
      err_code: result.errCode, err_msg: result.errMsg,
    };
    if (result.status === 'failed') {
      return transact(db, async (tx) => {
        const locked = await repo.findPayOrder(tx, order.pay_order_id, true);
        if (!locked || locked.state !== PAY_STATE.created) return locked ?? order;
        await repo.updatePayOrder(tx, order.pay_order_id, { ...fields, state: PAY_STATE.failed });
        const failed = { ...locked, ...fields, state: PAY_STATE.failed } as repo.PayOrderRow;
        await notifyOrder(tx, failed);
        return failed;
      });
    }
    await transact(db, async (tx) => {
      const locked = await repo.findPayOrder(tx, order.pay_order_id, true);
      if (locked && locked.state === PAY_STATE.created) await repo.updatePayOrder(tx, order.pay_order_id, { ...fields, state: PAY_STATE.paying });
    });
    if (result.status === 'success') {
      await markPaid(order.pay_order_id, { status: 'success', channelOrderNo: result.channelOrderNo, amountFen: order.amount, successAt: new Date(), channelUser: null }, 'notify');
    }
    return (await repo.findPayOrder(db.kysely, order.pay_order_id)) as repo.PayOrderRow;
  }

  /** The payer chose a way on the H5 cashier page. */
  async function cashierPay(payOrderId: string, wayCode: string): Promise<repo.PayOrderRow> {
    const order = await repo.findPayOrder(db.kysely, payOrderId);
    if (!order) throw paymentErrors.orderNotFound(`订单不存在 / no order ${payOrderId}`);
    if (order.way_code !== 'QR_CASHIER') throw paymentErrors.orderStateInvalid('该订单不是收银台订单 / not a cashier order');
    if (order.state !== PAY_STATE.created) return order;
    if (order.expired_at.getTime() <= Date.now()) throw paymentErrors.orderStateInvalid('订单已过期 / the order has expired');
    const route = await routeFor(order.mch_no, wayCode);
    return createAtChannel({ ...order, if_code: route.ifCode }, route, wayCode);
  }

  async function findForMerchant(mchNo: string, key: { payOrderId?: string | null; mchOrderNo?: string | null }): Promise<repo.PayOrderRow> {
    const order = key.payOrderId ? await repo.findPayOrder(db.kysely, key.payOrderId)
      : key.mchOrderNo ? await repo.findPayOrderByMchOrderNo(db.kysely, mchNo, key.mchOrderNo) : null;
    if (!order || order.mch_no !== mchNo) throw paymentErrors.orderNotFound(`订单不存在 / no order ${key.payOrderId ?? key.mchOrderNo} for merchant ${mchNo}`);
    return order;
  }

  /** Close: at the channel first; if the channel says it was paid, it is paid. */
  async function close(order: repo.PayOrderRow, reason: 'merchant' | 'expired'): Promise<repo.PayOrderRow> {
    if (order.state !== PAY_STATE.created && order.state !== PAY_STATE.paying) {
      throw paymentErrors.orderStateInvalid(`订单状态为 ${order.state}，不能关闭 / only created or paying orders can be closed (state ${order.state})`);
    }
    const adapter = order.if_code ? channels.get(order.if_code) : undefined;
    if (adapter && order.state === PAY_STATE.paying) {
      let state: ChannelOrderState;
      try {
        state = await adapter.closeOrder(order.pay_order_id);
      } catch (error) {
        if (error instanceof ChannelUnavailable) throw paymentErrors.channelUnavailable(`渠道暂不可用，稍后再关单 / channel unavailable, close later`);
        throw error;
      }
      if (state.status === 'success') return markPaid(order.pay_order_id, state, 'close');
    }
    return transact(db, async (tx) => {
      const locked = await repo.findPayOrder(tx, order.pay_order_id, true);
      if (!locked || (locked.state !== PAY_STATE.created && locked.state !== PAY_STATE.paying)) return locked ?? order;
      const msg = reason === 'expired' ? '订单超时关闭 / expired' : '商户关单 / closed by merchant';
      await repo.updatePayOrder(tx, order.pay_order_id, { state: PAY_STATE.closed, close_reason: reason, err_msg: msg });
      return { ...locked, state: PAY_STATE.closed, close_reason: reason, err_msg: msg };
    });
  }

  /**
   * The success path. Idempotent: an order already paid is returned as it is. Any
   * open, failed or closed order becomes paid when the channel says so, with its
   * ledger posting and notification in the same transaction.
   */
  async function markPaid(payOrderId: string, state: Pick<ChannelOrderState, 'channelOrderNo' | 'amountFen' | 'successAt' | 'channelUser'> & { status: string }, source: PaySource): Promise<repo.PayOrderRow> {
    return transact(db, async (tx) => {
      const order = await repo.findPayOrder(tx, payOrderId, true);
      if (!order) throw paymentErrors.orderNotFound(`no order ${payOrderId}`);
      if (order.state === PAY_STATE.success || order.state === PAY_STATE.refunded) return order;
      if (state.amountFen !== null && state.amountFen !== order.amount) {
        // A paid amount that differs is a mistake for reconciliation, never a silent success.
        await repo.updatePayOrder(tx, payOrderId, { err_code: 'AMOUNT_MISMATCH', err_msg: `渠道金额 ${state.amountFen} 与订单金额 ${order.amount} 不符` });
        return order;
      }
      const recovered = order.state === PAY_STATE.closed || order.state === PAY_STATE.failed || source === 'recon' ? source : null;
      const ifCode = order.if_code ?? channels.defaultIfCode;
      await postings.paymentSucceeded(tx, { payOrderId, mchNo: order.mch_no, ifCode, amount: order.amount });
      const fields: Partial<repo.PayOrderRow> = {
        state: PAY_STATE.success, if_code: ifCode, success_at: state.successAt ?? new Date(),
        channel_order_no: state.channelOrderNo ?? order.channel_order_no, channel_user: state.channelUser ?? order.channel_user,
        err_code: null, err_msg: null, recovered_by: recovered, close_reason: null,
      };
      await repo.updatePayOrder(tx, payOrderId, fields);
      const paid = { ...order, ...fields } as repo.PayOrderRow;
      await notifyOrder(tx, paid);
      if (deps.onPaid) await deps.onPaid(tx, paid);
      return paid;
    });
  }

  async function markFailed(payOrderId: string, errCode: string, errMsg: string | null): Promise<void> {
    await transact(db, async (tx) => {
      const order = await repo.findPayOrder(tx, payOrderId, true);
      if (!order || (order.state !== PAY_STATE.created && order.state !== PAY_STATE.paying)) return;
      await repo.updatePayOrder(tx, payOrderId, { state: PAY_STATE.failed, err_code: errCode, err_msg: errMsg });
      await notifyOrder(tx, { ...order, state: PAY_STATE.failed, err_code: errCode, err_msg: errMsg });
    });
  }

  async function notifyOrder(tx: Tx, order: repo.PayOrderRow): Promise<void> {
    await notify.enqueue(tx, { kind: 'pay_order', refId: order.pay_order_id, mchNo: order.mch_no, appId: order.app_id, notifyUrl: order.notify_url, params: payOrderParams(order) });
  }

  /** Applies what the channel says about an order (from a notification or a query). */
  async function applyChannelState(order: repo.PayOrderRow, state: ChannelOrderState, source: PaySource): Promise<void> {
    if (state.status === 'success') await markPaid(order.pay_order_id, state, source);
    else if (state.status === 'failed') await markFailed(order.pay_order_id, 'CHANNEL_PAY_FAILED', '渠道支付失败 / payment failed at the channel');
    else if (state.status === 'closed' && order.state <= PAY_STATE.paying) await close(order, 'expired').catch(() => undefined);
  }

  /**
   * One round of the check schedule: claims the open orders that are due (a bounded
   * batch, oldest due first, each moved to its next check) and asks their channel, a
   * bounded number at once. Paid ones become paid (the one success path); expired
   * ones are closed at the channel, then here.
   */
  async function pollOpen(o: { forceBefore: Date | null; limit: number; concurrency: number }): Promise<{ checked: number; paid: number; closed: number; errors: number }> {
    const orders = await repo.claimDueOrders(db.kysely, { now: now(), limit: o.limit, forceBefore: o.forceBefore });
    let paid = 0;
    let closed = 0;
    const errors = await forEachBounded(orders, o.concurrency, async (order) => {
      const outcome = await checkOrder(order);
      if (outcome === 'paid') paid += 1;
      if (outcome === 'closed') closed += 1;
    }, (order, error) => {
      if (!(error instanceof ChannelUnavailable) && !(error instanceof AppError)) deps.log?.('order check failed', { payOrderId: order.pay_order_id, err: String(error) });
    });
    return { checked: orders.length, paid, closed, errors };
  }

  async function checkOrder(order: repo.PayOrderRow): Promise<'paid' | 'closed' | 'open'> {
    const adapter: ChannelAdapter | undefined = order.if_code ? channels.get(order.if_code) : undefined;
    if (adapter && order.state === PAY_STATE.paying) {
      const state = await adapter.queryOrder(order.pay_order_id);
      if (state.status === 'success') {
        const after = await markPaid(order.pay_order_id, state, 'poll');
        return after.state === PAY_STATE.success ? 'paid' : 'open';
      }
      if (state.status === 'failed') {
        await markFailed(order.pay_order_id, 'CHANNEL_PAY_FAILED', '渠道支付失败');
        return 'open';
      }
    }
    if (order.expired_at.getTime() > now().getTime()) return 'open';
    const after = await close(order, 'expired');
    return after.state === PAY_STATE.closed ? 'closed' : after.state === PAY_STATE.success ? 'paid' : 'open';
  }

  return { unifiedOrder, cashierPay, findForMerchant, close, markPaid, markFailed, applyChannelState, pollOpen, notifyOrder, insertQueue: inserts.stats };
}
