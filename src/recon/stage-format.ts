// The staging wire format: a parsed record as one tab-separated line, so a chunk of
// thousands of rows travels to the database as a single text parameter and is split
// there (string_to_array / split_part run in C), instead of nine array parameters
// escaped element by element on our side.
import type { ChannelRecord } from './parse/wechat.ts';

const clean = (s: string) => (s.includes('\t') || s.includes('\n') ? s.replace(/[\t\n]/g, ' ') : s);

/** kind, ref_id, pay_order_id, channel_no, amount_fen, fee_e5, status, trade_time */
export function stageLine(r: ChannelRecord): string {
  const payment = r.kind === 'payment';
  const ref = payment ? r.payOrderId : (r.refundOrderId ?? '');
  const channelNo = payment ? r.channelOrderNo : (r.channelRefundNo ?? r.channelOrderNo);
  return `${payment ? 1 : 2}\t${clean(ref)}\t${clean(r.payOrderId)}\t${clean(channelNo)}\t${r.amountFen}\t${r.feeE5}\t${clean(r.status)}\t${clean(r.time)}`;
}
