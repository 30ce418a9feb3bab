// SQL for fund principals (tokens the center issues to property companies, owners'
// committees and owners).
import { sql, type Kdb, type Tx } from '../../platform/db.ts';

type Q = Kdb | Tx;

export interface PrincipalRow {
  token_hash: string; role: 'property' | 'committee' | 'owner'; subject: string;
  estate_ids: string[] | null; unit_ids: string[] | null; expires_at: Date | null; revoked: boolean; created_at: Date;
  proof: 'sms' | null; session_id: string | null;
}

export async function findPrincipal(q: Q, tokenHash: string): Promise<PrincipalRow | null> {
  const r = await sql<PrincipalRow>`SELECT * FROM fund_principals WHERE token_hash = ${tokenHash}`.execute(q);
  return r.rows[0] ?? null;
}

export async function insertPrincipal(q: Q, p: { tokenHash: string; role: string; subject: string; estateIds: string[] | null; unitIds: string[] | null; expiresAt: Date | null; proof: 'sms' | null; sessionId: string | null }): Promise<void> {
  await sql`INSERT INTO fund_principals (token_hash, role, subject, estate_ids, unit_ids, expires_at, proof, session_id)
    VALUES (${p.tokenHash}, ${p.role}, ${p.subject}, ${p.estateIds === null ? null : JSON.stringify(p.estateIds)}::jsonb,
            ${p.unitIds === null ? null : JSON.stringify(p.unitIds)}::jsonb, ${p.expiresAt}, ${p.proof}, ${p.sessionId})`.execute(q);
}

export async function revokePrincipal(q: Q, tokenHash: string): Promise<boolean> {
  const r = await sql`UPDATE fund_principals SET revoked = true WHERE token_hash = ${tokenHash} AND NOT revoked`.execute(q);
  return Number(r.numAffectedRows ?? 0) > 0;
}
