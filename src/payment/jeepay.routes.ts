// The merchant API, wire-compatible with Jeepay: same paths, fields, state codes,
// envelope and signed answers. Each route: authenticate → read fields → one use case.
import type { FastifyInstance } from 'fastify';
import { WAY_CODES, ENTRY_TYPES, EXPIRE_SECONDS_DEFAULT, EXPIRE_SECONDS_MAX } from './types.ts';
import { paymentErrors } from './payment.errors.ts';
import { amount, authenticate, callbackUrl, currency, errorEnvelope, int, jsonText, NO_PATTERN, str, success, url, type AuthOptions } from './jeepay.http.ts';
import type { Outbound } from '../platform/outbound.ts';
import type { OrderService } from './order.service.ts';
import { payOrderParams } from './order.service.ts';
import { refundParams, type RefundService } from './refund.service.ts';
import { transferParams, type TransferService } from './transfer.service.ts';
import type { DivisionService } from './division.service.ts';
import { retryAfterOf } from '../platform/ratelimit.ts';
import type * as repo from './payment.repo.ts';
import { responseSchema } from './jeepay.schemas.ts';
import { fenNumber } from './types.ts';

export interface JeepayRouteDeps extends AuthOptions {
  orders: OrderService;
  refunds: RefundService;
  transfers: TransferService;
  divisions: DivisionService;
  outbound: Outbound;
}

const tags = ['merchant API (Jeepay)'];
const bodySchema = { type: 'object', additionalProperties: true };

export function jeepayRoutes(deps: JeepayRouteDeps) {
  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      });
      scope.setErrorHandler((error, request, reply) => {
        const { status, body } = errorEnvelope(error, request.id);
        if (status >= 500) request.log.error({ err: error }, 'merchant API error');
        const retryAfterS = retryAfterOf(error);
        if (retryAfterS !== null) reply.header('retry-after', String(retryAfterS));
        return reply.status(status).send(body);
      });

      scope.post('/api/pay/unifiedOrder', { schema: { tags, summary: '统一下单 / unified order', body: bodySchema, response: responseSchema('unifiedOrder') } }, async (request, reply) => {
        const auth = await authenticate(request, deps);
        const p = auth.params;
        const wayCode = str(p, 'wayCode', { required: true, max: 32 }) as string;
        if (!(WAY_CODES as readonly string[]).includes(wayCode)) throw paymentErrors.unknownWay(`不支持的支付方式 / unsupported wayCode ${wayCode}; supported: ${WAY_CODES.join(', ')}`);
        const order = await deps.orders.unifiedOrder({
          mchNo: auth.app.mchNo, appId: auth.app.appId, mchOrderNo: str(p, 'mchOrderNo', { required: true, max: 64, pattern: NO_PATTERN }) as string,
          wayCode, amount: amount(p, 'amount'), currency: currency(p), subject: str(p, 'subject', { required: true, max: 64 }) as string,
          body: str(p, 'body', { required: true, max: 256 }) as string, clientIp: str(p, 'clientIp', { max: 64 }), notifyUrl: callbackUrl(p, 'notifyUrl', deps.outbound),
          returnUrl: url(p, 'returnUrl'), expiredTime: int(p, 'expiredTime', { min: 60, max: EXPIRE_SECONDS_MAX, fallback: EXPIRE_SECONDS_DEFAULT }),
          channelExtra: jsonText(p, 'channelExtra', 'object'), extParam: str(p, 'extParam', { max: 512 }),
          divisionMode: int(p, 'divisionMode', { min: 0, max: 2, fallback: 0 }),
        });
        return success(reply, auth, {
          payOrderId: order.pay_order_id, mchOrderNo: order.mch_order_no, orderState: order.state,
          payDataType: order.pay_data_type ?? 'none', payData: order.pay_data, errCode: order.err_code, errMsg: order.err_msg,
        });
      });

      scope.post('/api/pay/query', { schema: { tags, summary: '查单 / query an order', body: bodySchema, response: responseSchema('payQuery') } }, async (request, reply) => {
        const auth = await authenticate(request, deps);
        const order = await deps.orders.findForMerchant(auth.app.mchNo, orderKey(auth.params));
        return success(reply, auth, payOrderParams(order));
      });

      scope.post('/api/pay/close', { schema: { tags, summary: '关单 / close an order', body: bodySchema, response: responseSchema('close') } }, async (request, reply) => {
        const auth = await authenticate(request, deps);
        const order = await deps.orders.findForMerchant(auth.app.mchNo, orderKey(auth.params));
        const closed = await deps.orders.close(order, 'merchant');
        return success(reply, auth, { payOrderId: closed.pay_order_id, mchOrderNo: closed.mch_order_no, orderState: closed.state, errCode: closed.err_code, errMsg: closed.err_msg });
      });

      scope.post('/api/refund/refundOrder', { schema: { tags, summary: '退款 / refund', body: bodySchema, response: responseSchema('refund') } }, async (request, reply) => {
        const auth = await authenticate(request, deps);
        const p = auth.params;
        const key = orderKey(p);
        const refund = await deps.refunds.create({
          mchNo: auth.app.mchNo, appId: auth.app.appId, payOrderId: key.payOrderId, mchOrderNo: key.mchOrderNo,
          mchRefundNo: str(p, 'mchRefundNo', { required: true, max: 64, pattern: NO_PATTERN }) as string,
          refundAmount: amount(p, 'refundAmount'), currency: currency(p), refundReason: str(p, 'refundReason', { required: true, max: 256 }) as string,
          clientIp: str(p, 'clientIp', { max: 64 }), notifyUrl: callbackUrl(p, 'notifyUrl', deps.outbound), channelExtra: jsonText(p, 'channelExtra', 'object'),
          extParam: str(p, 'extParam', { max: 512 }),
        });
        return success(reply, auth, {
          refundOrderId: refund.refund_order_id, mchRefundNo: refund.mch_refund_no, payAmount: refund.pay_amount, refundAmount: refund.refund_amount,
          state: refund.state, channelOrderNo: refund.channel_refund_no, errCode: refund.err_code, errMsg: refund.err_msg,
        });
      });

      scope.post('/api/refund/query', { schema: { tags, summary: '退款查询 / query a refund', body: bodySchema, response: responseSchema('refundQuery') } }, async (request, reply) => {
        const auth = await authenticate(request, deps);
        const p = auth.params;
        const refundOrderId = str(p, 'refundOrderId', { max: 64 });
        const mchRefundNo = str(p, 'mchRefundNo', { max: 64 });
        if (!refundOrderId && !mchRefundNo) throw paymentErrors.missingParam('refundOrderId 和 mchRefundNo 至少填一个 / give refundOrderId or mchRefundNo');
        return success(reply, auth, refundParams(await deps.refunds.findForMerchant(auth.app.mchNo, { refundOrderId, mchRefundNo })));
      });

      scope.post('/api/transferOrder', { schema: { tags, summary: '转账 / transfer to a card or wallet', body: bodySchema, response: responseSchema('transfer') } }, async (request, reply) => {
        const auth = await authenticate(request, deps);
        const p = auth.params;
        const entryType = str(p, 'entryType', { required: true, max: 16 }) as string;
        if (!(ENTRY_TYPES as readonly string[]).includes(entryType)) throw paymentErrors.invalidParam(`entryType 必须是 ${ENTRY_TYPES.join(' / ')}`);
        const t = await deps.transfers.create({
          mchNo: auth.app.mchNo, appId: auth.app.appId, mchOrderNo: str(p, 'mchOrderNo', { required: true, max: 64, pattern: NO_PATTERN }) as string,
          ifCode: str(p, 'ifCode', { max: 32 }), entryType, amount: amount(p, 'amount'), currency: currency(p),
          accountNo: str(p, 'accountNo', { required: true, max: 64 }) as string, accountName: str(p, 'accountName', { max: 64 }),
          bankName: str(p, 'bankName', { max: 64 }), clientIp: str(p, 'clientIp', { max: 64 }),
          transferDesc: str(p, 'transferDesc', { required: true, max: 128 }) as string, notifyUrl: callbackUrl(p, 'notifyUrl', deps.outbound),
          channelExtra: jsonText(p, 'channelExtra', 'object'), extParam: str(p, 'extParam', { max: 512 }),
        });
        return success(reply, auth, {
          transferId: t.transfer_id, mchOrderNo: t.mch_order_no, amount: t.amount, accountNo: t.account_no, accountName: t.account_name,
          bankName: t.bank_name, state: t.state, channelOrderNo: t.channel_order_no, errCode: t.err_code, errMsg: t.err_msg,
        });
      });

      scope.post('/api/transfer/query', { schema: { tags, summary: '转账查询 / query a transfer', body: bodySchema, response: responseSchema('transferQuery') } }, async (request, reply) => {
        const auth = await authenticate(request, deps);
        const p = auth.params;
        const transferId = str(p, 'transferId', { max: 64 });
        const mchOrderNo = str(p, 'mchOrderNo', { max: 64 });
        if (!transferId && !mchOrderNo) throw paymentErrors.missingParam('transferId 和 mchOrderNo 至少填一个 / give transferId or mchOrderNo');
        return success(reply, auth, transferParams(await deps.transfers.findForMerchant(auth.app.mchNo, { transferId, mchOrderNo })));
      });

      scope.post('/api/division/receiver/bind', { schema: { tags, summary: '绑定分账接收方 / bind a division receiver', body: bodySchema, response: responseSchema('divisionBind') } }, async (request, reply) => {
        const auth = await authenticate(request, deps);
        const p = auth.params;
        const r = await deps.divisions.bind({
          mchNo: auth.app.mchNo, appId: auth.app.appId, ifCode: str(p, 'ifCode', { max: 32 }) ?? 'sandbox',
          receiverAlias: str(p, 'receiverAlias', { max: 64 }), receiverGroupId: str(p, 'receiverGroupId', { max: 15, pattern: DIGITS }),
          accType: int(p, 'accType', { min: 0, max: 1, fallback: 0 }), accNo: str(p, 'accNo', { required: true, max: 64 }) as string,
          accName: str(p, 'accName', { max: 64 }), relationType: str(p, 'relationType', { max: 32 }),
          relationTypeName: str(p, 'relationTypeName', { max: 64 }), divisionProfit: str(p, 'divisionProfit', { required: true, max: 16, pattern: PROFIT }) as string,
        });
        return success(reply, auth, receiverParams(r));
      });

      scope.post('/api/division/exec', { schema: { tags, summary: '发起分账 / divide a paid order', body: bodySchema, response: responseSchema('divisionExec') } }, async (request, reply) => {
        const auth = await authenticate(request, deps);
        const p = auth.params;
        const key = orderKey(p);
        const receiversText = jsonText(p, 'receivers', 'array');
        const receivers = receiversText ? receiverRefs(JSON.parse(receiversText) as unknown[]) : [];
        const result = await deps.divisions.execute({
          mchNo: auth.app.mchNo, appId: auth.app.appId, payOrderId: key.payOrderId, mchOrderNo: key.mchOrderNo,
          useSysAutoDivisionReceivers: int(p, 'useSysAutoDivisionReceivers', { min: 0, max: 1, fallback: 0 }) === 1,
          receivers,
        });
        return success(reply, auth, {
          payOrderId: result.payOrderId, state: 1,
          divisions: JSON.stringify(result.divisions.map((d) => ({ divisionId: d.division_id, receiverId: d.receiver_id, amount: fenNumber(d.amount) }))),
        });
      });
    });
  };
}

/** Jeepay's group ids are Longs; profits are DECIMAL(20,6) in Jeepay, so at most 6 places (a JSON number then never needs an exponent). */
const DIGITS = /^[0-9]{1,15}$/;
const PROFIT = /^[0-9]{1,2}(\.[0-9]{1,6})?$/;

/** A bound receiver in Jeepay's types: ids, accType, bindState and bindSuccessTime are numbers, divisionProfit a decimal number. */
function receiverParams(r: repo.ReceiverRow): Record<string, unknown> {
  const asNumber = (text: string | null) => (text !== null && /^[0-9]{1,16}$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : null);
  return {
    receiverId: asNumber(r.receiver_id) ?? r.receiver_id, receiverAlias: r.receiver_alias, receiverGroupId: asNumber(r.receiver_group_id),
    mchNo: r.mch_no, appId: r.app_id, ifCode: r.if_code, accType: r.acc_type, accNo: r.acc_no, accName: r.acc_name,
    relationType: r.relation_type, relationTypeName: r.relation_type_name, divisionProfit: Number(r.division_profit),
    bindState: 1, bindSuccessTime: r.created_at.getTime(),
  };
}

/** The `receivers` of a division request: Jeepay clients send ids as numbers, profits as numbers or strings. */
function receiverRefs(items: unknown[]): Array<{ receiverId?: string; receiverGroupId?: string; divisionProfit?: string }> {
  const text = (v: unknown, name: string): string | undefined => {
    if (v === undefined || v === null || v === '') return undefined;
    if ((typeof v === 'number' && Number.isFinite(v)) || typeof v === 'string') return String(v).slice(0, 64);
    throw paymentErrors.invalidParam(`receivers[].${name} 必须是字符串或数字 / receivers[].${name} must be a string or a number`);
  };
  return items.map((item) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) throw paymentErrors.invalidParam('receivers 的每一项必须是对象 / each item of receivers must be an object');
    const o = item as Record<string, unknown>;
    return { receiverId: text(o.receiverId, 'receiverId'), receiverGroupId: text(o.receiverGroupId, 'receiverGroupId'), divisionProfit: text(o.divisionProfit, 'divisionProfit') };
  });
}

function orderKey(p: Record<string, unknown>) {
  const payOrderId = str(p, 'payOrderId', { max: 64 });
  const mchOrderNo = str(p, 'mchOrderNo', { max: 64 });
  if (!payOrderId && !mchOrderNo) throw paymentErrors.missingParam('payOrderId 和 mchOrderNo 至少填一个 / give payOrderId or mchOrderNo');
  return { payOrderId, mchOrderNo };
}

