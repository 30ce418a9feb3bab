// Statements (结算对账单) per party and period, in CSV and Excel: every entry (order,
// fee, refund, split, collection, payout), the opening and closing balances, and the
// totals by kind. Amounts in fen (exact) and yuan.
import ExcelJS from 'exceljs';
import { fenToYuan } from '../platform/money.ts';
import { cstDateTime } from '../platform/time.ts';
import type { EntryRow, PartyRow } from './settlement.repo.ts';

export interface Statement {
  party: PartyRow; from: string; to: string; openingFen: bigint; closingFen: bigint; totals: Record<string, bigint>; rows: EntryRow[];
}

export const KIND_LABELS: Record<string, string> = {
  payment: '收款 payment', fee: '手续费 fee', fee_return: '退还手续费 fee returned', refund: '退款 refund', split_in: '分账收入 split in',
  split_out: '分账支出 split out', utility_in: '代收 collected', utility_out: '代收转出 collected for utility', clawback_in: '退款追回 clawback in',
  clawback_out: '退款追回 clawback out', payout: '结算出款 payout', payout_return: '出款退回 payout returned', hold_back: '冻结留存 held back',
  hold_forward: '冻结结转 held forward',
};

const HEADER = ['记账时间 booked_at', '类型 kind', '业务单号 ref', '金额(分) amount_fen', '金额(元) amount_yuan', '可结算日 available_on', '结算单 settlement_id'];

function cell(text: string): string {
  // Quote everything that could break a row, and defuse spreadsheet formulas.
  const safe = /^[=+\-@]/.test(text) && !/^-?[0-9.]+$/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

function lines(st: Statement): string[][] {
  const head = [
    ['结算对账单 statement', st.party.party_id, st.party.name],
    ['期间 period', st.from, st.to],
    ['期初余额 opening_fen', st.openingFen.toString(), fenToYuan(st.openingFen)],
    HEADER,
  ];
  const body = st.rows.map((r) => [cstDateTime(r.created_at), KIND_LABELS[r.kind] ?? r.kind, r.ref, r.amount_fen.toString(), fenToYuan(r.amount_fen), r.available_on ?? '', r.settlement_id ?? '']);
  const totals = Object.entries(st.totals).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [`合计 total`, KIND_LABELS[k] ?? k, '', v.toString(), fenToYuan(v), '', '']);
  return [...head, ...body, ...totals, ['期末余额 closing_fen', st.closingFen.toString(), fenToYuan(st.closingFen)]];
}

export function statementCsv(st: Statement): string {
  return '\uFEFF' + lines(st).map((l) => l.map(cell).join(',')).join('\r\n') + '\r\n';
}

export async function statementXlsx(st: Statement): Promise<Buffer> {
  const book = new ExcelJS.Workbook();
  const sheet = book.addWorksheet('对账单 statement');
  for (const l of lines(st)) {
    // fen as exact integers (numbers are exact below 2^53), everything else as text
    sheet.addRow(l.map((v, i) => (i === 3 && /^-?[0-9]{1,15}$/.test(v) ? Number(v) : v)));
  }
  sheet.getRow(4).font = { bold: true };
  sheet.columns.forEach((c) => { c.width = 22; });
  return Buffer.from(await book.xlsx.writeBuffer());
}
