// The sandbox channel's wire protocol, shared by its server and Custos's adapter:
// JSON bodies signed with HMAC-SHA256 over `<timestamp ms>.<body>` in the header
// `x-sandbox-signature: t=<ms>,s=<hex>`, in both directions (requests, responses,
// notifications). A signature older than five minutes is refused.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-sandbox-signature';
const WINDOW_MS = 5 * 60 * 1000;

export function signBody(key: string, body: string, nowMs: number = Date.now()): string {
  const s = createHmac('sha256', key).update(`${nowMs}.${body}`).digest('hex');
  return `t=${nowMs},s=${s}`;
}

export function verifyBody(key: string, body: string, header: string | string[] | undefined, nowMs: number = Date.now()): boolean {
  if (typeof header !== 'string') return false;
  const match = /^t=(\d{1,15}),s=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const t = Number(match[1]);
  if (Math.abs(nowMs - t) > WINDOW_MS) return false;
  const expected = createHmac('sha256', key).update(`${t}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2], 'hex'));
}

/** Amounts travel as decimal strings of fen. */
export type SbOrderStatus = 'NOTPAY' | 'SUCCESS' | 'CLOSED' | 'PAYERROR';
export type SbAsyncStatus = 'PROCESSING' | 'SUCCESS' | 'FAILED';

export interface SbOrderView {
  out_trade_no: string;
  trade_no: string;
  amount: string;
  status: SbOrderStatus;
  way_code: string;
  success_time: string | null;
  payer: string | null;
  pay_url: string;
  code_url: string;
}

export interface SbAsyncView {
  out_no: string;
  channel_no: string;
  amount: string;
  status: SbAsyncStatus;
  success_time: string | null;
  err_code: string | null;
  err_msg: string | null;
}

export interface SbNotification {
  event_id: string;
  kind: 'pay' | 'refund' | 'transfer';
  out_no: string;
  channel_no: string;
  status: 'SUCCESS' | 'PAYERROR' | 'CLOSED' | 'FAILED';
  amount: string;
  success_time: string | null;
  payer: string | null;
}

/**
 * A scripted payer action (`POST /v1/sim/orders/:outTradeNo/pay|fail|cancel`): signed
 * like the API, over a body that names the order and the action, so a signature for
 * one order or action cannot be replayed for another.
 */
export type SimAction = 'pay' | 'fail' | 'cancel';

export function simActionBody(outTradeNo: string, action: SimAction, payer?: string): string {
  return JSON.stringify({ out_trade_no: outTradeNo, action, ...(payer ? { payer } : {}) });
}

export function signSimAction(key: string, outTradeNo: string, action: SimAction, payer?: string): { body: string; headers: Record<string, string> } {
  const body = simActionBody(outTradeNo, action, payer);
  return { body, headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(key, body) } };
}

/** The token the payer page embeds in its forms: only a page the sandbox served can submit. */
export function payerPageToken(key: string, tradeNo: string): string {
  return createHmac('sha256', key).update(`payer-page.${tradeNo}`).digest('hex').slice(0, 32);
}

export function payerPageTokenValid(key: string, tradeNo: string, token: unknown): boolean {
  if (typeof token !== 'string' || !/^[0-9a-f]{32}$/.test(token)) return false;
  return timingSafeEqual(Buffer.from(payerPageToken(key, tradeNo)), Buffer.from(token));
}
