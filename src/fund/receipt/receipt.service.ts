// Receipts of paid bills: the view (with its check code), the PDF, and verification by
// number + amount + check code (public: reveals nothing unless all three match).
import type { Database } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import * as dep from '../deposit/deposit.repo.ts';
import * as reg from '../register/register.repo.ts';
import { checkCode, codesEqual, receiptPdf, RECEIPT_NO_PATTERN, type ReceiptFacts, type ReceiptView } from './receipt.ts';
import { maskName } from '../register/model.ts';

export const receiptInvalid = () => new AppError('FUND_RECEIPT_INVALID', 404, '票据号、金额与校验码不匹配 / no receipt matches this number, amount and check code');

export type ReceiptService = ReturnType<typeof createReceiptService>;

export function createReceiptService(deps: { db: Database; key: Buffer; publicUrl: string }) {
  const facts = (b: dep.BillRow): ReceiptFacts | null => b.state === 'paid' && b.receipt_no && b.paid_at && b.paid_via && b.paid_ref
    ? { receiptNo: b.receipt_no, billId: b.id, unitId: b.unit_id, amountFen: b.amount_fen, paidAt: b.paid_at, paidVia: b.paid_via, paidRef: b.paid_ref, kind: b.kind }
    : null;

  /** The check code of a paid bill's receipt (null while unpaid). */
  function codeOf(b: dep.BillRow): string | null {
    const f = facts(b);
    return f ? checkCode(deps.key, f) : null;
  }

  async function view(b: dep.BillRow): Promise<ReceiptView | null> {
    const f = facts(b);
    if (!f) return null;
    const unit = await reg.findUnit(deps.db.kysely, b.unit_id);
    if (!unit) return null;
    const code = checkCode(deps.key, f);
    return {
      ...f, code, estateName: unit.estate_name, address: unit.address, place: `${unit.building_name}幢${unit.stair}单元${unit.room_no}`,
      areaM2e2: unit.area_m2e2, owners: unit.owners, verifyUrl: `${deps.publicUrl}/h5/fund/verify?no=${f.receiptNo}&amount=${f.amountFen}&code=${code}`,
    };
  }

  /** Finds the receipt by number and checks the code (and the amount, when given). */
  async function find(no: string, code: string, amountFen: bigint | null): Promise<ReceiptView> {
    if (!RECEIPT_NO_PATTERN.test(no)) throw receiptInvalid();
    const bill = await dep.findBillByReceipt(deps.db.kysely, no);
    const v = bill ? await view(bill) : null;
    if (!v || !codesEqual(v.code, code) || (amountFen !== null && v.amountFen !== amountFen)) throw receiptInvalid();
    return v;
  }

  async function verify(no: string, amountFen: bigint, code: string) {
    const v = await find(no, code, amountFen);
    return {
      valid: true, receiptNo: v.receiptNo, amountFen: v.amountFen.toString(), paidAt: v.paidAt.toISOString(), kind: v.kind,
      estate: v.estateName, unit: v.place, owners: v.owners.map((o) => maskName(o.name)),
    };
  }

  async function pdf(no: string, code: string): Promise<Buffer> {
    return receiptPdf(await find(no, code, null));
  }

  return { codeOf, view, verify, pdf, find };
}
