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
