// Who may see what in the maintenance fund. The platform's admin bearer token is the
// 维修资金中心 (center, sees everything); property companies, owners' committees and
// owners hold tokens the center issues (fund_principals: only the token's sha256 is
// stored). Owners on the H5 page get a short-lived owner token for one unit after
// proving the house: certificate number + owner name, then an SMS code sent to the
// owner's phone on record (proof 'sms'). Out-of-scope access is 403 FUND_FORBIDDEN.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Database } from '../platform/db.ts';
import type { Clock } from '../platform/clock.ts';
import { AppError, unauthorized } from '../platform/errors.ts';
import * as repo from './register/principals.repo.ts';

export type FundRole = 'center' | 'property' | 'committee' | 'owner';
export interface Principal {
  role: FundRole;
  subject: string;
  /** null = all (center). */
  estateIds: string[] | null;
  /** null = every unit of estateIds (or all, for the center). */
  unitIds: string[] | null;
  /** Owner sessions from the H5 sign-in: how the owner was proven ('sms'), else null. */
  proof?: 'sms' | null;
  /** The owner session's id (recorded with each vote), else null. */
  sessionId?: string | null;
}

export interface FundGuardDeps { db: Database; adminToken: string; clock: Clock }

export const forbidden = (message = '无权访问 / this belongs to someone else') => new AppError('FUND_FORBIDDEN', 403, message);

const sha256 = (s: string) => createHash('sha256').update(s).digest();
export const tokenHash = (token: string) => sha256(token).toString('hex');

/** Reads "Authorization: Bearer <token>" and resolves the principal, or throws 401. */
export function fundGuard(deps: FundGuardDeps): (request: FastifyRequest) => Promise<Principal> {
  const admin = sha256(deps.adminToken);
  return async (request) => {
    const header = request.headers.authorization;
    if (!header || !header.startsWith('Bearer ')) throw unauthorized('缺少令牌 / missing "Authorization: Bearer <token>"');
    return resolveToken(deps, admin, header.slice(7));
  };
}

async function resolveToken(deps: FundGuardDeps, admin: Buffer, token: string): Promise<Principal> {
  const digest = sha256(token);
  if (timingSafeEqual(digest, admin)) return { role: 'center', subject: 'center', estateIds: null, unitIds: null };
  const row = await repo.findPrincipal(deps.db.kysely, digest.toString('hex'));
  if (!row || row.revoked) throw unauthorized('令牌无效 / the token is unknown or revoked');
  if (row.expires_at !== null && BigInt(row.expires_at.getTime()) * 1_000_000n <= deps.clock.nowNs()) throw unauthorized('令牌已过期 / the token has expired; sign in again');
  return { role: row.role, subject: row.subject, estateIds: row.estate_ids ?? [], unitIds: row.unit_ids, proof: row.proof, sessionId: row.session_id };
}

/** Resolves a token from anywhere (H5 cookie); null when missing or invalid. */
export async function principalFromToken(deps: FundGuardDeps, token: string | undefined): Promise<Principal | null> {
  if (!token) return null;
  try {
    return await resolveToken(deps, sha256(deps.adminToken), token);
  } catch (error) {
    if (error instanceof AppError) return null;
    throw error;
  }
}

export function canSeeEstate(p: Principal, estateId: string): boolean {
  if (p.role === 'center') return true;
  if (p.role === 'owner') return false; // owners see units, not estates
  return p.estateIds !== null && p.estateIds.includes(estateId);
}

export function canSeeUnit(p: Principal, unit: { id: string; estate_id: string }): boolean {
  if (p.role === 'center') return true;
  if (p.role === 'owner') return p.unitIds !== null && p.unitIds.includes(unit.id);
  return p.estateIds !== null && p.estateIds.includes(unit.estate_id);
}

export function requireCenter(p: Principal): void {
  if (p.role !== 'center') throw forbidden('仅维修资金中心可操作 / only the fund center may do this');
}
export function requireEstate(p: Principal, estateId: string): void {
  if (!canSeeEstate(p, estateId)) throw forbidden(`无权访问小区 ${estateId} / estate ${estateId} is not yours`);
}
export function requireUnit(p: Principal, unit: { id: string; estate_id: string }): void {
  if (!canSeeUnit(p, unit)) throw forbidden(`无权访问房屋 ${unit.id} / unit ${unit.id} is not yours`);
}

/** Issues a token for a principal; returns the token (shown once; only its hash is stored). */
export async function issueToken(
  db: Database,
  p: { role: Exclude<FundRole, 'center'>; subject: string; estateIds: string[] | null; unitIds: string[] | null; expiresAt: Date | null; proof?: 'sms' | null; sessionId?: string | null },
): Promise<string> {
  const token = `fund_${p.role}_${randomBytes(24).toString('base64url')}`;
  await repo.insertPrincipal(db.kysely, { tokenHash: tokenHash(token), ...p, proof: p.proof ?? null, sessionId: p.sessionId ?? null });
  return token;
}
