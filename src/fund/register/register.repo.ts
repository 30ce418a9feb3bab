// All SQL of the property register and the per-city fund configuration.
import { sql, type Kdb, type Tx } from '../../platform/db.ts';
import type { StoredOwner } from './pii.ts';

type Q = Kdb | Tx;

export interface EstateRow { id: string; city: string; name: string; address: string; district: string; property_company: string | null; created_at: Date }
export interface BuildingRow { id: string; estate_id: string; name: string; building_type: string; floors: number }
export interface UnitRow {
  id: string; estate_id: string; building_id: string; stair: string; room_no: string; area_m2e2: bigint; use: string;
  price_fen: bigint | null; cert_no: string | null; owners: StoredOwner[]; sold: boolean; version: number; created_at: Date;
}
/** A unit with its building and estate, for pages and bills. */
export interface UnitView extends UnitRow { building_name: string; building_type: string; estate_name: string; address: string; city: string }
export interface CityConfigRow { city: string; name: string; top_up_ratio_bp: number; updated_at: Date }
export interface StandardRow { city: string; building_type: string; method: 'area' | 'price'; fen_per_m2: bigint | null; rate: string | null; updated_at: Date }

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));

// --- estates, buildings, units ---------------------------------------------------------

export async function insertEstates(q: Q, rows: Array<Omit<EstateRow, 'created_at'>>): Promise<void> {
  if (rows.length === 0) return;
  await sql`INSERT INTO register_estates (id, city, name, address, district, property_company)
    SELECT id, city, name, address, district, property_company
    FROM jsonb_to_recordset(${json(rows)}::jsonb) AS x(id text, city text, name text, address text, district text, property_company text)`.execute(q);
}

export async function insertBuildings(q: Q, rows: BuildingRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`INSERT INTO register_buildings (id, estate_id, name, building_type, floors)
    SELECT id, estate_id, name, building_type, floors
    FROM jsonb_to_recordset(${json(rows)}::jsonb) AS x(id text, estate_id text, name text, building_type text, floors int)`.execute(q);
}

export async function insertUnits(q: Q, rows: Array<Omit<UnitRow, 'version' | 'created_at'>>): Promise<void> {
  if (rows.length === 0) return;
  await sql`INSERT INTO register_units (id, estate_id, building_id, stair, room_no, area_m2e2, use, price_fen, cert_no, owners, sold)
    SELECT id, estate_id, building_id, stair, room_no, area_m2e2::int8, use, price_fen::int8, cert_no, owners, sold
    FROM jsonb_to_recordset(${json(rows)}::jsonb)
      AS x(id text, estate_id text, building_id text, stair text, room_no text, area_m2e2 text, use text, price_fen text, cert_no text, owners jsonb, sold boolean)`.execute(q);
}

export async function findEstatesByNames(q: Q, city: string, names: string[]): Promise<EstateRow[]> {
  if (names.length === 0) return [];
  return (await sql<EstateRow>`SELECT * FROM register_estates WHERE city = ${city} AND name = ANY(${names}::text[])`.execute(q)).rows;
}

export async function findBuildingsOfEstates(q: Q, estateIds: string[]): Promise<BuildingRow[]> {
  if (estateIds.length === 0) return [];
  return (await sql<BuildingRow>`SELECT * FROM register_buildings WHERE estate_id = ANY(${estateIds}::text[]) ORDER BY estate_id, name`.execute(q)).rows;
}

/** Units already registered at any of these (building, stair, room) places. */
export async function findUnitsAt(q: Q, places: Array<{ building_id: string; stair: string; room_no: string }>): Promise<Array<{ building_id: string; stair: string; room_no: string }>> {
  if (places.length === 0) return [];
  return (await sql<{ building_id: string; stair: string; room_no: string }>`SELECT u.building_id, u.stair, u.room_no FROM register_units u
    JOIN jsonb_to_recordset(${json(places)}::jsonb) AS x(building_id text, stair text, room_no text)
      ON u.building_id = x.building_id AND u.stair = x.stair AND u.room_no = x.room_no`.execute(q)).rows;
}

export async function findCertsTaken(q: Q, certNos: string[]): Promise<string[]> {
  if (certNos.length === 0) return [];
  return (await sql<{ cert_no: string }>`SELECT cert_no FROM register_units WHERE cert_no = ANY(${certNos}::text[])`.execute(q)).rows.map((r) => r.cert_no);
}

export async function findEstate(q: Q, id: string): Promise<EstateRow | null> {
  return (await sql<EstateRow>`SELECT * FROM register_estates WHERE id = ${id}`.execute(q)).rows[0] ?? null;
}

export async function listEstates(q: Q, estateIds: string[] | null, limit: number): Promise<EstateRow[]> {
  if (estateIds === null) return (await sql<EstateRow>`SELECT * FROM register_estates ORDER BY city, name LIMIT ${limit}`.execute(q)).rows;
  return (await sql<EstateRow>`SELECT * FROM register_estates WHERE id = ANY(${estateIds}::text[]) ORDER BY city, name LIMIT ${limit}`.execute(q)).rows;
}

export async function updateEstate(q: Q, id: string, fields: { name?: string; address?: string; district?: string; property_company?: string | null }): Promise<void> {
  await sql`UPDATE register_estates SET
      name = COALESCE(${fields.name ?? null}, name), address = COALESCE(${fields.address ?? null}, address),
      district = COALESCE(${fields.district ?? null}, district),
      property_company = CASE WHEN ${fields.property_company !== undefined}::boolean THEN ${fields.property_company ?? null} ELSE property_company END
    WHERE id = ${id}`.execute(q);
}

export async function findBuilding(q: Q, id: string): Promise<BuildingRow | null> {
  return (await sql<BuildingRow>`SELECT * FROM register_buildings WHERE id = ${id}`.execute(q)).rows[0] ?? null;
}

const UNIT_VIEW = sql`SELECT u.*, b.name AS building_name, b.building_type, e.name AS estate_name, e.address, e.city
  FROM register_units u JOIN register_buildings b ON b.id = u.building_id JOIN register_estates e ON e.id = u.estate_id`;

export async function findUnit(q: Q, id: string, forUpdate = false): Promise<UnitView | null> {
  const lock = forUpdate ? sql`FOR UPDATE OF u` : sql``;
  return (await sql<UnitView>`${UNIT_VIEW} WHERE u.id = ${id} ${lock}`.execute(q)).rows[0] ?? null;
}

export async function findUnits(q: Q, ids: string[]): Promise<UnitView[]> {
  if (ids.length === 0) return [];
  return (await sql<UnitView>`${UNIT_VIEW} WHERE u.id = ANY(${ids}::text[]) ORDER BY u.id`.execute(q)).rows;
}

export async function listUnits(q: Q, f: { estateId?: string; buildingId?: string; unitIds?: string[] }, limit: number, afterId = ''): Promise<UnitView[]> {
  return (await sql<UnitView>`${UNIT_VIEW} WHERE u.id > ${afterId}
      AND (${f.estateId ?? null}::text IS NULL OR u.estate_id = ${f.estateId ?? null})
      AND (${f.buildingId ?? null}::text IS NULL OR u.building_id = ${f.buildingId ?? null})
      AND (${f.unitIds ? json(f.unitIds) : null}::jsonb IS NULL OR to_jsonb(u.id) <@ ${f.unitIds ? json(f.unitIds) : null}::jsonb)
    ORDER BY u.id LIMIT ${limit}`.execute(q)).rows;
}

/** Search by certificate number (exact) or by address text (estate name/address + building/stair/room). */
export async function searchUnits(q: Q, text: string, limit: number): Promise<UnitView[]> {
  const like = `%${text.replace(/[\\%_]/g, (c) => '\\' + c)}%`;
  return (await sql<UnitView>`${UNIT_VIEW} WHERE u.cert_no = ${text}
      OR (e.address || e.name || b.name || '幢' || u.stair || '单元' || u.room_no) LIKE ${like}
      OR (e.address || ' ' || e.name || ' ' || b.name || '幢' || u.stair || '单元' || u.room_no) LIKE ${like}
    ORDER BY e.name, b.name, u.stair, u.room_no LIMIT ${limit}`.execute(q)).rows;
}

export async function updateUnit(q: Q, id: string, version: number, fields: Partial<Pick<UnitRow, 'area_m2e2' | 'use' | 'price_fen' | 'cert_no' | 'owners' | 'sold'>>): Promise<boolean> {
  const has = (k: string) => Object.prototype.hasOwnProperty.call(fields, k);
  const r = await sql`UPDATE register_units SET
      area_m2e2 = CASE WHEN ${has('area_m2e2')}::boolean THEN ${fields.area_m2e2 ?? null}::int8 ELSE area_m2e2 END,
      use = CASE WHEN ${has('use')}::boolean THEN ${fields.use ?? null}::text ELSE use END,
      price_fen = CASE WHEN ${has('price_fen')}::boolean THEN ${fields.price_fen ?? null}::int8 ELSE price_fen END,
      cert_no = CASE WHEN ${has('cert_no')}::boolean THEN ${fields.cert_no ?? null}::text ELSE cert_no END,
      owners = CASE WHEN ${has('owners')}::boolean THEN ${json(fields.owners ?? [])}::jsonb ELSE owners END,
      sold = CASE WHEN ${has('sold')}::boolean THEN ${fields.sold ?? false}::boolean ELSE sold END,
      version = version + 1
    WHERE id = ${id} AND version = ${version}`.execute(q);
  return Number(r.numAffectedRows ?? 0) === 1;
}

export async function insertOwnershipTransfer(q: Q, t: { unitId: string; oldOwners: StoredOwner[]; newOwners: StoredOwner[]; oldCertNo: string | null; newCertNo: string | null; operator: string }): Promise<bigint> {
  const r = await sql<{ id: bigint }>`INSERT INTO fund_ownership_transfers (unit_id, old_owners, new_owners, old_cert_no, new_cert_no, operator)
    VALUES (${t.unitId}, ${json(t.oldOwners)}::jsonb, ${json(t.newOwners)}::jsonb, ${t.oldCertNo}, ${t.newCertNo}, ${t.operator}) RETURNING id`.execute(q);
  return r.rows[0].id;
}

export async function listOwnershipTransfers(q: Q, unitId: string, limit: number) {
  return (await sql<{ id: bigint; unit_id: string; old_owners: StoredOwner[]; new_owners: StoredOwner[]; old_cert_no: string | null; new_cert_no: string | null; operator: string; created_at: Date }>`
    SELECT * FROM fund_ownership_transfers WHERE unit_id = ${unitId} ORDER BY id LIMIT ${limit}`.execute(q)).rows;
}

export async function countRegister(q: Q): Promise<{ estates: bigint; buildings: bigint; units: bigint }> {
  return (await sql<{ estates: bigint; buildings: bigint; units: bigint }>`SELECT
    (SELECT count(*) FROM register_estates)::int8 AS estates, (SELECT count(*) FROM register_buildings)::int8 AS buildings,
    (SELECT count(*) FROM register_units)::int8 AS units`.execute(q)).rows[0];
}

/** Units whose owners include one with this keyed hash of an id number or phone (center lookups). */
export async function findUnitsByOwnerHash(q: Q, kind: 'idNo' | 'phone', hash: string, limit: number): Promise<UnitView[]> {
  const probe = JSON.stringify([{ [kind === 'idNo' ? 'idNoHash' : 'phoneHash']: hash }]);
  return (await sql<UnitView>`${UNIT_VIEW} WHERE u.owners @> ${probe}::jsonb ORDER BY u.id LIMIT ${limit}`.execute(q)).rows;
}

/** Units (after afterId) whose owners still hold a clear id number or phone (before 0010). */
export async function unitsWithClearOwners(q: Q, afterId: string, limit: number): Promise<Array<{ id: string; owners: StoredOwner[] }>> {
  return (await sql<{ id: string; owners: StoredOwner[] }>`SELECT id, owners FROM register_units
    WHERE id > ${afterId} AND EXISTS (SELECT 1 FROM jsonb_array_elements(owners) o WHERE o ? 'idNo' OR o ? 'phone')
    ORDER BY id LIMIT ${limit}`.execute(q)).rows;
}

export async function setUnitOwners(q: Q, id: string, owners: StoredOwner[]): Promise<void> {
  await sql`UPDATE register_units SET owners = ${json(owners)}::jsonb WHERE id = ${id}`.execute(q);
}

export async function transfersWithClearOwners(q: Q, afterId: bigint, limit: number): Promise<Array<{ id: bigint; old_owners: StoredOwner[]; new_owners: StoredOwner[] }>> {
  return (await sql<{ id: bigint; old_owners: StoredOwner[]; new_owners: StoredOwner[] }>`SELECT id, old_owners, new_owners FROM fund_ownership_transfers
    WHERE id > ${afterId.toString()}::int8 AND EXISTS (SELECT 1 FROM jsonb_array_elements(old_owners || new_owners) o WHERE o ? 'idNo' OR o ? 'phone')
    ORDER BY id LIMIT ${limit}`.execute(q)).rows;
}

export async function setTransferOwners(q: Q, id: bigint, oldOwners: StoredOwner[], newOwners: StoredOwner[]): Promise<void> {
  await sql`UPDATE fund_ownership_transfers SET old_owners = ${json(oldOwners)}::jsonb, new_owners = ${json(newOwners)}::jsonb WHERE id = ${id.toString()}::int8`.execute(q);
}

// --- per-city configuration ----------------------------------------------------------

export async function upsertCityConfig(q: Q, c: { city: string; name: string; topUpRatioBp: number }): Promise<void> {
  await sql`INSERT INTO fund_city_config (city, name, top_up_ratio_bp) VALUES (${c.city}, ${c.name}, ${c.topUpRatioBp})
    ON CONFLICT (city) DO UPDATE SET name = EXCLUDED.name, top_up_ratio_bp = EXCLUDED.top_up_ratio_bp, updated_at = now()`.execute(q);
}

export async function findCityConfig(q: Q, city: string): Promise<CityConfigRow | null> {
  return (await sql<CityConfigRow>`SELECT * FROM fund_city_config WHERE city = ${city}`.execute(q)).rows[0] ?? null;
}

export async function upsertStandard(q: Q, s: { city: string; buildingType: string; method: 'area' | 'price'; fenPerM2: bigint | null; rate: string | null }): Promise<void> {
  await sql`INSERT INTO fund_deposit_standards (city, building_type, method, fen_per_m2, rate)
    VALUES (${s.city}, ${s.buildingType}, ${s.method}, ${s.fenPerM2}, ${s.rate})
    ON CONFLICT (city, building_type) DO UPDATE SET method = EXCLUDED.method, fen_per_m2 = EXCLUDED.fen_per_m2, rate = EXCLUDED.rate, updated_at = now()`.execute(q);
}

export async function listStandards(q: Q, city: string): Promise<StandardRow[]> {
  return (await sql<StandardRow>`SELECT * FROM fund_deposit_standards WHERE city = ${city} ORDER BY building_type`.execute(q)).rows;
}

// --- audit -------------------------------------------------------------------------------

export async function audit(q: Q, actor: string, action: string, target: string, detail: unknown): Promise<void> {
  await sql`INSERT INTO fund_audit (actor, action, target, detail) VALUES (${actor}, ${action}, ${target}, ${json(detail)}::jsonb)`.execute(q);
}

export async function listAudit(q: Q, target: string, limit: number) {
  return (await sql<{ id: bigint; actor: string; action: string; target: string; detail: unknown; created_at: Date }>`
    SELECT * FROM fund_audit WHERE target = ${target} ORDER BY id LIMIT ${limit}`.execute(q)).rows;
}
