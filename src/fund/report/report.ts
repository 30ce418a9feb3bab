// Reports as Excel (exceljs): estate, building and unit statements and the fund's daily
// summary. Every figure is read from the ledger (household accounts, set-wise, or its
// transfers), so the totals tie to `ledger_accounts`. Amounts are written twice: whole
// fen as integers (for checking) and yuan as text (for reading).
import ExcelJS from 'exceljs';
import type { Database } from '../../platform/db.ts';
import { assert } from '../../platform/assert.ts';
import { badRequest } from '../../platform/errors.ts';
import { fenToYuan } from '../../platform/money.ts';
import { cstDayStart, cstDateTime, isValidDate } from '../../platform/time.ts';
import * as reg from '../register/register.repo.ts';
import * as dep from '../deposit/deposit.repo.ts';
import { FUND_TRANSFER_CODE } from '../accounts.ts';
import { formatAreaM2, useLabel } from '../register/model.ts';
import { fundErrors } from '../register/register.service.ts';

const UNITS_MAX = 5000;
const ENTRIES_MAX = 5000;

const CODE_TEXT: Record<number, string> = {
  [FUND_TRANSFER_CODE.deposit]: '线上交存 / online deposit',
  [FUND_TRANSFER_CODE.counter_deposit]: '柜台/转账交存 / counter deposit',
  [FUND_TRANSFER_CODE.refund]: '退还 / refund',
  // the use-and-yield half's codes (src/fund/use, src/fund/interest)
  3301: '维修支用 / repair use',
  3402: '收益分摊 / interest allocated',
};
const codeText = (code: number) => CODE_TEXT[code] ?? `其他业务 / other (code ${code})`;

const fen = (v: bigint) => {
  assert(v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER), 'amount fits a spreadsheet integer');
  return Number(v);
};

function sheet(wb: ExcelJS.Workbook, name: string, columns: Array<{ header: string; key: string; width?: number }>) {
  const ws = wb.addWorksheet(name);
  ws.columns = columns.map((c) => ({ header: c.header, key: c.key, width: c.width ?? 16 }));
  ws.getRow(1).font = { bold: true };
  return ws;
}

const BALANCE_COLUMNS = [
  { header: '本金(分) principal_fen', key: 'principal_fen', width: 22 },
  { header: '本金(元) principal_yuan', key: 'principal_yuan', width: 20 },
  { header: '利息(分) interest_fen', key: 'interest_fen', width: 22 },
  { header: '利息(元) interest_yuan', key: 'interest_yuan', width: 20 },
  { header: '合计(分) total_fen', key: 'total_fen', width: 20 },
  { header: '冻结(分) held_fen', key: 'held_fen', width: 18 },
];
const balanceCells = (b: { principal_fen: bigint; interest_fen: bigint; principal_held_fen: bigint; interest_held_fen: bigint }) => ({
  principal_fen: fen(b.principal_fen), principal_yuan: fenToYuan(b.principal_fen), interest_fen: fen(b.interest_fen), interest_yuan: fenToYuan(b.interest_fen),
  total_fen: fen(b.principal_fen + b.interest_fen), held_fen: fen(b.principal_held_fen + b.interest_held_fen),
});

export function createReports(deps: { db: Database }) {
  const q = deps.db.kysely;

  async function unitSheet(wb: ExcelJS.Workbook, f: { estateId?: string; buildingId?: string }) {
    const units = await reg.listUnits(q, f, UNITS_MAX);
    const balances = new Map((await dep.householdBalances(q, f, UNITS_MAX)).map((b) => [b.unit_id, b]));
    const ws = sheet(wb, '分户账 Households', [
      { header: '房屋 unit_id', key: 'unit_id', width: 22 }, { header: '幢 building', key: 'building' }, { header: '单元 stair', key: 'stair', width: 8 },
      { header: '室号 room', key: 'room', width: 8 }, { header: '建筑面积㎡ area', key: 'area', width: 12 }, { header: '用途 use', key: 'use', width: 8 },
      ...BALANCE_COLUMNS,
    ]);
    for (const u of units) ws.addRow({ unit_id: u.id, building: u.building_name, stair: u.stair, room: u.room_no, area: formatAreaM2(u.area_m2e2), use: useLabel(u.use), ...balanceCells(balances.get(u.id) as dep.HouseholdBalance) });
    return units.length;
  }

  async function estateStatement(estateId: string): Promise<Buffer> {
    const estate = await reg.findEstate(q, estateId);
    if (!estate) throw fundErrors.estateNotFound(estateId);
    const wb = new ExcelJS.Workbook();
    const buildings = new Map((await reg.findBuildingsOfEstates(q, [estateId])).map((b) => [b.id, b]));
    const rows = await dep.rollup(q, 'building', { estateId });
    const ws = sheet(wb, '按幢汇总 By building', [
      { header: '幢 building', key: 'building' }, { header: '户数 units', key: 'units', width: 10 }, { header: '建筑面积㎡ area', key: 'area' }, ...BALANCE_COLUMNS,
    ]);
    ws.addRow({ building: `${estate.name}（${estate.address}）` });
    const total = { units: 0n, area: 0n, principal_fen: 0n, interest_fen: 0n, principal_held_fen: 0n, interest_held_fen: 0n };
    for (const r of rows) {
      ws.addRow({ building: buildings.get(r.key)?.name ?? r.key, units: fen(r.units), area: formatAreaM2(r.area_m2e2), ...balanceCells(r) });
      total.units += r.units; total.area += r.area_m2e2; total.principal_fen += r.principal_fen; total.interest_fen += r.interest_fen;
      total.principal_held_fen += r.principal_held_fen; total.interest_held_fen += r.interest_held_fen;
    }
    ws.addRow({ building: '合计 Total', units: fen(total.units), area: formatAreaM2(total.area), ...balanceCells(total) }).font = { bold: true };
    await unitSheet(wb, { estateId });
    return Buffer.from(await wb.xlsx.writeBuffer());
  }

  async function buildingStatement(buildingId: string): Promise<Buffer> {
    const b = await reg.findBuilding(q, buildingId);
    if (!b) throw fundErrors.buildingNotFound(buildingId);
    const wb = new ExcelJS.Workbook();
    await unitSheet(wb, { buildingId });
    const [r] = (await dep.rollup(q, 'building', { estateId: b.estate_id })).filter((x) => x.key === buildingId);
    const ws = sheet(wb, '合计 Total', [{ header: '幢 building', key: 'building' }, { header: '户数 units', key: 'units' }, ...BALANCE_COLUMNS]);
    if (r) ws.addRow({ building: b.name, units: fen(r.units), ...balanceCells(r) });
    return Buffer.from(await wb.xlsx.writeBuffer());
  }

  async function unitStatement(unitId: string): Promise<Buffer> {
    const u = await reg.findUnit(q, unitId);
    if (!u) throw fundErrors.unitNotFound(unitId);
    const wb = new ExcelJS.Workbook();
    const ws = sheet(wb, '分户账明细 Statement', [
      { header: '时间 time', key: 'time', width: 20 }, { header: '业务 business', key: 'what', width: 28 }, { header: '科目 account', key: 'account', width: 12 },
      { header: '收入(分) credit_fen', key: 'credit', width: 16 }, { header: '支出(分) debit_fen', key: 'debit', width: 16 },
      { header: '本金余额(分) principal_fen', key: 'principal', width: 22 }, { header: '利息余额(分) interest_fen', key: 'interest', width: 22 },
      { header: '凭证 transfer', key: 'transfer', width: 30 },
    ]);
    ws.addRow({ time: `${u.estate_name} ${u.building_name}幢${u.stair}单元${u.room_no}`, what: `建筑面积 ${formatAreaM2(u.area_m2e2)}㎡` });
    let principal = 0n;
    let interest = 0n;
    for (const e of await dep.unitEntries(q, unitId, ENTRIES_MAX)) {
      const delta = e.side === 'credit' ? e.amount : -e.amount;
      const isPrincipal = e.account_id.endsWith(':principal');
      if (isPrincipal) principal += delta; else interest += delta;
      ws.addRow({
        time: cstDateTime(new Date(Number(e.ts / 1_000_000n))), what: codeText(e.code), account: isPrincipal ? '本金' : '利息',
        credit: e.side === 'credit' ? fen(e.amount) : null, debit: e.side === 'debit' ? fen(e.amount) : null,
        principal: fen(principal), interest: fen(interest), transfer: e.id,
      });
    }
    return Buffer.from(await wb.xlsx.writeBuffer());
  }

  /** The fund's day: opening, movements by business, closing, for household principal and interest. */
  async function dailySummaryData(date: string) {
    if (!isValidDate(date)) throw badRequest('FUND_PARAM_INVALID', '日期须为 YYYY-MM-DD / date must be YYYY-MM-DD');
    const start = cstDayStart(date);
    const end = new Date(start.getTime() + 86_400_000);
    const ns = (d: Date) => BigInt(d.getTime()) * 1_000_000n;
    const opening = await dep.householdTotalsBefore(q, ns(start));
    const closing = await dep.householdTotalsBefore(q, ns(end));
    const movements = await dep.movementsByCode(q, ns(start), ns(end));
    const bills = await dep.billsPaidBetween(q, start, end);
    return { date, opening, closing, movements, bills };
  }

  async function dailySummary(date: string): Promise<Buffer> {
    const d = await dailySummaryData(date);
    const wb = new ExcelJS.Workbook();
    const ws = sheet(wb, '日报 Daily', [
      { header: '项目 item', key: 'item', width: 34 }, { header: '科目 account', key: 'kind', width: 12 }, { header: '笔数 count', key: 'count', width: 10 },
      { header: '金额(分) amount_fen', key: 'fen', width: 20 }, { header: '金额(元) amount_yuan', key: 'yuan', width: 20 },
    ]);
    ws.addRow({ item: `住宅专项维修资金日报 ${d.date}（北京时间）` });
    const add = (item: string, kind: string, count: bigint | null, amount: bigint) => ws.addRow({ item, kind, count: count === null ? null : fen(count), fen: fen(amount), yuan: fenToYuan(amount) });
    add('期初余额 / opening', '本金', null, d.opening.principal);
    add('期初余额 / opening', '利息', null, d.opening.interest);
    for (const m of d.movements) add(`${codeText(m.code)} ${m.side === 'credit' ? '收入 in' : '支出 out'}`, m.kind === 'principal' ? '本金' : '利息', m.transfers, m.side === 'credit' ? m.amount : -m.amount);
    add('期末余额 / closing', '本金', null, d.closing.principal);
    add('期末余额 / closing', '利息', null, d.closing.interest);
    const bs = sheet(wb, '缴款 Bills paid', [{ header: '方式 via', key: 'via' }, { header: '类型 kind', key: 'kind' }, { header: '张数 bills', key: 'bills' }, { header: '金额(分) amount_fen', key: 'fen', width: 20 }]);
    for (const b of d.bills) bs.addRow({ via: b.paid_via, kind: b.kind, bills: fen(b.bills), fen: fen(b.amount) });
    return Buffer.from(await wb.xlsx.writeBuffer());
  }

  return { estateStatement, buildingStatement, unitStatement, dailySummary, dailySummaryData };
}

export type Reports = ReturnType<typeof createReports>;
