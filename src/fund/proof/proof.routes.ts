// The SMS outbox, for the fund center (development and tests: the default SMS sender
// writes there instead of to a provider).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Database } from '../../platform/db.ts';
import { requireCenter, type Principal } from '../access.ts';
import { idParam, security, toJson } from '../http.ts';
import * as repo from './proof.repo.ts';

export function proofRoutes(deps: { db: Database; guard: (r: FastifyRequest) => Promise<Principal> }) {
  return async (app: FastifyInstance) => {
    app.get('/v1/fund/sms-outbox', { schema: { tags: ['maintenance fund · owners\' proofs'], security, summary: '短信发件箱（开发/测试用的短信通道）/ the SMS outbox of the development sender (center only)' } }, async (request) => {
      const p = await deps.guard(request);
      requireCenter(p);
      const ref = (request.query as { ref?: string }).ref;
      const rows = await repo.listOutbox(deps.db.kysely, ref === undefined ? null : idParam(ref, 'ref'), 100);
      return { messages: toJson(rows.map((r) => ({ id: r.id, phone: r.phone_masked, ref: r.ref, body: r.body, createdAt: r.created_at }))) };
    });
  };
}
