// Admin API of the payment center (bearer token): merchants, routing, orders,
// notifications and their attempts, resend.
import type { FastifyInstance } from 'fastify';
import { badRequest, notFound } from '../platform/errors.ts';
import type { Database } from '../platform/db.ts';
import * as repo from './payment.repo.ts';
import type { MerchantService } from './merchant.service.ts';
import type { NotifyService } from './notify.service.ts';
import { payOrderParams } from './order.service.ts';

const security = [{ bearer: [] }];
const tags = ['payment admin'];
const NOTIFY_STATE = ['pending', 'delivered', 'failed'];

const json = (value: unknown) => JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));

export function paymentAdminRoutes(deps: { db: Database; merchants: MerchantService; notify: NotifyService; guard: (req: never) => Promise<void> }) {
  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      scope.addHook('onRequest', deps.guard as never);

      scope.post('/v1/admin/merchants', {
        schema: {
          tags, security, summary: '开通商户 / create a merchant with its first app',
          body: {
            type: 'object', required: ['name'], additionalProperties: false,
            properties: { name: { type: 'string' }, notifyUrl: { type: 'string' }, signTypes: { type: 'array', items: { type: 'string' } }, ipAllowlist: { type: 'array', items: { type: 'string' }, maxItems: 50 } },
          },
        },
      }, async (request, reply) => {
        const body = request.body as { name: string; notifyUrl?: string; signTypes?: string[]; ipAllowlist?: string[] };
        return reply.status(201).send(await deps.merchants.createMerchant(body));
      });

      scope.get('/v1/admin/merchants', { schema: { tags, security, summary: '商户列表 / merchants' } }, async () => {
        const merchants = await repo.listMerchants(deps.db.kysely, 500);
        return { merchants: json(merchants) };
      });

      scope.put('/v1/admin/merchants/:mchNo/routes/:wayCode', {
        schema: {
          tags, security, summary: '支付路由 / which channel serves a way (wayCode * = default), with a fallback',
          body: { type: 'object', required: ['ifCode'], properties: { ifCode: { type: 'string' }, fallbackIfCode: { type: 'string' } } },
        },
      }, async (request) => {
        const { mchNo, wayCode } = request.params as { mchNo: string; wayCode: string };
        const body = request.body as { ifCode: string; fallbackIfCode?: string };
        await deps.merchants.setRoute(mchNo, wayCode, body.ifCode, body.fallbackIfCode ?? null);
        return { mchNo, wayCode, ifCode: body.ifCode, fallbackIfCode: body.fallbackIfCode ?? null };
      });

      scope.get('/v1/admin/pay-orders/:payOrderId', { schema: { tags, security, summary: '支付订单 / a pay order' } }, async (request) => {
        const { payOrderId } = request.params as { payOrderId: string };
        const order = await repo.findPayOrder(deps.db.kysely, payOrderId);
        if (!order) throw notFound('ORDER_NOT_FOUND', `订单不存在 / no order ${payOrderId}`);
        // the admin API keeps its own convention: amounts as strings of fen
        return json({ ...payOrderParams(order), amount: order.amount.toString(), refundAmount: order.refund_amount.toString(), recoveredBy: order.recovered_by, closeReason: order.close_reason, refundTimes: order.refund_times });
      });

      scope.get('/v1/admin/notifications', {
        schema: { tags, security, summary: '商户通知 / notifications to merchants', querystring: { type: 'object', properties: { kind: { type: 'string' }, refId: { type: 'string' }, state: { type: 'string' } } } },
      }, async (request) => {
        const q = request.query as { kind?: string; refId?: string; state?: string };
        const state = q.state === undefined ? undefined : NOTIFY_STATE.indexOf(q.state);
        if (state === -1) throw badRequest('INVALID_QUERY', `state must be one of ${NOTIFY_STATE.join(', ')}`);
        const rows = await repo.listNotifications(deps.db.kysely, { kind: q.kind, refId: q.refId, state }, 200);
        return { notifications: rows.map((n) => json({ ...n, state: NOTIFY_STATE[n.state] })) };
      });

      scope.get('/v1/admin/notifications/:id', { schema: { tags, security, summary: '通知详情与每次尝试 / a notification and its attempts' } }, async (request) => {
        const id = parseId((request.params as { id: string }).id);
        const n = await repo.findNotification(deps.db.kysely, id);
        if (!n) throw notFound('NOTIFICATION_NOT_FOUND', `通知不存在 / no notification ${id}`);
        return json({ ...n, state: NOTIFY_STATE[n.state], attempts_log: await repo.listAttempts(deps.db.kysely, id) });
      });

      scope.post('/v1/admin/notifications/:id/resend', { schema: { tags, security, summary: '重发通知 / resend a notification' } }, async (request) => {
        const id = parseId((request.params as { id: string }).id);
        const n = await deps.notify.resend(id);
        return json({ id: n.id, state: NOTIFY_STATE[n.state] });
      });
    });
  };
}

function parseId(text: string): bigint {
  if (!/^[0-9]{1,18}$/.test(text)) throw badRequest('INVALID_ID', 'notification id must be a number');
  return BigInt(text);
}
