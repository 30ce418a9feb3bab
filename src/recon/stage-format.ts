// The staging wire format: a parsed record as one line of PostgreSQL's COPY text
// format, so a chunk of thousands of rows goes to the database in one COPY (see
// copyText in platform/db.ts). Columns, in STAGE_COLUMNS order:
//   row_no, kind (1 payment, 2 refund), ref_id, pay_order_id, channel_no, status, trade_time, amount_fen, fee_e5
// A tab, line break or carriage return inside a field would shift the columns: it
// becomes a space. A backslash is COPY's escape character: it is doubled.
import type { ChannelRecord } from './parse/wechat.ts';
import { WECHAT_SLOT, type WechatBillScanner } from './parse/wechat.ts';

// The worker's lines are byte strings (each char one byte of the bill's UTF-8, as
// latin1 decodes it): it never decodes the text, and a chunk's bytes go to COPY as is.
// The batch id is not in the line: the staging transaction supplies it (0008).

export const STAGE_COLUMNS = 'row_no, kind, ref_id, pay_order_id, channel_no, status, trade_time, amount_fen, fee_e5';

const UNSAFE = /[\t\n\r\\]/;
const clean = (field: string) => (UNSAFE.test(field) ? field.replace(/[\t\n\r]/g, ' ').replace(/\\/g, '\\\\') : field);

function line(rowNo: number, payment: boolean, ref: string, payOrderId: string, channelNo: string, status: string, time: string, amount: string, fee: string): string {
  return rowNo + (payment ? '\t1\t' : '\t2\t') + clean(ref) + '\t' + clean(payOrderId) + '\t' + clean(channelNo) + '\t' + clean(status) + '\t' + clean(time) + '\t' + amount + '\t' + fee;
}

/** A parsed record as a staging line. */
export function stageLine(rowNo: number, r: ChannelRecord): string {
  const payment = r.kind === 'payment';
  const ref = payment ? r.payOrderId : (r.refundOrderId ?? '');
  const channelNo = payment ? r.channelOrderNo : (r.channelRefundNo ?? r.channelOrderNo);
  return line(rowNo, payment, ref, r.payOrderId, channelNo, r.status, r.time, r.amountFen.toString(), r.feeE5.toString());
}

/** The scanner's current detail row as a staging line (the same line stageLine gives for its record). */
export function stageScanned(rowNo: number, scan: WechatBillScanner): string {
  const payOrderId = scan.field(WECHAT_SLOT.payOrderId);
  if (!scan.refund) return line(rowNo, true, payOrderId, payOrderId, scan.field(WECHAT_SLOT.channelOrderNo), scan.field(WECHAT_SLOT.status), scan.field(WECHAT_SLOT.time), scan.amountText, scan.feeText);
  const channelRefundNo = scan.field(WECHAT_SLOT.channelRefundNo);
  return line(rowNo, false, scan.field(WECHAT_SLOT.refundOrderId), payOrderId, channelRefundNo, scan.field(WECHAT_SLOT.status), scan.field(WECHAT_SLOT.time), scan.amountText, scan.feeText);
}
