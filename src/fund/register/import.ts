// Reading a property register (楼盘表) file: .xlsx (exceljs) or UTF-8 CSV, one row per
// unit, headers in Chinese or English. Every row is checked; the result is either all
// rows, parsed, or the list of rejected rows (row number, column, reason zh + en).
// Nothing here touches the database; register.service.ts imports in one transaction.
import ExcelJS from 'exceljs';
import { AppError, badRequest } from '../../platform/errors.ts';
import { readZip, ZipError } from '../../platform/zip.ts';
import { BUILDING_TYPES, UNIT_USES, parseAreaM2e2, parseYuanToFen, type Owner } from './model.ts';

/** At most this many data rows in one file. */
export const IMPORT_ROWS_MAX = 20_000;
/** At most this many rejections reported (the rest are counted). */
export const REJECTIONS_SHOWN_MAX = 500;
export const IMPORT_BYTES_MAX = 6 * 1024 * 1024;
/**
 * At most this many bytes once an .xlsx is decompressed (all its parts together). A
 * register of IMPORT_ROWS_MAX rows is well under it; a zip bomb is refused from the
 * archive's central directory before anything is inflated or handed to exceljs.
 */
export const IMPORT_XLSX_UNCOMPRESSED_MAX = 64 * 1024 * 1024;
const IMPORT_XLSX_ENTRIES_MAX = 1000;
/** Control characters no register field holds (tab, LF and CR are CSV structure). */
const CONTROL_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/;

/** The columns: code name, accepted headers (Chinese first), required. */
export const IMPORT_COLUMNS = [
  { key: 'estate', headers: ['小区', '项目', 'estate'], required: true },
  { key: 'address', headers: ['地址', '坐落', 'address'], required: true },
  { key: 'district', headers: ['区县', '区', 'district'], required: false },
  { key: 'property_company', headers: ['物业公司', 'property_company'], required: false },
  { key: 'building', headers: ['幢', '幢号', '楼栋', 'building'], required: true },
  { key: 'building_type', headers: ['建筑类型', 'building_type'], required: true },
  { key: 'floors', headers: ['层数', '总层数', 'floors'], required: true },
  { key: 'stair', headers: ['单元', 'stair'], required: true },
  { key: 'room_no', headers: ['室号', '户号', 'room_no'], required: true },
  { key: 'area_m2', headers: ['建筑面积', '建筑面积(㎡)', 'area_m2'], required: true },
  { key: 'use', headers: ['用途', 'use'], required: true },
  { key: 'price_yuan', headers: ['房价', '房款', '房价(元)', 'price_yuan'], required: false },
  { key: 'cert_no', headers: ['产权证号', '不动产权证号', 'cert_no'], required: false },
  { key: 'owner_name', headers: ['业主', '业主姓名', 'owner_name'], required: false },
  { key: 'owner_id_no', headers: ['证件号', '身份证号', 'owner_id_no'], required: false },
  { key: 'owner_phone', headers: ['电话', '手机', 'owner_phone'], required: false },
  { key: 'sold', headers: ['已售', 'sold'], required: false },
] as const;
export type ColumnKey = (typeof IMPORT_COLUMNS)[number]['key'];

export interface Rejection { row: number; column: string; reason: string }

export interface ImportRow {
  row: number;
  estate: string; address: string; district: string; propertyCompany: string | null;
  building: string; buildingType: string; floors: number; stair: string; roomNo: string;
  areaM2e2: bigint; use: string; priceFen: bigint | null; certNo: string | null; owners: Owner[]; sold: boolean;
}

export type ParseResult = { ok: true; rows: ImportRow[] } | { ok: false; rejected: Rejection[]; rejectedCount: number; rowCount: number };

/** Reads the cells of a file into header + rows of strings. */
export async function readTable(format: 'xlsx' | 'csv', bytes: Buffer): Promise<string[][]> {
  if (bytes.length === 0) throw badRequest('FUND_IMPORT_EMPTY', '文件为空 / the file is empty');
  if (bytes.length > IMPORT_BYTES_MAX) throw badRequest('FUND_IMPORT_TOO_LARGE', `文件过大（上限 ${IMPORT_BYTES_MAX} 字节）/ the file is larger than ${IMPORT_BYTES_MAX} bytes; split it`);
  const table = format === 'xlsx' ? await readXlsx(bytes) : parseCsv(bytes.toString('utf8'));
  checkCells(table);
  return table;
}

/** A NUL or another control character in any cell rejects the file (422), naming the cell. */
function checkCells(table: string[][]): void {
  for (let r = 0; r < table.length; r += 1) {
    const c = table[r].findIndex((cell) => CONTROL_CHARS.test(cell));
    if (c >= 0) {
      throw new AppError('FUND_IMPORT_INVALID_CHARACTER', 422, `第 ${r + 1} 行第 ${c + 1} 列含有 NUL 或控制字符 / row ${r + 1}, column ${c + 1} holds a NUL or control character; remove it`, { row: r + 1, column: c + 1 });
    }
  }
}

/** The archive's declared and actual sizes, checked by the bounded zip reader before exceljs sees it. */
export function checkXlsxArchive(bytes: Buffer): void {
  try {
    readZip(bytes, { entriesMax: IMPORT_XLSX_ENTRIES_MAX, uncompressedBytesMax: IMPORT_XLSX_UNCOMPRESSED_MAX });
  } catch (error) {
    if (error instanceof ZipError && error.code === 'ZIP_TOO_LARGE') {
      throw new AppError('FUND_IMPORT_TOO_LARGE', 413, `Excel 文件解压后过大（上限 ${IMPORT_XLSX_UNCOMPRESSED_MAX} 字节）/ the .xlsx decompresses to more than ${IMPORT_XLSX_UNCOMPRESSED_MAX} bytes; split it or save it again`);
    }
    throw badRequest('FUND_IMPORT_UNREADABLE', `无法读取 Excel 文件 / the file is not a readable .xlsx workbook (${(error as Error).message})`);
  }
}

async function readXlsx(bytes: Buffer): Promise<string[][]> {
  checkXlsxArchive(bytes);
  const workbook = new ExcelJS.Workbook();
  try {
    await workbook.xlsx.load(bytes as unknown as ArrayBuffer);
  } catch {
    throw badRequest('FUND_IMPORT_UNREADABLE', '无法读取 Excel 文件 / the file is not a readable .xlsx workbook');
  }
  const sheet = workbook.worksheets[0];
  if (!sheet) throw badRequest('FUND_IMPORT_EMPTY', '工作簿没有工作表 / the workbook has no sheet');
  if (sheet.rowCount > IMPORT_ROWS_MAX + 1) throw tooManyRows();
  const table: string[][] = [];
  for (let r = 1; r <= sheet.rowCount; r += 1) {
    const row = sheet.getRow(r);
    const cells: string[] = [];
    for (let c = 1; c <= Math.max(row.cellCount, 0); c += 1) cells.push(cellText(row.getCell(c)));
    table.push(cells);
  }
  return table;
}

function cellText(cell: ExcelJS.Cell): string {
  const v = cell.value;
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'boolean') return v ? '是' : '否';
  if (typeof v === 'string') return v;
  return cell.text ?? '';
}

const tooManyRows = () => badRequest('FUND_IMPORT_TOO_LARGE', `行数超过 ${IMPORT_ROWS_MAX} / more than ${IMPORT_ROWS_MAX} rows; split the file`);

/** RFC 4180 CSV (quotes, doubled quotes, CRLF or LF), with or without a UTF-8 BOM. */
export function parseCsv(text: string): string[][] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 1; } else quoted = false;
      } else field += ch;
      continue;
    }
    if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i += 1;
      row.push(field); field = '';
      rows.push(row); row = [];
      if (rows.length > IMPORT_ROWS_MAX + 1) throw tooManyRows();
    } else field += ch;
  }
  if (quoted) throw badRequest('FUND_IMPORT_UNREADABLE', 'CSV 引号未闭合 / a quoted CSV field is not closed');
  if (field !== '' || row.length > 0) { row.push(field); rows.push(row); }
  return rows;
}

const SOLD_WORDS: Record<string, boolean> = { '是': true, '已售': true, y: true, yes: true, true: true, '1': true, '否': false, '未售': false, n: false, no: false, false: false, '0': false, '': false };
const ID_NO = /^\d{17}[\dXx]$/;
const PHONE = /^1\d{10}$/;

/** Checks every row; returns parsed rows only when none is rejected. */
export function validateTable(table: string[][]): ParseResult {
  const rejected: Rejection[] = [];
  let rejectedCount = 0;
  const reject = (row: number, column: string, zh: string, en: string) => {
    rejectedCount += 1;
    if (rejected.length < REJECTIONS_SHOWN_MAX) rejected.push({ row, column, reason: `${zh} / ${en}` });
  };
  const header = (table[0] ?? []).map((h) => h.trim());
  const index = new Map<ColumnKey, number>();
  for (const col of IMPORT_COLUMNS) {
    const i = header.findIndex((h) => (col.headers as readonly string[]).includes(h));
    if (i >= 0) index.set(col.key, i);
    else if (col.required) reject(1, col.headers[0], `缺少列「${col.headers[0]}」`, `missing column "${col.headers.at(-1)}"`);
  }
  const body = table.slice(1).map((cells, i) => ({ cells, row: i + 2 })).filter((r) => r.cells.some((c) => c.trim() !== ''));
  if (rejectedCount > 0) return { ok: false, rejected, rejectedCount, rowCount: body.length };
  if (body.length === 0) {
    reject(2, '', '文件没有数据行', 'the file has no data rows');
    return { ok: false, rejected, rejectedCount, rowCount: 0 };
  }
  const rows: ImportRow[] = [];
  const seenRooms = new Map<string, number>();
  const seenCerts = new Map<string, number>();
  const buildings = new Map<string, { type: string; floors: number; row: number }>();
  const estates = new Map<string, { address: string; row: number }>();
  for (const { cells, row } of body) {
    const get = (key: ColumnKey) => (index.has(key) ? (cells[index.get(key) as number] ?? '').trim() : '');
    const before = rejectedCount;
    for (const col of IMPORT_COLUMNS) {
      if (col.required && get(col.key) === '') reject(row, col.headers[0], `「${col.headers[0]}」必填`, `${col.headers.at(-1)} is required`);
    }
    for (const key of ['estate', 'address', 'building', 'stair', 'room_no', 'cert_no', 'owner_name', 'district', 'property_company'] as const) {
      if (get(key).length > 100) reject(row, key, '内容过长（最多 100 字）', 'longer than 100 characters');
    }
    const buildingType = BUILDING_TYPES.find((t) => t.code === get('building_type') || t.label === get('building_type'));
    if (get('building_type') !== '' && !buildingType) {
      reject(row, '建筑类型', `建筑类型「${get('building_type')}」不认识，可用：${BUILDING_TYPES.map((t) => t.label).join('、')}`, `unknown building type; use ${BUILDING_TYPES.map((t) => t.code).join(', ')}`);
    }
    const floors = /^\d{1,3}$/.test(get('floors')) ? Number(get('floors')) : NaN;
    if (get('floors') !== '' && !(floors >= 1 && floors <= 200)) reject(row, '层数', '层数须为 1–200 的整数', 'floors must be a whole number 1–200');
    const areaM2e2 = parseAreaM2e2(get('area_m2'));
    if (get('area_m2') !== '' && areaM2e2 === null) reject(row, '建筑面积', '建筑面积须为大于 0、最多两位小数的平方米数（不超过 100000）', 'area must be square metres > 0 with at most 2 decimals (≤ 100000)');
    const use = UNIT_USES.find((u) => u.code === get('use') || u.label === get('use'));
    if (get('use') !== '' && !use) reject(row, '用途', `用途「${get('use')}」不认识，可用：${UNIT_USES.map((u) => u.label).join('、')}`, `unknown use; use ${UNIT_USES.map((u) => u.code).join(', ')}`);
    let priceFen: bigint | null = null;
    if (get('price_yuan') !== '') {
      priceFen = parseYuanToFen(get('price_yuan'));
      if (priceFen === null || priceFen <= 0n) reject(row, '房价', '房价须为大于 0 的元金额（最多两位小数）', 'price must be yuan > 0 with at most 2 decimals');
    }
    const soldText = get('sold').toLowerCase();
    const sold = SOLD_WORDS[soldText];
    if (sold === undefined) reject(row, '已售', '已售须为「是」或「否」', 'sold must be 是/否 (yes/no)');
    const names = splitList(get('owner_name'));
    const idNos = splitList(get('owner_id_no'));
    const phones = splitList(get('owner_phone'));
    if (idNos.length > names.length || phones.length > names.length) reject(row, '业主', '证件号或电话多于业主人数', 'more id numbers or phones than owners');
    for (const id of idNos) if (!ID_NO.test(id)) reject(row, '证件号', `证件号「${id}」须为 18 位身份证号`, 'id number must be 18 characters (17 digits + digit or X)');
    for (const p of phones) if (!PHONE.test(p)) reject(row, '电话', `电话「${p}」须为 11 位手机号`, 'phone must be an 11-digit mobile number');
    if (sold === true && names.length === 0) reject(row, '业主', '已售房屋须填业主', 'a sold unit needs its owner');
    const certNo = get('cert_no') || null;
    if (certNo !== null) {
      const first = seenCerts.get(certNo);
      if (first !== undefined) reject(row, '产权证号', `产权证号与第 ${first} 行重复`, `certificate number repeats row ${first}`);
      else seenCerts.set(certNo, row);
    }
    const roomKey = `${get('estate')}\u0000${get('building')}\u0000${get('stair')}\u0000${get('room_no')}`;
    const firstRoom = seenRooms.get(roomKey);
    if (firstRoom !== undefined) reject(row, '室号', `与第 ${firstRoom} 行是同一户`, `same unit as row ${firstRoom}`);
    else seenRooms.set(roomKey, row);
    const estateSeen = estates.get(get('estate'));
    if (estateSeen && estateSeen.address !== get('address')) reject(row, '地址', `同一小区地址与第 ${estateSeen.row} 行不同`, `the estate's address differs from row ${estateSeen.row}`);
    else if (!estateSeen && get('estate') !== '') estates.set(get('estate'), { address: get('address'), row });
    const bKey = `${get('estate')}\u0000${get('building')}`;
    const bSeen = buildings.get(bKey);
    if (bSeen && buildingType && floors >= 1 && floors <= 200 && (bSeen.type !== buildingType.code || bSeen.floors !== floors)) {
      reject(row, '建筑类型', `同一幢的建筑类型或层数与第 ${bSeen.row} 行不同`, `the building's type or floors differ from row ${bSeen.row}`);
    } else if (!bSeen && buildingType && floors >= 1 && floors <= 200) buildings.set(bKey, { type: buildingType.code, floors, row });
    if (rejectedCount > before) continue;
    rows.push({
      row, estate: get('estate'), address: get('address'), district: get('district'), propertyCompany: get('property_company') || null,
      building: get('building'), buildingType: (buildingType as { code: string }).code, floors, stair: get('stair'), roomNo: get('room_no'),
      areaM2e2: areaM2e2 as bigint, use: (use as { code: string }).code, priceFen, certNo, sold: sold as boolean,
      owners: names.map((name, i) => ({ name, idNo: idNos[i] ?? null, phone: phones[i] ?? null })),
    });
  }
  if (rejectedCount > 0) return { ok: false, rejected, rejectedCount, rowCount: body.length };
  return { ok: true, rows };
}

const splitList = (text: string) => text.split(/[、;；,，]/).map((s) => s.trim()).filter((s) => s !== '');
