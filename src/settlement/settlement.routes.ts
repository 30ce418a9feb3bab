// Settlement's admin API (bearer token) and the bank channel's payout notifications.
// Thin: validate the shape, call the service, shape the answer.
import type { FastifyInstance } from 'fastify';
import { ChannelSignatureInvalid, ChannelUnavailable, confirmNotification, type ChannelAdapter } from '../channel/contract.ts';
import { transact, type Database } from '../platform/db.ts';
import { settleErrors } from './settlement.errors.ts';
import type { SettlementService, PartyInput } from './settlement.service.ts';
import { statementCsv, statementXlsx } from './statement.ts';
import * as repo from './settlement.repo.ts';
import { isValidDate } from '../platform/time.ts';

const security = [{ bearer: [] }];
const tags = ['settlement 清结算'];
const json = (value: unknown) => JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
const LIST_MAX = 500;

export function settlementRoutes(deps: { db: Database; settlement: SettlementService; adapters: () => ChannelAdapter[]; guard: (req: never) => Promise<void> }) {
  const { settlement: s, db } = deps;
  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      scope.addHook('onRequest', deps.guard as never);

      scope.put('/v1/admin/settlement/merchants/:mchNo/fee-rules', {
        schema: {
          tags, security, summary: '计费规则 / set a fee rule for a merchant (app, wayCode, category; * = any)',
          body: { type: 'object', required: ['rule'], additionalProperties: false, properties: { appId: { type: 'string' }, wayCode: { type: 'string' }, category: { type: 'string' }, rule: { type: 'object' } } },
        },
      }, async (request) => {
        const { mchNo } = request.params as { mchNo: string };
        return s.setFeeRule(mchNo, request.body as { appId?: string; wayCode?: string; category?: string; rule: unknown });
      });

      scope.put('/v1/admin/settlement/channels/:ifCode/cost-rule', {
        schema: { tags, security, summary: '渠道成本 / the channel cost rule of a channel', body: { type: 'object', required: ['rule'], additionalProperties: false, properties: { rule: { type: 'object' } } } },
      }, async (request) => {
        const { ifCode } = request.params as { ifCode: string };
        return s.setChannelCost(ifCode, (request.body as { rule: unknown }).rule);
      });

      scope.put('/v1/admin/settlement/merchants/:mchNo/party', {
        schema: {
          tags, security, summary: '结算设置 / a merchant\'s settlement (or, with bureau, its utility collections): cycle, minimum, confirmation, bank account',
          body: {
            type: 'object', additionalProperties: false,
            properties: {
              bureau: { type: 'string' }, name: { type: 'string' }, cycle: { type: 'string' }, minPayoutFen: { anyOf: [{ type: 'string' }, { type: 'integer' }] }, confirm: { type: 'string' },
              ifCode: { type: 'string' }, accountNo: { type: 'string' }, accountName: { type: 'string' }, bankName: { type: 'string' },
            },
          },
        },
      }, async (request) => {
        const { mchNo } = request.params as { mchNo: string };
        return json(await s.configureParty(mchNo, request.body as PartyInput));
      });

      scope.get('/v1/admin/settlement/merchants/:mchNo', { schema: { tags, security, summary: '商户结算概览 / parties, fee rules and holds of a merchant' } }, async (request) => {
        const { mchNo } = request.params as { mchNo: string };
        await s.requireMerchant(mchNo);
        const parties = await repo.listParties(db.kysely, mchNo);
        const rules = await repo.listFeeRules(db.kysely, mchNo);
        const holds = (await Promise.all(parties.map((p) => repo.listHolds(db.kysely, p.party_id, 100)))).flat();
        return json({ mchNo, parties, feeRules: rules.map((r) => ({ ...r, rule: JSON.parse(r.rule) })), holds });
      });

      scope.post('/v1/admin/settlement/runs', {
        schema: {
          tags, security, summary: '结算 / build (or resume) the settlement batch of a date and send its payouts',
          body: { type: 'object', required: ['date'], additionalProperties: false, properties: { date: { type: 'string' }, pay: { type: 'boolean' } } },
        },
      }, async (request) => {
        const body = request.body as { date: string; pay?: boolean };
        return json(body.pay === false ? await s.run(body.date) : await s.runAndPay(body.date));
      });

      scope.get('/v1/admin/settlement/batches/:date', { schema: { tags, security, summary: '结算批次 / a batch and its settlements' } }, async (request) => {
        const { date } = request.params as { date: string };
        if (!isValidDate(date)) throw settleErrors.dateInvalid(`日期须为 YYYY-MM-DD / the date must be YYYY-MM-DD, got ${JSON.stringify(date.slice(0, 40))}`);
        const batch = await repo.findBatch(db.kysely, date);
        if (!batch) throw settleErrors.batchNotFound(`该日无结算批次 / no settlement batch for ${date}`);
        return json({ batch, settlements: await repo.listSettlements(db.kysely, { batchId: batch.batch_id }, LIST_MAX) });
      });

      scope.get('/v1/admin/settlement/parties/:partyId/settlements', { schema: { tags, security, summary: '结算记录 / settlements and payouts of a party' } }, async (request) => {
        const { partyId } = request.params as { partyId: string };
        return json({ settlements: await repo.listSettlements(db.kysely, { partyId }, LIST_MAX), payouts: await repo.listPayouts(db.kysely, partyId, LIST_MAX) });
      });

      scope.post('/v1/admin/settlement/settlements/:id/confirm', { schema: { tags, security, summary: '确认结算 / confirm a settlement that waits for an operator' } }, async (request) => {
        const { id } = request.params as { id: string };
        const payout = await s.confirm(id);
        const sent = await s.dispatchPayouts(50);
        return json({ payout, dispatch: sent });
      });

      scope.post('/v1/admin/settlement/payouts/dispatch', { schema: { tags, security, summary: '出款 / send created payouts and ask the bank about sent ones' } }, async () => {
        const sent = await s.dispatchPayouts();
        const settled = await s.pollPayouts(200, 0); // every open payout now, due or not
        return { ...sent, settled };
      });

      scope.post('/v1/admin/settlement/holds', {
        schema: {
          tags, security, summary: '风险冻结 / keep part of a merchant\'s balance out of settlement',
          body: { type: 'object', required: ['ref', 'mchNo', 'amountFen'], additionalProperties: false, properties: { ref: { type: 'string' }, mchNo: { type: 'string' }, amountFen: { anyOf: [{ type: 'string' }, { type: 'integer' }] }, note: { type: 'string' } } },
        },
      }, async (request, reply) => {
        const b = request.body as { ref: string; mchNo: string; amountFen: string | number; note?: string };
        if (!/^[0-9]{1,15}$/.test(String(b.amountFen))) throw settleErrors.invalidParam('amountFen must be a whole number of fen');
        await s.requireMerchant(b.mchNo);
        const hold = await transact(db, (tx) => s.holds.place(tx, { ref: b.ref, mchNo: b.mchNo, amountFen: BigInt(String(b.amountFen)), reason: 'risk', note: b.note ?? null }));
        return reply.status(201).send(json(hold));
      });

      scope.delete('/v1/admin/settlement/holds/:ref', { schema: { tags, security, summary: '解冻 / release a hold (idempotent)' } }, async (request) => {
        const { ref } = request.params as { ref: string };
        const found = await repo.findHold(db.kysely, ref);
        if (!found) throw settleErrors.holdNotFound(`冻结不存在 / no hold ${ref}`);
        await transact(db, (tx) => s.holds.release(tx, ref));
        return json(await repo.findHold(db.kysely, ref));
      });

      scope.get('/v1/admin/settlement/statements/:partyId', {
        schema: { tags, security, summary: '结算对账单 / a party\'s statement for a period: json, csv or xlsx', querystring: { type: 'object', required: ['from', 'to'], properties: { from: { type: 'string' }, to: { type: 'string' }, format: { type: 'string' } } } },
      }, async (request, reply) => {
        const { partyId } = request.params as { partyId: string };
        const q = request.query as { from: string; to: string; format?: string };
        const format = q.format ?? 'json';
        if (!['json', 'csv', 'xlsx'].includes(format)) throw settleErrors.invalidParam('format must be json, csv or xlsx');
        const st = await s.statement(partyId, q.from, q.to);
        const name = `statement-${partyId.replaceAll(':', '_')}-${q.from}-${q.to}`;
        if (format === 'csv') return reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}.csv"`).send(statementCsv(st));
        if (format === 'xlsx') {
          return reply.type('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet').header('content-disposition', `attachment; filename="${name}.xlsx"`).send(await statementXlsx(st));
        }
        return json(st);
      });

      scope.put('/v1/admin/settlement/calendar', {
        schema: {
          tags, security, summary: '节假日调整 / calendar overrides (announcements the package does not have yet)',
          body: { type: 'object', required: ['days'], additionalProperties: false, properties: { days: { type: 'array', maxItems: 400, items: { type: 'object', required: ['day', 'kind', 'note'], properties: { day: { type: 'string' }, kind: { type: 'string' }, note: { type: 'string' } } } } } },
        },
      }, async (request) => {
        const { days } = request.body as { days: Array<{ day: string; kind: string; note: string }> };
        await s.setCalendarOverrides(days);
        return { overrides: await repo.listOverrides(db.kysely) };
      });

      scope.get('/v1/admin/settlement/calendar/:date', { schema: { tags, security, summary: '工作日查询 / is a date a business day, and T+1 after it' } }, async (request) => {
        const { date } = request.params as { date: string };
        if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || Number.isNaN(Date.parse(date))) throw settleErrors.dateInvalid('date must be YYYY-MM-DD');
        const cal = s.calendar();
        return { date, businessDay: cal.isBusinessDay(date), nextBusinessDay: cal.addBusinessDays(date, 1) };
      });

      scope.post('/v1/admin/settlement/parties/:partyId/release', {
        schema: { tags, security, summary: '手动结算放款 / make a manual-cycle party\'s entries available on a date', body: { type: 'object', required: ['date'], properties: { date: { type: 'string' } } } },
      }, async (request) => {
        const { partyId } = request.params as { partyId: string };
        return { released: await s.releaseManual(partyId, (request.body as { date: string }).date) };
      });
    });

    // The bank channel's payout results (signed by the channel, verified by its adapter).
    app.register(async (scope) => {
      scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_req: unknown, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => done(null, body.toString()));
      scope.post('/api/settlement/notify/:ifCode', { schema: { hide: true } }, async (request, reply) => {
        const { ifCode } = request.params as { ifCode: string };
        const adapter = deps.adapters().find((a) => a.ifCode === ifCode);
        if (!adapter) return reply.status(404).send({ code: 'CHANNEL_NOT_FOUND', message: `unknown channel ${ifCode}`, requestId: request.id });
        let n;
        try {
          n = adapter.parseNotification(request.headers, typeof request.body === 'string' ? request.body : '');
        } catch (error) {
          if (error instanceof ChannelSignatureInvalid || error instanceof SyntaxError) return reply.status(401).send({ code: 'SIGN_INVALID', message: 'notification signature invalid', requestId: request.id });
          throw error;
        }
        // Only a trigger: the bank is asked about the payout, and its answer is applied.
        const payout = n.kind === 'transfer' ? await repo.findPayout(db.kysely, n.refId) : null;
        if (payout) {
          let confirmed;
          try {
            confirmed = await confirmNotification(deps.adapters().find((a) => a.ifCode === payout.if_code) ?? adapter, n);
          } catch (error) {
            if (!(error instanceof ChannelUnavailable)) throw error;
            return reply.status(503).send({ code: 'CHANNEL_UNAVAILABLE', message: '渠道查询暂不可用，请重发 / could not confirm with the channel; send again', requestId: request.id });
          }
          if (confirmed.kind === 'transfer' && confirmed.state.status !== 'not_found') await s.applyPayoutState(n.refId, confirmed.state);
        }
        const ack = adapter.notificationAck();
        return reply.type(ack.contentType).send(ack.body);
      });
    });
  };
}
