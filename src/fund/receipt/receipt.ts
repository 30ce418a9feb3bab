// Electronic receipts (票据) for paid deposit bills: a number from one sequence
// (WX + year + 8 digits), a check code = HMAC-SHA256 of the receipt's contents under a
// key derived from the master key, and a one-page PDF. Anyone holding the number, the
// amount and the check code can verify the receipt at the public endpoint.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { fenToYuan } from '../../platform/money.ts';
import { cstDateTime } from '../../platform/time.ts';
import { writePdf, type PdfText, type PdfRule } from './pdf.ts';
import { formatAreaM2, maskName } from '../register/model.ts';

export const RECEIPT_NO_PATTERN = /^WX\d{4}\d{8}$/;

export function receiptNo(year: string, seq: bigint): string {
  return `WX${year}${seq.toString().padStart(8, '0')}`;
}

export interface ReceiptFacts {
  receiptNo: string; billId: string; unitId: string; amountFen: bigint; paidAt: Date; paidVia: string; paidRef: string;
  kind: 'first_deposit' | 'top_up';
}

/** The check code: 16 hex digits of HMAC-SHA256 over the receipt's facts, in 4 groups. */
export function checkCode(key: Buffer, f: ReceiptFacts): string {
  const text = [f.receiptNo, f.billId, f.unitId, f.amountFen.toString(), f.paidAt.toISOString(), f.paidVia, f.paidRef, f.kind].join('|');
  const hex = createHmac('sha256', key).update(text).digest('hex').slice(0, 16).toUpperCase();
  return hex.match(/.{4}/g)!.join('-');
}

export function codesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a.toUpperCase().replace(/[^0-9A-F]/g, ''));
  const y = Buffer.from(b.toUpperCase().replace(/[^0-9A-F]/g, ''));
  return x.length === y.length && x.length === 16 && timingSafeEqual(x, y);
}

const KIND_TEXT = { first_deposit: '首期交存 / first deposit', top_up: '续筹 / top-up' } as const;
const VIA_TEXT: Record<string, string> = { payment: '线上支付 / online', batch: '开发企业批量缴款 / developer batch', counter: '银行柜台或转账 / bank counter or transfer' };

export interface ReceiptView extends ReceiptFacts {
  code: string; estateName: string; address: string; place: string; areaM2e2: bigint; owners: Array<{ name: string }>; verifyUrl: string;
}

/** The receipt as a one-page PDF. */
export function receiptPdf(r: ReceiptView): Buffer {
  const texts: PdfText[] = [];
  const rules: PdfRule[] = [];
  let y = 770;
  const line = (text: string, size = 12, x = 60, step = 26) => {
    texts.push({ x, y, size, text });
    y -= step;
  };
  line('住宅专项维修资金交存票据', 22, 150, 28);
  line('Maintenance fund deposit receipt', 12, 200, 30);
  rules.push({ x1: 50, y1: y + 14, x2: 545, y2: y + 14, width: 1.2 });
  line(`票据号 No.: ${r.receiptNo}`);
  line(`校验码 Check code: ${r.code}`);
  line(`交存类型 Kind: ${KIND_TEXT[r.kind]}`);
  line(`小区 Estate: ${r.estateName}`);
  line(`坐落 Address: ${r.address}`);
  line(`房屋 Unit: ${r.place}`);
  line(`建筑面积 Area: ${formatAreaM2(r.areaM2e2)} ㎡`);
  line(`业主 Owner: ${r.owners.map((o) => maskName(o.name)).join('、') || '开发企业 / developer'}`);
  line(`金额 Amount: ¥${fenToYuan(r.amountFen)} 元`, 16, 60, 30);
  line(`缴款方式 Paid via: ${VIA_TEXT[r.paidVia] ?? r.paidVia}`);
  line(`交易参考号 Reference: ${r.paidRef}`);
  line(`缴款时间 Paid at: ${cstDateTime(r.paidAt)} (北京时间 / Beijing time)`);
  line(`缴款通知书 Bill: ${r.billId}`);
  rules.push({ x1: 50, y1: y + 14, x2: 545, y2: y + 14 });
  line('凭票据号、金额和校验码验证真伪 / Verify with the number, the amount and the check code:', 10, 60, 18);
  line(r.verifyUrl, 9, 60, 18);
  return writePdf({ texts, rules, title: `维修资金票据 ${r.receiptNo}` });
}
