// The staging wire format: a parsed record as one tab-separated line, so a chunk of
// thousands of rows travels to the database as a single text parameter and is split
// there (string_to_array / split_part run in C), instead of nine array parameters
// escaped element by element on our side.
import type { ChannelRecord } from './parse/wechat.ts';

const UNSAFE = /[\t\n]/;

/** kind, ref_id, pay_order_id, channel_no, status, trade_time, amount_fen, fee_e5 */
export function stageLine(r: ChannelRecord): string {
  const payment = r.kind === 'payment';
  const ref = payment ? r.payOrderId : (r.refundOrderId ?? '');
  const channelNo = payment ? r.channelOrderNo : (r.channelRefundNo ?? r.channelOrderNo);
  let text = ref + '\t' + r.payOrderId + '\t' + channelNo + '\t' + r.status + '\t' + r.time;
  // A tab or line break inside a field would shift the columns: it becomes a space.
  if (UNSAFE.test(ref) || UNSAFE.test(r.payOrderId) || UNSAFE.test(channelNo) || UNSAFE.test(r.status) || UNSAFE.test(r.time)) {
    text = [ref, r.payOrderId, channelNo, r.status, r.time].map((f) => f.replace(/[\t\n]/g, ' ')).join('\t');
  }
  return (payment ? '1\t' : '2\t') + text + '\t' + r.amountFen.toString() + '\t' + r.feeE5.toString();
}
