// Custos's adapter for the sandbox channel: the channel contract over the sandbox's
// signed HTTP API. Timeouts and 5xx become ChannelUnavailable; forged notifications
// ChannelSignatureInvalid.
import {
  ChannelSignatureInvalid,
  ChannelUnavailable,
  type ChannelAdapter,
  type ChannelAsyncState,
  type ChannelNotification,
  type ChannelOrderState,
} from '../contract.ts';
import { SIGNATURE_HEADER, signBody, verifyBody, type SbAsyncView, type SbNotification, type SbOrderView } from './protocol.ts';

export interface SandboxAdapterOptions {
  ifCode?: string;
  baseUrl: string;
  key: string;
  timeoutMs?: number;
}

const WAY_CODES = [
  'QR_CASHIER', 'WX_JSAPI', 'WX_LITE', 'WX_NATIVE', 'WX_H5', 'WX_APP', 'WX_BAR', 'ALI_JSAPI', 'ALI_QR', 'ALI_WAP', 'ALI_PC',
  'ALI_APP', 'ALI_BAR', 'YSF_BAR', 'YSF_JSAPI', 'UP_QR', 'UP_WAP', 'UP_B2B', 'AUTO_BAR',
] as const;

export function createSandboxAdapter(options: SandboxAdapterOptions): ChannelAdapter {
  const ifCode = options.ifCode ?? 'sandbox';
  const timeoutMs = options.timeoutMs ?? 5000;

  async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; data: T }> {
    const text = body === undefined ? '' : JSON.stringify(body);
    let res: Response;
    try {
      res = await fetch(options.baseUrl + path, {
        method,
        body: method === 'GET' ? undefined : text,
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(options.key, text) },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new ChannelUnavailable(ifCode, (error as Error).message);
    }
    const answer = await res.text();
    if (res.status >= 500) throw new ChannelUnavailable(ifCode, `HTTP ${res.status}`);
    if (!verifyBody(options.key, answer, res.headers.get(SIGNATURE_HEADER) ?? undefined)) {
      throw new ChannelUnavailable(ifCode, 'response signature invalid');
    }
    return { status: res.status, data: JSON.parse(answer) as T };
  }

  const orderState = (o: SbOrderView): ChannelOrderState => ({
    status: o.status === 'SUCCESS' ? 'success' : o.status === 'NOTPAY' ? 'paying' : o.status === 'CLOSED' ? 'closed' : 'failed',
    channelOrderNo: o.trade_no,
    amountFen: BigInt(o.amount),
    successAt: o.success_time ? new Date(o.success_time) : null,
    channelUser: o.payer,
  });
  const asyncState = (r: SbAsyncView): ChannelAsyncState => ({
    status: r.status === 'SUCCESS' ? 'success' : r.status === 'FAILED' ? 'failed' : 'processing',
    channelNo: r.channel_no,
    amountFen: BigInt(r.amount),
    successAt: r.success_time ? new Date(r.success_time) : null,
    errCode: r.err_code,
    errMsg: r.err_msg,
  });
  const notFound = (): ChannelAsyncState => ({ status: 'not_found', channelNo: null, amountFen: null, successAt: null, errCode: null, errMsg: null });
  const refused = (data: { code?: string; message?: string }): ChannelAsyncState => ({
    status: 'failed', channelNo: null, amountFen: null, successAt: null, errCode: data.code ?? 'CHANNEL_ERROR', errMsg: data.message ?? null,
  });

  return {
    ifCode,
    wayCodes: WAY_CODES,
    async createOrder(input) {
      const { status, data } = await call<SbOrderView & { code?: string; message?: string }>('POST', '/v1/orders', {
        out_trade_no: input.payOrderId, amount: input.amountFen.toString(), subject: input.subject, way_code: input.wayCode,
        notify_url: input.notifyUrl, expire_s: input.expireSeconds,
      });
      if (status !== 200) {
        return { status: 'failed', channelOrderNo: null, payDataType: 'none', payData: null, errCode: data.code ?? 'CHANNEL_ERROR', errMsg: data.message ?? null };
      }
      const barcode = input.wayCode.endsWith('_BAR');
      return {
        status: data.status === 'SUCCESS' ? 'success' : 'paying',
        channelOrderNo: data.trade_no,
        payDataType: barcode ? 'none' : input.wayCode.endsWith('_QR') || input.wayCode === 'WX_NATIVE' || input.wayCode === 'UP_QR' ? 'codeUrl' : 'payUrl',
        payData: barcode ? null : input.wayCode.endsWith('_QR') || input.wayCode === 'WX_NATIVE' || input.wayCode === 'UP_QR' ? data.code_url : data.pay_url,
        errCode: null,
        errMsg: null,
      };
    },
    async queryOrder(payOrderId) {
      const { status, data } = await call<SbOrderView>('GET', `/v1/orders/${encodeURIComponent(payOrderId)}`);
      if (status === 404) return { status: 'not_found', channelOrderNo: null, amountFen: null, successAt: null, channelUser: null };
      return orderState(data);
    },
    async closeOrder(payOrderId) {
      const { status, data } = await call<SbOrderView>('POST', `/v1/orders/${encodeURIComponent(payOrderId)}/close`, {});
      if (status === 404) return { status: 'not_found', channelOrderNo: null, amountFen: null, successAt: null, channelUser: null };
      return orderState(data);
    },
    async refund(input) {
      const { status, data } = await call<SbAsyncView & { code?: string; message?: string }>('POST', '/v1/refunds', {
        out_refund_no: input.refundOrderId, out_trade_no: input.payOrderId, amount: input.refundAmountFen.toString(),
        reason: input.reason, notify_url: input.notifyUrl,
      });
      return status === 200 ? asyncState(data) : refused(data);
    },
    async queryRefund(refundOrderId) {
      const { status, data } = await call<SbAsyncView>('GET', `/v1/refunds/${encodeURIComponent(refundOrderId)}`);
      return status === 404 ? notFound() : asyncState(data);
    },
    async transfer(input) {
      const { status, data } = await call<SbAsyncView & { code?: string; message?: string }>('POST', '/v1/transfers', {
        out_biz_no: input.transferId, amount: input.amountFen.toString(), entry_type: input.entryType, account_no: input.accountNo,
        account_name: input.accountName, bank_name: input.bankName, desc: input.desc, notify_url: input.notifyUrl,
      });
      return status === 200 ? asyncState(data) : refused(data);
    },
    async queryTransfer(transferId) {
      const { status, data } = await call<SbAsyncView>('GET', `/v1/transfers/${encodeURIComponent(transferId)}`);
      return status === 404 ? notFound() : asyncState(data);
    },
    parseNotification(headers, rawBody): ChannelNotification {
      if (!verifyBody(options.key, rawBody, headers[SIGNATURE_HEADER])) throw new ChannelSignatureInvalid(ifCode);
      const n = JSON.parse(rawBody) as SbNotification;
      if (n === null || typeof n !== 'object') throw new SyntaxError('notification is not a JSON object');
      const status = n.status === 'SUCCESS' ? 'success' : n.status === 'CLOSED' ? 'closed' : 'failed';
      if (n.kind !== 'pay' && n.kind !== 'refund' && n.kind !== 'transfer') throw new SyntaxError(`unknown notification kind ${String(n.kind)}`);
      if (typeof n.out_no !== 'string' || typeof n.event_id !== 'string') throw new SyntaxError('notification without out_no or event_id');
      return {
        eventId: n.event_id, kind: n.kind, refId: n.out_no,
        claimed: { status, channelNo: n.channel_no, amountFen: /^[0-9]{1,18}$/.test(String(n.amount)) ? BigInt(n.amount) : null },
      };
    },
    notificationAck: () => ({ contentType: 'application/json', body: '{"code":"SUCCESS","message":"成功"}' }),
    async downloadStatement(request) {
      const query = new URLSearchParams({ bill_date: request.billDate, ...(request.billType ? { bill_type: request.billType } : {}) });
      let res: Response;
      try {
        res = await fetch(`${options.baseUrl}/v1/statements/${request.format}?${query}`, {
          headers: { [SIGNATURE_HEADER]: signBody(options.key, '') }, signal: AbortSignal.timeout(timeoutMs * 6),
        });
      } catch (error) {
        throw new ChannelUnavailable(ifCode, (error as Error).message);
      }
      if (res.status >= 500) throw new ChannelUnavailable(ifCode, `HTTP ${res.status}`);
      const data = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200) {
        const text = data.toString('utf8');
        throw Object.assign(new Error(`statement not available: ${text}`), { code: res.status === 404 ? 'STATEMENT_NOT_READY' : 'STATEMENT_ERROR' });
      }
      return data;
    },
    async health() {
      try {
        const res = await fetch(`${options.baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
        return res.ok;
      } catch {
        return false;
      }
    },
  };
}
