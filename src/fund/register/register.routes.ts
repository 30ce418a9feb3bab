// Admin API of the property register and the per-city configuration. Thin: parse,
// check the principal's scope, call the service.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { badRequest } from '../../platform/errors.ts';
import type { Database } from '../../platform/db.ts';
import { canSeeEstate, canSeeUnit, issueToken, requireCenter, requireEstate, requireUnit, forbidden, type Principal } from '../access.ts';
import { fenParam, idParam, security, textParam, toJson } from '../http.ts';
import * as repo from './register.repo.ts';
import * as dep from '../deposit/deposit.repo.ts';
import { isUnitUse, maskNameStaff, parseAreaM2e2, type Owner } from './model.ts';
import type { Pii } from './pii.ts';
import type { RegisterService } from './register.service.ts';
import type { DepositService } from '../deposit/deposit.service.ts';

const tags = ['maintenance fund · register 楼盘表'];
const OWNERS_MAX = 20;

export function parseOwners(value: unknown): Owner[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > OWNERS_MAX) throw badRequest('FUND_PARAM_INVALID', `业主须为 1–${OWNERS_MAX} 人的数组 / owners must be an array of 1–${OWNERS_MAX} {name, idNo, phone}`);
  return value.map((o: Record<string, unknown>, i) => {
    const name = textParam(o?.name, `owners[${i}].name`, 50);
    const idNo = o?.idNo === undefined || o?.idNo === null ? null : String(o.idNo);
    const phone = o?.phone === undefined || o?.phone === null ? null : String(o.phone);
    if (idNo !== null && !/^\d{17}[\dXx]$/.test(idNo)) throw badRequest('FUND_PARAM_INVALID', `owners[${i}].idNo 须为 18 位身份证号 / must be an 18-character id number`);
    if (phone !== null && !/^1\d{10}$/.test(phone)) throw badRequest('FUND_PARAM_INVALID', `owners[${i}].phone 须为 11 位手机号 / must be an 11-digit mobile number`);
    return { name, idNo, phone };
  });
}

/**
 * What each role sees of a unit: the center everything (id numbers and phones opened);
 * the unit's own owner the full names and the certificate; property companies and
 * committees masked names (张*三) and no certificate number — those are the proof the
 * owner sign-in asks for.
 */
export function unitJson(u: repo.UnitView, principal: Principal, pii: Pii) {
  const center = principal.role === 'center';
  const ownerOfUnit = principal.role === 'owner';
  const owners = center ? u.owners.map((o) => pii.open(o)) : u.owners.map((o) => ({ name: ownerOfUnit ? o.name : maskNameStaff(o.name), idNo: null, phone: null }));
  return toJson({
    id: u.id, estateId: u.estate_id, buildingId: u.building_id, estateName: u.estate_name, address: u.address, city: u.city,
    building: u.building_name, buildingType: u.building_type, stair: u.stair, roomNo: u.room_no, areaM2e2: u.area_m2e2, use: u.use,
    priceFen: u.price_fen, certNo: center || ownerOfUnit ? u.cert_no : null, owners, sold: u.sold, version: u.version,
  });
}

export function registerRoutes(deps: { db: Database; pii: Pii; register: RegisterService; deposits: DepositService; guard: (r: FastifyRequest) => Promise<Principal> }) {
  const { register, guard } = deps;
  return async (app: FastifyInstance) => {
    app.put('/v1/fund/cities/:city', { schema: { tags, security, summary: '城市维修资金参数（续筹阈值）/ a city\'s fund configuration (top-up threshold, basis points)' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      const { city } = request.params as { city: string };
      const body = (request.body ?? {}) as { name?: unknown; topUpRatioBp?: unknown };
      return toJson(await register.setCity({ city, name: textParam(body.name, 'name', 50), topUpRatioBp: body.topUpRatioBp === undefined ? 3000 : Number(body.topUpRatioBp) }, p.subject));
    });

    app.put('/v1/fund/cities/:city/standards/:buildingType', { schema: { tags, security, summary: '交存标准：面积×元/㎡ 或 房款×比例 / deposit standard: area × fen/㎡ or price × rate' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      const { city, buildingType } = request.params as { city: string; buildingType: string };
      const body = (request.body ?? {}) as { method?: unknown; fenPerM2?: unknown; rate?: unknown };
      if (body.method !== 'area' && body.method !== 'price') throw badRequest('FUND_PARAM_INVALID', 'method 须为 area 或 price / method must be "area" or "price"');
      const standards = await register.setStandard({
        city, buildingType, method: body.method,
        fenPerM2: body.method === 'area' ? fenParam(body.fenPerM2, 'fenPerM2', { max: 10_000_000n }) : null,
        rate: body.method === 'price' ? (typeof body.rate === 'string' ? body.rate : '') : null,
      }, p.subject);
      return { standards: toJson(standards) };
    });

    app.get('/v1/fund/cities/:city', { schema: { tags, security, summary: '城市参数与交存标准 / a city\'s configuration and standards' } }, async (request) => {
      await guard(request);
      const { city } = request.params as { city: string };
      const config = await register.requireCity(deps.db.kysely, city);
      return toJson({ ...config, standards: await repo.listStandards(deps.db.kysely, city) });
    });

    app.post('/v1/fund/imports', { schema: { tags, security, summary: '导入楼盘表（xlsx/csv，全部成功或全部不导入）/ import a register file: all rows or none' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      const body = (request.body ?? {}) as { city?: unknown; format?: unknown; contentBase64?: unknown };
      if (body.format !== 'xlsx' && body.format !== 'csv') throw badRequest('FUND_PARAM_INVALID', 'format 须为 xlsx 或 csv / format must be "xlsx" or "csv"');
      if (typeof body.contentBase64 !== 'string' || !/^[A-Za-z0-9+/=\r\n]*$/.test(body.contentBase64)) throw badRequest('FUND_PARAM_INVALID', 'contentBase64 须为文件的 base64 / contentBase64 must be the file in base64');
      const outcome = await register.importFile({ city: textParam(body.city, 'city', 32), format: body.format, bytes: Buffer.from(body.contentBase64, 'base64'), actor: p.subject });
      return { imported: { estates: outcome.estates, buildings: outcome.buildings, units: outcome.units } };
    });

    app.post('/v1/fund/units', { schema: { tags, security, summary: '登记房屋（JSON，字段同导入列的英文名；全部成功或全部不登记；行号从 2 起）/ register units as JSON, keyed like the import columns' } }, async (request, reply) => {
      const p = await guard(request);
      requireCenter(p);
      const body = (request.body ?? {}) as { city?: unknown; units?: unknown };
      if (!Array.isArray(body.units) || !body.units.every((u) => typeof u === 'object' && u !== null && !Array.isArray(u))) throw badRequest('FUND_PARAM_INVALID', 'units 须为对象数组 / units must be an array of objects');
      const outcome = await register.addUnits({ city: textParam(body.city, 'city', 32), units: body.units as Array<Record<string, unknown>>, actor: p.subject });
      return reply.status(201).send({ imported: { estates: outcome.estates, buildings: outcome.buildings, units: outcome.units }, unitIds: outcome.unitIds });
    });

    app.get('/v1/fund/estates', { schema: { tags, security, summary: '小区列表（按权限）/ estates you may see' } }, async (request) => {
      const p = await guard(request);
      if (p.role === 'owner') throw forbidden('业主只能查看自己的房屋 / owners see their own units: GET /v1/fund/units');
      return { estates: toJson(await repo.listEstates(deps.db.kysely, p.estateIds, 1000)) };
    });

    app.get('/v1/fund/estates/:id', { schema: { tags, security, summary: '小区、各幢与分户账汇总 / an estate, its buildings and balances by building' } }, async (request) => {
      const p = await guard(request);
      const { id } = request.params as { id: string };
      const estate = await register.getEstate(idParam(id, 'id'));
      requireEstate(p, estate.id);
      const buildings = await repo.findBuildingsOfEstates(deps.db.kysely, [estate.id]);
      const rollups = new Map((await dep.rollup(deps.db.kysely, 'building', { estateId: estate.id })).map((r) => [r.key, r]));
      return toJson({ ...estate, buildings: buildings.map((b) => ({ ...b, balances: rollups.get(b.id) ?? null })) });
    });

    app.patch('/v1/fund/estates/:id', { schema: { tags, security, summary: '修改小区 / edit an estate' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as Record<string, unknown>;
      const fields: { name?: string; address?: string; district?: string; property_company?: string | null } = {};
      if (body.name !== undefined) fields.name = textParam(body.name, 'name', 100);
      if (body.address !== undefined) fields.address = textParam(body.address, 'address', 100);
      if (body.district !== undefined) fields.district = textParam(body.district, 'district', 100, false);
      if (body.propertyCompany !== undefined) fields.property_company = body.propertyCompany === null ? null : textParam(body.propertyCompany, 'propertyCompany', 100);
      return toJson(await register.editEstate(idParam(id, 'id'), fields, p.subject));
    });

    app.get('/v1/fund/units', { schema: { tags, security, summary: '房屋列表（按权限）/ units you may see' } }, async (request) => {
      const p = await guard(request);
      const query = request.query as { estateId?: string; buildingId?: string; after?: string; limit?: string; ownerIdNo?: string; ownerPhone?: string };
      if (query.ownerIdNo !== undefined || query.ownerPhone !== undefined) {
        requireCenter(p);
        const kind = query.ownerIdNo !== undefined ? 'idNo' : 'phone';
        const value = String(query.ownerIdNo ?? query.ownerPhone);
        if (kind === 'idNo' ? !/^\d{17}[\dXx]$/.test(value) : !/^1\d{10}$/.test(value)) throw badRequest('FUND_PARAM_INVALID', kind === 'idNo' ? 'ownerIdNo 须为 18 位身份证号 / ownerIdNo must be an 18-character id number' : 'ownerPhone 须为 11 位手机号 / ownerPhone must be an 11-digit mobile number');
        return { units: (await register.findByOwner(kind, value, 100)).map((u) => unitJson(u, p, deps.pii)) };
      }
      if (query.estateId !== undefined && !canSeeEstate(p, query.estateId) && p.role !== 'owner') throw forbidden();
      if (p.role !== 'center' && p.role !== 'owner' && query.estateId === undefined) throw badRequest('FUND_PARAM_INVALID', '请指定 estateId / give estateId');
      const units = await register.listUnits({ estateId: query.estateId, buildingId: query.buildingId, unitIds: p.role === 'owner' ? (p.unitIds ?? []) : undefined }, Number(query.limit ?? 500) || 500, query.after);
      return { units: units.filter((u) => canSeeUnit(p, u)).map((u) => unitJson(u, p, deps.pii)) };
    });

    app.get('/v1/fund/units/:id', { schema: { tags, security, summary: '房屋、分户账余额与缴款通知书 / a unit, its household account and bills' } }, async (request) => {
      const p = await guard(request);
      const { id } = request.params as { id: string };
      const unit = await register.getUnit(idParam(id, 'id'));
      requireUnit(p, unit);
      const [balance] = await deps.deposits.balances({ unitIds: [unit.id] }, 1);
      return { ...unitJson(unit, p, deps.pii), balances: toJson(balance) };
    });

    app.patch('/v1/fund/units/:id', { schema: { tags, security, summary: '修改房屋登记（需带 version）/ edit a unit (send its version)' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as Record<string, unknown>;
      if (!Number.isInteger(body.version)) throw badRequest('FUND_PARAM_INVALID', 'version 必填（读取房屋时得到）/ version is required (from GET /v1/fund/units/:id)');
      const fields: { areaM2e2?: bigint; use?: string; priceFen?: bigint | null; sold?: boolean } = {};
      if (body.areaM2 !== undefined) {
        const area = typeof body.areaM2 === 'string' ? parseAreaM2e2(body.areaM2) : null;
        if (area === null) throw badRequest('FUND_PARAM_INVALID', 'areaM2 须为字符串平方米，最多两位小数，如 "98.50" / areaM2 must be a string of square metres with ≤ 2 decimals, e.g. "98.50"');
        fields.areaM2e2 = area;
      }
      if (body.use !== undefined) {
        if (!isUnitUse(body.use)) throw badRequest('FUND_PARAM_INVALID', 'use 须为 residential/commercial/office/other');
        fields.use = body.use as string;
      }
      if (body.priceFen !== undefined) fields.priceFen = body.priceFen === null ? null : fenParam(body.priceFen, 'priceFen', { max: 100_000_000_000_000n });
      if (body.sold !== undefined) {
        if (typeof body.sold !== 'boolean') throw badRequest('FUND_PARAM_INVALID', 'sold 须为 true/false');
        fields.sold = body.sold;
      }
      if (body.owners !== undefined || body.certNo !== undefined) throw badRequest('FUND_PARAM_INVALID', '业主和产权证号的变更请用过户接口 / change owners through POST /v1/fund/units/:id/ownership-transfers');
      return unitJson(await register.editUnit(idParam(id, 'id'), body.version as number, fields, p.subject), p, deps.pii);
    });

    app.post('/v1/fund/units/:id/ownership-transfers', { schema: { tags, security, summary: '过户：变更业主，不动资金 / ownership transfer: owners change, no money moves' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as Record<string, unknown>;
      if (!Number.isInteger(body.version)) throw badRequest('FUND_PARAM_INVALID', 'version 必填 / version is required');
      const newCertNo = body.newCertNo === undefined || body.newCertNo === null ? null : textParam(body.newCertNo, 'newCertNo', 100);
      const unit = await register.transferOwnership(idParam(id, 'id'), { version: body.version as number, newOwners: parseOwners(body.newOwners), newCertNo }, p.subject);
      return unitJson(unit, p, deps.pii);
    });

    app.get('/v1/fund/units/:id/ownership-transfers', { schema: { tags, security, summary: '过户记录 / ownership transfers of a unit' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      const { id } = request.params as { id: string };
      const rows = await repo.listOwnershipTransfers(deps.db.kysely, idParam(id, 'id'), 200);
      return { transfers: toJson(rows.map((t) => ({ ...t, old_owners: t.old_owners.map((o) => deps.pii.open(o)), new_owners: t.new_owners.map((o) => deps.pii.open(o)) }))) };
    });

    app.post('/v1/fund/principals', { schema: { tags, security, summary: '签发令牌：物业公司、业委会、业主 / issue a token to a property company, owners\' committee or owner' } }, async (request, reply) => {
      const p = await guard(request);
      requireCenter(p);
      const body = (request.body ?? {}) as { role?: unknown; subject?: unknown; estateIds?: unknown; unitIds?: unknown; expiresInS?: unknown };
      if (body.role !== 'property' && body.role !== 'committee' && body.role !== 'owner') throw badRequest('FUND_PARAM_INVALID', 'role 须为 property、committee 或 owner');
      const ids = (v: unknown, name: string) => {
        if (v === undefined) return null;
        if (!Array.isArray(v) || v.length > 1000) throw badRequest('FUND_PARAM_INVALID', `${name} 须为 id 数组 / ${name} must be an array of ids`);
        return v.map((x, i) => idParam(x, `${name}[${i}]`));
      };
      const estateIds = ids(body.estateIds, 'estateIds');
      const unitIds = ids(body.unitIds, 'unitIds');
      if (body.role === 'owner' ? !unitIds?.length : !estateIds?.length) throw badRequest('FUND_PARAM_INVALID', body.role === 'owner' ? '业主令牌须给 unitIds / an owner token needs unitIds' : '须给 estateIds / give estateIds');
      for (const e of estateIds ?? []) await register.getEstate(e);
      for (const u of unitIds ?? []) await register.getUnit(u);
      const expiresInS = body.expiresInS === undefined ? null : Number(body.expiresInS);
      if (expiresInS !== null && !(Number.isInteger(expiresInS) && expiresInS >= 60 && expiresInS <= 366 * 86400)) throw badRequest('FUND_PARAM_INVALID', 'expiresInS 须为 60–31622400 秒 / expiresInS must be 60 s to 366 days');
      const token = await issueToken(deps.db, { role: body.role, subject: textParam(body.subject, 'subject', 100), estateIds: body.role === 'owner' ? null : estateIds, unitIds: body.role === 'owner' ? unitIds : null, expiresAt: expiresInS === null ? null : new Date(Date.now() + expiresInS * 1000) });
      return reply.status(201).send({ token, role: body.role });
    });
  };
}
