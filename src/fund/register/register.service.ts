// The property register's use cases: import a file (all rows or none, in one
// transaction), edit estates and units (optimistic version), transfer ownership
// (owners change, no money moves), and the per-city configuration (deposit standards,
// top-up threshold). Every change is audited.
import { randomBytes } from 'node:crypto';
import { transact, type Database, type Tx } from '../../platform/db.ts';
import { AppError, badRequest, notFound } from '../../platform/errors.ts';
import { isRate } from '../../platform/money.ts';
import * as repo from './register.repo.ts';
import { IMPORT_COLUMNS, readTable, validateTable, type ImportRow, type Rejection } from './import.ts';
import { isBuildingType, isUnitUse, type Owner } from './model.ts';
import { sealLegacy, type Pii } from './pii.ts';

export const newId = (prefix: string) => `${prefix}_${randomBytes(8).toString('hex')}`;

const CITY_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const LIST_LIMIT_MAX = 1000;

export const fundErrors = {
  cityUnknown: (city: string) => new AppError('FUND_CITY_UNKNOWN', 400, `城市 ${city} 未配置维修资金参数，先调用 PUT /v1/fund/cities/${city} / city ${city} has no fund configuration yet`),
  unitNotFound: (id: string) => notFound('FUND_UNIT_NOT_FOUND', `房屋不存在 / no unit ${id}`),
  estateNotFound: (id: string) => notFound('FUND_ESTATE_NOT_FOUND', `小区不存在 / no estate ${id}`),
  buildingNotFound: (id: string) => notFound('FUND_BUILDING_NOT_FOUND', `幢不存在 / no building ${id}`),
  versionConflict: (id: string) => new AppError('FUND_VERSION_CONFLICT', 409, `房屋 ${id} 已被他人修改，请刷新后重试 / unit ${id} changed since you read it; read it again and retry with its new version`),
};

export interface ImportOutcome { estates: number; buildings: number; units: number; unitIds: string[] }

export function importRejected(rejected: Rejection[], rejectedCount: number, rowCount: number): AppError {
  return new AppError('FUND_IMPORT_REJECTED', 422,
    `${rejectedCount} 处错误，未导入任何数据；请修改后重新导入 / ${rejectedCount} problems in ${rowCount} rows; nothing was imported — fix the rows and import again`,
    { rejected, rejectedCount, rowCount });
}

export type RegisterService = ReturnType<typeof createRegisterService>;

export function createRegisterService(deps: { db: Database; pii: Pii }) {
  const { db, pii } = deps;

  async function requireCity(q: Tx | Database['kysely'], city: string) {
    if (!CITY_PATTERN.test(city)) throw badRequest('FUND_CITY_INVALID', '城市代码须为 1–32 位字母数字 / city code must be 1–32 letters, digits, _ or -');
    const config = await repo.findCityConfig(q, city);
    if (!config) throw fundErrors.cityUnknown(city);
    return config;
  }

  /** Imports a register file: every row valid and new, or nothing at all. */
  async function importFile(input: { city: string; format: 'xlsx' | 'csv'; bytes: Buffer; actor: string }): Promise<ImportOutcome> {
    await requireCity(db.kysely, input.city);
    const parsed = validateTable(await readTable(input.format, input.bytes));
    if (!parsed.ok) throw importRejected(parsed.rejected, parsed.rejectedCount, parsed.rowCount);
    return importRows(input.city, parsed.rows, input.actor);
  }

  /** Adds units given as JSON objects keyed by the import's English column names (same checks, same all-or-nothing). */
  async function addUnits(input: { city: string; units: Array<Record<string, unknown>>; actor: string }): Promise<ImportOutcome> {
    await requireCity(db.kysely, input.city);
    if (input.units.length === 0 || input.units.length > 1000) throw badRequest('FUND_PARAM_INVALID', 'units 须为 1–1000 条 / units must hold 1–1000 entries');
    const keys = IMPORT_COLUMNS.map((c) => c.headers.at(-1) as string);
    const table = [keys, ...input.units.map((u) => keys.map((k) => (u[k] === undefined || u[k] === null ? '' : String(u[k]))))];
    const parsed = validateTable(table);
    if (!parsed.ok) throw importRejected(parsed.rejected, parsed.rejectedCount, parsed.rowCount);
    return importRows(input.city, parsed.rows, input.actor);
  }

  async function importRows(city: string, rows: ImportRow[], actor: string): Promise<ImportOutcome> {
    return transact(db, async (tx) => {
      await requireCity(tx, city);
      const rejected: Rejection[] = [];
      const estateNames = [...new Set(rows.map((r) => r.estate))];
      const existingEstates = new Map((await repo.findEstatesByNames(tx, city, estateNames)).map((e) => [e.name, e]));
      const newEstates: Array<Omit<repo.EstateRow, 'created_at'>> = [];
      const estateIds = new Map<string, string>();
      for (const r of rows) {
        if (estateIds.has(r.estate)) continue;
        const e = existingEstates.get(r.estate);
        if (e) {
          if (e.address !== r.address) rejected.push({ row: r.row, column: '地址', reason: `小区已登记，地址为「${e.address}」/ the estate is registered with another address` });
          estateIds.set(r.estate, e.id);
        } else {
          const id = newId('e');
          newEstates.push({ id, city, name: r.estate, address: r.address, district: r.district, property_company: r.propertyCompany });
          estateIds.set(r.estate, id);
        }
      }
      const existingBuildings = await repo.findBuildingsOfEstates(tx, [...existingEstates.values()].map((e) => e.id));
      const buildingByKey = new Map(existingBuildings.map((b) => [`${b.estate_id}\u0000${b.name}`, b]));
      const newBuildings: repo.BuildingRow[] = [];
      const unitRows: Array<Omit<repo.UnitRow, 'version' | 'created_at'>> = [];
      for (const r of rows) {
        const estateId = estateIds.get(r.estate) as string;
        const key = `${estateId}\u0000${r.building}`;
        let b = buildingByKey.get(key);
        if (!b) {
          b = { id: newId('bd'), estate_id: estateId, name: r.building, building_type: r.buildingType, floors: r.floors };
          buildingByKey.set(key, b);
          newBuildings.push(b);
        } else if (b.building_type !== r.buildingType || b.floors !== r.floors) {
          rejected.push({ row: r.row, column: '建筑类型', reason: `该幢已登记为 ${b.building_type}、${b.floors} 层 / the building is registered as ${b.building_type}, ${b.floors} floors` });
        }
        unitRows.push({
          id: newId('u'), estate_id: estateId, building_id: b.id, stair: r.stair, room_no: r.roomNo, area_m2e2: r.areaM2e2, use: r.use,
          price_fen: r.priceFen, cert_no: r.certNo, owners: pii.seal(r.owners), sold: r.sold,
        });
      }
      const rowOf = new Map(unitRows.map((u, i) => [`${u.building_id}\u0000${u.stair}\u0000${u.room_no}`, rows[i].row]));
      for (const taken of await repo.findUnitsAt(tx, unitRows)) {
        rejected.push({ row: rowOf.get(`${taken.building_id}\u0000${taken.stair}\u0000${taken.room_no}`) as number, column: '室号', reason: '该户已登记，修改请用管理接口 / the unit is already registered; edit it through the admin API' });
      }
      const certRow = new Map(rows.filter((r) => r.certNo).map((r) => [r.certNo as string, r.row]));
      for (const cert of await repo.findCertsTaken(tx, [...certRow.keys()])) {
        rejected.push({ row: certRow.get(cert) as number, column: '产权证号', reason: '产权证号已被其他房屋使用 / the certificate number belongs to another registered unit' });
      }
      if (rejected.length > 0) {
        rejected.sort((a, b) => a.row - b.row);
        throw importRejected(rejected.slice(0, 500), rejected.length, rows.length);
      }
      await repo.insertEstates(tx, newEstates);
      await repo.insertBuildings(tx, newBuildings);
      for (let i = 0; i < unitRows.length; i += 2000) await repo.insertUnits(tx, unitRows.slice(i, i + 2000));
      await repo.audit(tx, actor, 'register.import', `city:${city}`, { estates: newEstates.length, buildings: newBuildings.length, units: unitRows.length });
      return { estates: newEstates.length, buildings: newBuildings.length, units: unitRows.length, unitIds: unitRows.map((u) => u.id) };
    });
  }

  async function getUnit(id: string): Promise<repo.UnitView> {
    const unit = await repo.findUnit(db.kysely, id);
    if (!unit) throw fundErrors.unitNotFound(id);
    return unit;
  }

  async function getEstate(id: string): Promise<repo.EstateRow> {
    const estate = await repo.findEstate(db.kysely, id);
    if (!estate) throw fundErrors.estateNotFound(id);
    return estate;
  }

  async function getBuilding(id: string): Promise<repo.BuildingRow> {
    const b = await repo.findBuilding(db.kysely, id);
    if (!b) throw fundErrors.buildingNotFound(id);
    return b;
  }

  /** Edits a unit's register facts (not its owners: that is an ownership transfer). */
  async function editUnit(id: string, version: number, fields: { areaM2e2?: bigint; use?: string; priceFen?: bigint | null; sold?: boolean }, actor: string) {
    if (fields.use !== undefined && !isUnitUse(fields.use)) throw badRequest('FUND_PARAM_INVALID', `未知用途 ${fields.use} / unknown use`);
    return transact(db, async (tx) => {
      const unit = await repo.findUnit(tx, id, true);
      if (!unit) throw fundErrors.unitNotFound(id);
      const changes: Partial<repo.UnitRow> = {};
      if (fields.areaM2e2 !== undefined) changes.area_m2e2 = fields.areaM2e2;
      if (fields.use !== undefined) changes.use = fields.use;
      if (fields.priceFen !== undefined) changes.price_fen = fields.priceFen;
      if (fields.sold !== undefined) changes.sold = fields.sold;
      if (!(await repo.updateUnit(tx, id, version, changes))) throw fundErrors.versionConflict(id);
      await repo.audit(tx, actor, 'unit.edit', `unit:${id}`, { before: pick(unit, Object.keys(changes)), after: changes });
      return (await repo.findUnit(tx, id)) as repo.UnitView;
    });
  }

  async function editEstate(id: string, fields: { name?: string; address?: string; district?: string; property_company?: string | null }, actor: string) {
    return transact(db, async (tx) => {
      const estate = await repo.findEstate(tx, id);
      if (!estate) throw fundErrors.estateNotFound(id);
      await repo.updateEstate(tx, id, fields);
      await repo.audit(tx, actor, 'estate.edit', `estate:${id}`, { before: pick(estate, Object.keys(fields)), after: fields });
      return (await repo.findEstate(tx, id)) as repo.EstateRow;
    });
  }

  /** 过户: the owners (and certificate) change; the household account stays with the house. */
  async function transferOwnership(id: string, input: { version: number; newOwners: Owner[]; newCertNo: string | null }, actor: string) {
    if (input.newOwners.length === 0) throw badRequest('FUND_PARAM_INVALID', '新业主至少一人 / at least one new owner');
    return transact(db, async (tx) => {
      const unit = await repo.findUnit(tx, id, true);
      if (!unit) throw fundErrors.unitNotFound(id);
      if (input.newCertNo !== null && input.newCertNo !== unit.cert_no && (await repo.findCertsTaken(tx, [input.newCertNo])).length > 0) {
        throw new AppError('FUND_CERT_TAKEN', 409, '产权证号已被其他房屋使用 / the certificate number belongs to another unit');
      }
      const newOwners = pii.seal(input.newOwners);
      if (!(await repo.updateUnit(tx, id, input.version, { owners: newOwners, cert_no: input.newCertNo, sold: true }))) throw fundErrors.versionConflict(id);
      const transferId = await repo.insertOwnershipTransfer(tx, { unitId: id, oldOwners: sealLegacy(pii, unit.owners) ?? unit.owners, newOwners, oldCertNo: unit.cert_no, newCertNo: input.newCertNo, operator: actor });
      await repo.audit(tx, actor, 'unit.ownership_transfer', `unit:${id}`, { transferId: transferId.toString(), oldCertNo: unit.cert_no, newCertNo: input.newCertNo });
      return (await repo.findUnit(tx, id)) as repo.UnitView;
    });
  }

  async function setCity(input: { city: string; name: string; topUpRatioBp: number }, actor: string) {
    if (!CITY_PATTERN.test(input.city)) throw badRequest('FUND_CITY_INVALID', '城市代码须为 1–32 位字母数字 / city code must be 1–32 letters, digits, _ or -');
    if (!Number.isInteger(input.topUpRatioBp) || input.topUpRatioBp < 1 || input.topUpRatioBp > 10_000) {
      throw badRequest('FUND_PARAM_INVALID', '续筹阈值须为 1–10000 基点（3000 = 30%）/ topUpRatioBp must be 1–10000 (3000 = 30%)');
    }
    await transact(db, async (tx) => {
      await repo.upsertCityConfig(tx, input);
      await repo.audit(tx, actor, 'city.set', `city:${input.city}`, input);
    });
    return repo.findCityConfig(db.kysely, input.city);
  }

  async function setStandard(input: { city: string; buildingType: string; method: 'area' | 'price'; fenPerM2?: bigint | null; rate?: string | null }, actor: string) {
    if (!isBuildingType(input.buildingType)) throw badRequest('FUND_PARAM_INVALID', `未知建筑类型 ${input.buildingType} / unknown building type`);
    if (input.method === 'area' && !(typeof input.fenPerM2 === 'bigint' && input.fenPerM2 > 0n && input.fenPerM2 <= 10_000_000n)) {
      throw badRequest('FUND_PARAM_INVALID', '按面积交存须给 fenPerM2（每平方米分，1–10000000）/ the area method needs fenPerM2 (fen per ㎡, 1–10000000)');
    }
    if (input.method === 'price' && !(isRate(input.rate, '0.2') && input.rate !== undefined && !/^0+(\.0+)?$/.test(input.rate as string))) {
      throw badRequest('FUND_PARAM_INVALID', '按房价交存须给 rate（如 "0.02"，不超过 0.2）/ the price method needs rate, a decimal such as "0.02" (at most 0.2)');
    }
    await transact(db, async (tx) => {
      await requireCity(tx, input.city);
      await repo.upsertStandard(tx, { city: input.city, buildingType: input.buildingType, method: input.method, fenPerM2: input.method === 'area' ? (input.fenPerM2 as bigint) : null, rate: input.method === 'price' ? (input.rate as string) : null });
      await repo.audit(tx, actor, 'standard.set', `city:${input.city}`, input);
    });
    return repo.listStandards(db.kysely, input.city);
  }

  async function listUnits(f: { estateId?: string; buildingId?: string; unitIds?: string[] }, limit: number, afterId?: string) {
    return repo.listUnits(db.kysely, f, Math.min(Math.max(limit, 1), LIST_LIMIT_MAX), afterId);
  }

  /** Seals id numbers and phones still held in clear (rows from before 0010); bounded batches, safe to rerun. Returns rows rewritten. */
  async function sealLegacyOwners(batchSize = 500, maxBatches = 10_000): Promise<number> {
    let rewritten = 0;
    let afterUnit = '';
    for (let i = 0; i < maxBatches; i += 1) {
      const rows = await repo.unitsWithClearOwners(db.kysely, afterUnit, batchSize);
      if (rows.length === 0) break;
      await transact(db, async (tx) => {
        for (const r of rows) await repo.setUnitOwners(tx, r.id, sealLegacy(pii, r.owners) ?? r.owners);
      });
      rewritten += rows.length;
      afterUnit = rows[rows.length - 1].id;
    }
    let afterTransfer = 0n;
    for (let i = 0; i < maxBatches; i += 1) {
      const rows = await repo.transfersWithClearOwners(db.kysely, afterTransfer, batchSize);
      if (rows.length === 0) break;
      await transact(db, async (tx) => {
        for (const r of rows) await repo.setTransferOwners(tx, r.id, sealLegacy(pii, r.old_owners) ?? r.old_owners, sealLegacy(pii, r.new_owners) ?? r.new_owners);
      });
      rewritten += rows.length;
      afterTransfer = BigInt(rows[rows.length - 1].id);
    }
    return rewritten;
  }

  /** The center's lookup by an owner's id number or phone (through the keyed hash; nothing is decrypted to search). */
  async function findByOwner(kind: 'idNo' | 'phone', value: string, limit: number) {
    return repo.findUnitsByOwnerHash(db.kysely, kind, pii.hash(kind, value), Math.min(Math.max(limit, 1), LIST_LIMIT_MAX));
  }

  return { sealLegacyOwners, findByOwner, importFile, importRows, addUnits, getUnit, getEstate, getBuilding, editUnit, editEstate, transferOwnership, setCity, setStandard, listUnits, requireCity };
}

function pick(row: object, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const map: Record<string, string> = { areaM2e2: 'area_m2e2', priceFen: 'price_fen' };
  for (const k of keys) out[k] = (row as Record<string, unknown>)[map[k] ?? k];
  return out;
}
