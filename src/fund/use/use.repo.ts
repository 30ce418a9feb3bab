// All SQL of repair applications (支用申请): applications, their units and shares, votes,
// the action trail, payouts, publications and per-city draw rules. Reads the register
// (A's tables) and, for available balances, the ledger's account rows (read only).
import { sql, type Kdb, type Tx } from '../../platform/db.ts';

type Q = Kdb | Tx;

export interface EstateRow { id: string; city: string; name: string; property_company: string | null }
export interface UnitRow { id: string; estate_id: string; building_id: string; stair: string; room_no: string; area_m2e2: bigint; owners_count: number }

export interface ApplicationRow {
  id: string; request_key: string; request_hash: string; city: string; estate_id: string; scope_kind: 'estate' | 'building' | 'stair';
  building_id: string | null; stair: string | null; title: string; description: string; items: Array<{ name: string; amountFen: string }>;
  budget_fen: bigint; contractor_name: string; contractor_account: string; contractor_bank: string; applicant_role: string;
  applicant: string; emergency: boolean; emergency_category: string | null; status: string; chain: Array<{ key: string; label: string; roles: string[] }>; chain_node: number | null;
  vote_result: Record<string, unknown> | null; version: number; created_at: Date; updated_at: Date;
}
export interface ApplicationUnitRow { application_id: string; unit_id: string; area_m2e2: bigint; share_fen: bigint; owners: number; principal_fen: bigint; interest_fen: bigint }
export interface VoteRow { application_id: string; unit_id: string; choice: 'agree' | 'disagree' | 'abstain'; voter_role: string; voter: string; proof: 'sms' | 'voting_code' | null; session_id: string | null; updated_at: Date }
export interface ActionRow {
  id: bigint; application_id: string; request_key: string | null; action: string; actor: string; actor_role: string; comment: string;
  from_state: string; to_state: string; created_at: Date;
}
export interface PayoutRow { id: string; application_id: string; amount_fen: bigint; status: 'sent' | 'success' | 'failed'; bank_serial_no: string | null; message: string | null; created_at: Date; settled_at: Date | null }
export interface PublicationRow { id: bigint; application_id: string; city: string; estate_id: string; kind: string; title: string; body: Record<string, unknown>; published_at: Date }

// --- register (read only) -------------------------------------------------------------

export async function findEstate(q: Q, id: string): Promise<EstateRow | null> {
  const r = await sql<EstateRow>`SELECT id, city, name, property_company FROM register_estates WHERE id = ${id}`.execute(q);
  return r.rows[0] ?? null;
}

export async function findBuilding(q: Q, id: string): Promise<{ id: string; estate_id: string } | null> {
  const r = await sql<{ id: string; estate_id: string }>`SELECT id, estate_id FROM register_buildings WHERE id = ${id}`.execute(q);
  return r.rows[0] ?? null;
}

/** Units of an estate, optionally of one building and one stair, by id; at most `limit`. */
export async function listUnitsInScope(q: Q, estateId: string, buildingId: string | null, stair: string | null, limit: number): Promise<UnitRow[]> {
  const r = await sql<UnitRow>`
    SELECT id, estate_id, building_id, stair, room_no, area_m2e2,
      GREATEST(1, CASE WHEN jsonb_typeof(owners) = 'array' THEN jsonb_array_length(owners) ELSE 1 END)::int AS owners_count FROM register_units
    WHERE estate_id = ${estateId}
      AND (${buildingId}::text IS NULL OR building_id = ${buildingId})
      AND (${stair}::text IS NULL OR stair = ${stair})
    ORDER BY id LIMIT ${limit}`.execute(q);
  return r.rows;
}

// --- applications ----------------------------------------------------------------------

export async function insertApplication(tx: Tx, a: Omit<ApplicationRow, 'version' | 'created_at' | 'updated_at' | 'vote_result'>): Promise<boolean> {
  const r = await sql`
    INSERT INTO fund_applications (id, request_key, request_hash, city, estate_id, scope_kind, building_id, stair, title, description,
      items, budget_fen, contractor_name, contractor_account, contractor_bank, applicant_role, applicant, emergency, emergency_category,
      status, chain, chain_node)
    VALUES (${a.id}, ${a.request_key}, ${a.request_hash}, ${a.city}, ${a.estate_id}, ${a.scope_kind}, ${a.building_id}, ${a.stair},
      ${a.title}, ${a.description}, ${JSON.stringify(a.items)}::jsonb, ${a.budget_fen.toString()}::int8, ${a.contractor_name},
      ${a.contractor_account}, ${a.contractor_bank}, ${a.applicant_role}, ${a.applicant}, ${a.emergency}, ${a.emergency_category},
      ${a.status}, ${JSON.stringify(a.chain)}::jsonb, ${a.chain_node})
    ON CONFLICT (request_key) DO NOTHING`.execute(tx);
  return Number(r.numAffectedRows ?? 0n) === 1;
}

export async function insertApplicationUnits(tx: Tx, applicationId: string, units: Array<{ unitId: string; areaM2e2: bigint; shareFen: bigint; owners: number }>): Promise<void> {
  if (units.length === 0) return;
  await sql`
    INSERT INTO fund_application_units (application_id, unit_id, area_m2e2, share_fen, owners)
    SELECT ${applicationId}, u.unit_id, u.area, u.share, u.owners
    FROM unnest(${units.map((u) => u.unitId)}::text[], ${units.map((u) => u.areaM2e2.toString())}::int8[],
                ${units.map((u) => u.shareFen.toString())}::int8[], ${units.map((u) => u.owners)}::int4[]) AS u(unit_id, area, share, owners)`.execute(tx);
}

export async function findApplication(q: Q, id: string, forUpdate = false): Promise<ApplicationRow | null> {
  const r = forUpdate
    ? await sql<ApplicationRow>`SELECT * FROM fund_applications WHERE id = ${id} FOR UPDATE`.execute(q)
    : await sql<ApplicationRow>`SELECT * FROM fund_applications WHERE id = ${id}`.execute(q);
  return r.rows[0] ?? null;
}

export async function findApplicationByKey(q: Q, requestKey: string): Promise<ApplicationRow | null> {
  const r = await sql<ApplicationRow>`SELECT * FROM fund_applications WHERE request_key = ${requestKey}`.execute(q);
  return r.rows[0] ?? null;
}

/** Newest first; `estateIds` null = all estates. */
export async function listApplications(q: Q, f: { estateIds: string[] | null; estateId: string | null; status: string | null; limit: number }): Promise<ApplicationRow[]> {
  const r = await sql<ApplicationRow>`
    SELECT * FROM fund_applications
    WHERE (${f.estateIds === null}::bool OR estate_id = ANY(${f.estateIds ?? []}::text[]))
      AND (${f.estateId}::text IS NULL OR estate_id = ${f.estateId})
      AND (${f.status}::text IS NULL OR status = ${f.status})
    ORDER BY created_at DESC, id DESC LIMIT ${f.limit}`.execute(q);
  return r.rows;
}

/** Applications whose scope includes one of these units (owners see those). */
export async function listApplicationsForUnits(q: Q, unitIds: string[], limit: number): Promise<ApplicationRow[]> {
  const r = await sql<ApplicationRow>`
    SELECT a.* FROM fund_applications a
    WHERE EXISTS (SELECT 1 FROM fund_application_units u WHERE u.application_id = a.id AND u.unit_id = ANY(${unitIds}::text[]))
    ORDER BY a.created_at DESC, a.id DESC LIMIT ${limit}`.execute(q);
  return r.rows;
}

export async function updateApplication(tx: Tx, id: string, f: { status: string; chain_node: number | null; vote_result?: unknown }): Promise<void> {
  if (f.vote_result !== undefined) {
    await sql`UPDATE fund_applications SET status = ${f.status}, chain_node = ${f.chain_node}, vote_result = ${JSON.stringify(f.vote_result)}::jsonb,
      version = version + 1, updated_at = now() WHERE id = ${id}`.execute(tx);
  } else {
    await sql`UPDATE fund_applications SET status = ${f.status}, chain_node = ${f.chain_node}, version = version + 1, updated_at = now() WHERE id = ${id}`.execute(tx);
  }
}

export async function listApplicationUnits(q: Q, applicationId: string): Promise<ApplicationUnitRow[]> {
  const r = await sql<ApplicationUnitRow>`SELECT * FROM fund_application_units WHERE application_id = ${applicationId} ORDER BY unit_id`.execute(q);
  return r.rows;
}

export async function setUnitHolds(tx: Tx, applicationId: string, holds: Array<{ unitId: string; principalFen: bigint; interestFen: bigint }>): Promise<void> {
  if (holds.length === 0) return;
  await sql`
    UPDATE fund_application_units AS a SET principal_fen = h.p, interest_fen = h.i
    FROM unnest(${holds.map((h) => h.unitId)}::text[], ${holds.map((h) => h.principalFen.toString())}::int8[],
                ${holds.map((h) => h.interestFen.toString())}::int8[]) AS h(unit_id, p, i)
    WHERE a.application_id = ${applicationId} AND a.unit_id = h.unit_id`.execute(tx);
}

// --- votes -------------------------------------------------------------------------------

/** Records or changes a unit's vote with who voted and how they were proven (the caller holds the application's lock). */
export async function upsertVote(tx: Tx, v: { applicationId: string; unitId: string; choice: string; voterRole: string; voter: string; proof: string | null; sessionId: string | null }): Promise<void> {
  await sql`
    INSERT INTO fund_votes (application_id, unit_id, choice, voter_role, voter, proof, session_id)
    VALUES (${v.applicationId}, ${v.unitId}, ${v.choice}, ${v.voterRole}, ${v.voter}, ${v.proof}, ${v.sessionId})
    ON CONFLICT (application_id, unit_id) DO UPDATE
      SET choice = EXCLUDED.choice, voter_role = EXCLUDED.voter_role, voter = EXCLUDED.voter, proof = EXCLUDED.proof,
          session_id = EXCLUDED.session_id, updated_at = now()`.execute(tx);
}

export async function listVotes(q: Q, applicationId: string): Promise<VoteRow[]> {
  const r = await sql<VoteRow>`SELECT * FROM fund_votes WHERE application_id = ${applicationId} ORDER BY unit_id`.execute(q);
  return r.rows;
}

// --- the action trail ------------------------------------------------------------------

export async function insertAction(tx: Tx, a: { applicationId: string; requestKey: string | null; action: string; actor: string; actorRole: string; comment: string; from: string; to: string }): Promise<void> {
  await sql`
    INSERT INTO fund_application_actions (application_id, request_key, action, actor, actor_role, comment, from_state, to_state)
    VALUES (${a.applicationId}, ${a.requestKey}, ${a.action}, ${a.actor}, ${a.actorRole}, ${a.comment}, ${a.from}, ${a.to})`.execute(tx);
}

export async function findActionByKey(q: Q, applicationId: string, requestKey: string): Promise<ActionRow | null> {
  const r = await sql<ActionRow>`SELECT * FROM fund_application_actions WHERE application_id = ${applicationId} AND request_key = ${requestKey}`.execute(q);
  return r.rows[0] ?? null;
}

export async function listActions(q: Q, applicationId: string): Promise<ActionRow[]> {
  const r = await sql<ActionRow>`SELECT * FROM fund_application_actions WHERE application_id = ${applicationId} ORDER BY id`.execute(q);
  return r.rows;
}

// --- payouts and publications -----------------------------------------------------------

export async function insertPayout(tx: Tx, p: { id: string; applicationId: string; amountFen: bigint }): Promise<void> {
  await sql`INSERT INTO fund_payouts (id, application_id, amount_fen, status) VALUES (${p.id}, ${p.applicationId}, ${p.amountFen.toString()}::int8, 'sent')`.execute(tx);
}

export async function findPayout(q: Q, applicationId: string): Promise<PayoutRow | null> {
  const r = await sql<PayoutRow>`SELECT * FROM fund_payouts WHERE application_id = ${applicationId}`.execute(q);
  return r.rows[0] ?? null;
}

export async function settlePayout(tx: Tx, applicationId: string, status: 'success' | 'failed', bankSerialNo: string | null, message: string | null): Promise<void> {
  await sql`UPDATE fund_payouts SET status = ${status}, bank_serial_no = ${bankSerialNo}, message = ${message}, settled_at = now()
    WHERE application_id = ${applicationId}`.execute(tx);
}

export async function insertPublication(tx: Tx, p: { applicationId: string; city: string; estateId: string; title: string; body: unknown }): Promise<void> {
  await sql`INSERT INTO fund_publications (application_id, city, estate_id, kind, title, body)
    VALUES (${p.applicationId}, ${p.city}, ${p.estateId}, 'emergency_use', ${p.title}, ${JSON.stringify(p.body)}::jsonb)
    ON CONFLICT (application_id) DO NOTHING`.execute(tx);
}

export async function listPublications(q: Q, f: { estateIds: string[] | null; estateId: string | null; limit: number }): Promise<PublicationRow[]> {
  const r = await sql<PublicationRow>`
    SELECT * FROM fund_publications
    WHERE (${f.estateIds === null}::bool OR estate_id = ANY(${f.estateIds ?? []}::text[]))
      AND (${f.estateId}::text IS NULL OR estate_id = ${f.estateId})
    ORDER BY published_at DESC, id DESC LIMIT ${f.limit}`.execute(q);
  return r.rows;
}

// --- rules and balances ------------------------------------------------------------------

export async function findDrawRule(q: Q, city: string): Promise<'principal_only' | 'interest_first' | null> {
  const r = await sql<{ draw_rule: 'principal_only' | 'interest_first' }>`SELECT draw_rule FROM fund_use_rules WHERE city = ${city}`.execute(q);
  return r.rows[0]?.draw_rule ?? null;
}

export async function upsertDrawRule(q: Q, city: string, rule: string): Promise<void> {
  await sql`INSERT INTO fund_use_rules (city, draw_rule) VALUES (${city}, ${rule})
    ON CONFLICT (city) DO UPDATE SET draw_rule = EXCLUDED.draw_rule, updated_at = now()`.execute(q);
}

/**
 * What each account can still pay: credits posted − debits posted − debits pending (the
 * ledger's own overdraft rule for debits_must_not_exceed_credits accounts). One query for
 * all accounts; a missing account is absent from the map (balance 0).
 */
export async function availableByAccount(q: Q, accountIds: string[]): Promise<Map<string, bigint>> {
  if (accountIds.length === 0) return new Map();
  const r = await sql<{ id: string; available: bigint }>`
    SELECT id, credits_posted - debits_posted - debits_pending AS available
    FROM ledger_accounts WHERE id = ANY(${accountIds}::text[])`.execute(q);
  return new Map(r.rows.map((row) => [row.id, BigInt(row.available)]));
}
