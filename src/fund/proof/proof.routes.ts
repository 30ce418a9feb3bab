// The SMS outbox, for the fund center (development and tests: the default SMS sender
// writes there instead of to a provider).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Database } from '../../platform/db.ts';
import { requireCenter, type Principal } from '../access.ts';
import { idParam, security, toJson } from '../http.ts';
import * as repo from './proof.repo.ts';
import type { Limiter } from './limiter.ts';
import type { FundUse } from '../use/use.service.ts';
import { LockedError } from './limiter.ts';

export function proofRoutes(deps: { db: Database; guard: (r: FastifyRequest) => Promise<Principal>; use: FundUse; limiter: Limiter }) {
  return async (app: FastifyInstance) => {
    // An owner with the voting code the center mailed, and no session: the code is the proof.
    // Wrong codes count per unit (the code locks after 5) and per IP (the sign-in limit).
    app.post('/v1/fund/ballots', { schema: { tags: ['maintenance fund · owners\' proofs'], summary: '业主凭表决码表决（无需登录）/ vote with the unit\'s voting code (no session needed)' } }, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const applicationId = idParam(body.applicationId, 'applicationId');
      const unitId = idParam(body.unitId, 'unitId');
      const ip = [{ key: `ip:${request.ip}`, rule: 'ip' as const }];
      try {
        await deps.limiter.attempt(ip);
      } catch (error) {
        if (error instanceof LockedError) reply.header('retry-after', String(error.retryAfterS));
        throw error;
      }
      const owner: Principal = { role: 'owner', subject: `owner:voting-code:${unitId}`, estateIds: null, unitIds: [unitId], proof: null, sessionId: null };
      const out = await deps.use.vote(owner, applicationId, { unitId, choice: body.choice, votingCode: body.votingCode === undefined ? '' : body.votingCode });
      await deps.limiter.forgive(ip);
      return toJson(out);
    });

    app.get('/v1/fund/sms-outbox', { schema: { tags: ['maintenance fund · owners\' proofs'], security, summary: '短信发件箱（开发/测试用的短信通道）/ the SMS outbox of the development sender (center only)' } }, async (request) => {
      const p = await deps.guard(request);
      requireCenter(p);
      const ref = (request.query as { ref?: string }).ref;
      const rows = await repo.listOutbox(deps.db.kysely, ref === undefined ? null : idParam(ref, 'ref'), 100);
      return { messages: toJson(rows.map((r) => ({ id: r.id, phone: r.phone_masked, ref: r.ref, body: r.body, createdAt: r.created_at }))) };
    });
  };
}
