// Admin API of loss prevention (bearer admin token): alerts (list, acknowledge), risk
// rules per merchant, blocklists, and a manual monitor run.
import type { FastifyInstance } from 'fastify';
import type { Database } from '../platform/db.ts';
import * as repo from './risk.repo.ts';
import { riskErrors } from './risk.errors.ts';

const security = [{ bearer: [] }];
const tags = ['risk admin'];
const FEN = '^[1-9][0-9]{0,14}$';
const ACTION = { type: 'string', enum: ['refuse', 'hold'] };
const KIND = { type: 'string', enum: ['ip', 'payer', 'merchant'] };
const ID_TEXT = { type: 'string', minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f\\u007f]+$' };

const alertSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' }, monitor: { type: 'string' }, subject: { type: 'string' }, mchNo: { type: ['string', 'null'] },
    amountFen: { type: ['string', 'null'] }, summary: { type: 'string' }, details: { type: 'object', additionalProperties: true },
    holdRef: { type: ['string', 'null'] }, state: { type: 'string' }, seenCount: { type: 'integer' }, firstSeenAt: { type: 'string' },
    lastSeenAt: { type: 'string' }, postedAt: { type: ['string', 'null'] }, ackedAt: { type: ['string', 'null'] }, ackedNote: { type: ['string', 'null'] },
  },
};
const rulesSchema = {
  type: 'object',
  properties: {
    mchNo: { type: 'string' }, singleMaxFen: { type: ['string', 'null'] }, singleAction: { type: 'string' }, dailyMaxFen: { type: ['string', 'null'] },
    dailyAction: { type: 'string' }, velocityMax: { type: ['integer', 'null'] }, velocityWindowS: { type: 'integer' }, velocityAction: { type: 'string' },
    patternFactor: { type: ['integer', 'null'] }, patternSamples: { type: 'integer' }, patternAction: { type: 'string' }, updatedAt: { type: 'string' },
  },
};
const blockSchema = { type: 'object', properties: { kind: { type: 'string' }, value: { type: 'string' }, reason: { type: 'string' }, createdAt: { type: 'string' } } };
const errorSchema = { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } };

const iso = (d: Date | null) => (d ? d.toISOString() : null);
export const alertView = (a: repo.AlertRow) => ({
  id: a.id.toString(), monitor: a.monitor, subject: a.subject, mchNo: a.mch_no, amountFen: a.amount_fen?.toString() ?? null,
  summary: a.summary, details: JSON.parse(a.details) as object, holdRef: a.hold_ref, state: a.state, seenCount: a.seen_count,
  firstSeenAt: a.first_seen_at.toISOString(), lastSeenAt: a.last_seen_at.toISOString(), postedAt: iso(a.posted_at), ackedAt: iso(a.acked_at), ackedNote: a.acked_note,
});
const rulesView = (r: repo.RuleRow) => ({
  mchNo: r.mch_no, singleMaxFen: r.single_max_fen?.toString() ?? null, singleAction: r.single_action, dailyMaxFen: r.daily_max_fen?.toString() ?? null,
  dailyAction: r.daily_action, velocityMax: r.velocity_max, velocityWindowS: r.velocity_window_s, velocityAction: r.velocity_action,
  patternFactor: r.pattern_factor, patternSamples: r.pattern_samples, patternAction: r.pattern_action, updatedAt: r.updated_at.toISOString(),
});

interface RulesBody {
  singleMaxFen?: string | null; singleAction?: repo.RuleAction; dailyMaxFen?: string | null; dailyAction?: repo.RuleAction;
  velocityMax?: number | null; velocityWindowS?: number; velocityAction?: repo.RuleAction;
  patternFactor?: number | null; patternSamples?: number; patternAction?: repo.RuleAction;
}

export function riskRoutes(deps: { db: Database; guard: (req: never) => Promise<void>; runMonitors: () => Promise<Record<string, number>>; rulesChanged: () => void }) {
  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      scope.addHook('onRequest', deps.guard as never);

      scope.get('/v1/admin/risk/alerts', {
        schema: {
          tags, security, summary: '资损告警 / loss-prevention alerts (newest first)',
          querystring: { type: 'object', additionalProperties: false, properties: { state: { type: 'string', enum: ['open', 'acked'] }, monitor: { type: 'string', maxLength: 64, pattern: '^[a-z_]+$' }, limit: { type: 'string', pattern: '^[1-9][0-9]{0,2}$' } } },
          response: { 200: { type: 'object', properties: { alerts: { type: 'array', items: alertSchema } } }, 401: errorSchema },
        },
      }, async (request) => {
        const q = request.query as { state?: string; monitor?: string; limit?: string };
        const rows = await repo.listAlerts(deps.db.kysely, q, Math.min(Number(q.limit ?? 100), 500));
        return { alerts: rows.map(alertView) };
      });

      scope.post('/v1/admin/risk/alerts/:id/ack', {
        schema: {
          tags, security, summary: '确认告警 / acknowledge an alert (its settlement hold stays until released in settlement)',
          params: { type: 'object', properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,17}$' } } },
          body: { type: ['object', 'null'], additionalProperties: false, properties: { note: { type: 'string', maxLength: 500, pattern: '^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$' } } },
          response: { 200: alertSchema, 404: errorSchema },
        },
      }, async (request) => {
        const { id } = request.params as { id: string };
        const note = (request.body as { note?: string } | null)?.note ?? null;
        const row = await repo.ackAlert(deps.db.kysely, BigInt(id), note);
        if (!row) throw riskErrors.alertNotFound(`告警不存在 / no alert ${id}`);
        return alertView(row);
      });

      scope.post('/v1/admin/risk/run', {
        schema: { tags, security, summary: '立即运行监控 / run every monitor now', response: { 200: { type: 'object', properties: { breaches: { type: 'object', additionalProperties: { type: 'integer' } } } } } },
      }, async () => ({ breaches: await deps.runMonitors() }));

      scope.get('/v1/admin/risk/rules', {
        schema: { tags, security, summary: '风控规则 / risk rules (mchNo * = default)', response: { 200: { type: 'object', properties: { rules: { type: 'array', items: rulesSchema } } } } },
      }, async () => ({ rules: (await repo.listRules(deps.db.kysely, 1000)).map(rulesView) }));

      scope.put('/v1/admin/risk/rules/:mchNo', {
        schema: {
          tags, security, summary: '设置风控规则 / set a merchant\'s risk rules (replaces the row; omitted = off or default)',
          params: { type: 'object', properties: { mchNo: { type: 'string', pattern: '^(\\*|[A-Za-z0-9_-]{1,64})$' } } },
          body: {
            type: 'object', additionalProperties: false,
            properties: {
              singleMaxFen: { type: ['string', 'null'], pattern: FEN }, singleAction: ACTION,
              dailyMaxFen: { type: ['string', 'null'], pattern: FEN }, dailyAction: ACTION,
              velocityMax: { type: ['integer', 'null'], minimum: 1, maximum: 100000 }, velocityWindowS: { type: 'integer', minimum: 1, maximum: 86400 }, velocityAction: ACTION,
              patternFactor: { type: ['integer', 'null'], minimum: 2, maximum: 1000 }, patternSamples: { type: 'integer', minimum: 5, maximum: 1000 }, patternAction: ACTION,
            },
          },
          response: { 200: rulesSchema, 400: errorSchema },
        },
      }, async (request) => {
        const { mchNo } = request.params as { mchNo: string };
        const b = request.body as RulesBody;
        const row = await repo.upsertRules(deps.db.kysely, {
          mch_no: mchNo, single_max_fen: b.singleMaxFen ? BigInt(b.singleMaxFen) : null, single_action: b.singleAction ?? 'refuse',
          daily_max_fen: b.dailyMaxFen ? BigInt(b.dailyMaxFen) : null, daily_action: b.dailyAction ?? 'refuse',
          velocity_max: b.velocityMax ?? null, velocity_window_s: b.velocityWindowS ?? 600, velocity_action: b.velocityAction ?? 'refuse',
          pattern_factor: b.patternFactor ?? null, pattern_samples: b.patternSamples ?? 50, pattern_action: b.patternAction ?? 'hold',
        });
        deps.rulesChanged();
        return rulesView(row);
      });

      scope.get('/v1/admin/risk/blocklist', {
        schema: { tags, security, summary: '黑名单 / blocklist', response: { 200: { type: 'object', properties: { entries: { type: 'array', items: blockSchema } } } } },
      }, async () => ({ entries: (await repo.listBlocks(deps.db.kysely, 5000)).map((b) => ({ kind: b.kind, value: b.value, reason: b.reason, createdAt: b.created_at.toISOString() })) }));

      scope.put('/v1/admin/risk/blocklist', {
        schema: {
          tags, security, summary: '加入黑名单 / block a payer IP, payer account (openid / buyer id) or merchant',
          body: { type: 'object', required: ['kind', 'value', 'reason'], additionalProperties: false, properties: { kind: KIND, value: ID_TEXT, reason: { ...ID_TEXT, maxLength: 500 } } },
          response: { 200: blockSchema, 400: errorSchema },
        },
      }, async (request) => {
        const b = request.body as { kind: repo.BlockKind; value: string; reason: string };
        await repo.addBlock(deps.db.kysely, b);
        deps.rulesChanged();
        return { kind: b.kind, value: b.value, reason: b.reason };
      });

      scope.delete('/v1/admin/risk/blocklist/:kind/:value', {
        schema: { tags, security, summary: '移出黑名单 / unblock', params: { type: 'object', properties: { kind: KIND, value: ID_TEXT } }, response: { 200: { type: 'object', properties: { removed: { type: 'boolean' } } }, 404: errorSchema } },
      }, async (request) => {
        const { kind, value } = request.params as { kind: repo.BlockKind; value: string };
        if (!(await repo.removeBlock(deps.db.kysely, kind, value))) throw riskErrors.blockNotFound(`黑名单中没有 ${kind} ${value} / not blocked`);
        deps.rulesChanged();
        return { removed: true };
      });
    });
  };
}
