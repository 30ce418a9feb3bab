// Where channels call us: /api/channel/notify/:ifCode. The notification is verified
// by the channel's adapter, recorded once by its event id, then applied through the
// same idempotent paths as polling: twice, late or out of order changes nothing twice.
import type { FastifyInstance } from 'fastify';
import { ChannelSignatureInvalid } from '../channel/contract.ts';
import type { Database } from '../platform/db.ts';
import * as repo from './payment.repo.ts';
import type { Channels } from './channels.ts';
import type { OrderService } from './order.service.ts';
import type { RefundService } from './refund.service.ts';
import type { TransferService } from './transfer.service.ts';

export interface ChannelRouteDeps {
  db: Database;
  channels: Channels;
  orders: OrderService;
  refunds: RefundService;
  transfers: TransferService;
}

export function channelRoutes(deps: ChannelRouteDeps) {
  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      const asText = (_req: unknown, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => done(null, body.toString());
      scope.addContentTypeParser('application/json', { parseAs: 'string' }, asText);
      scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, asText);
      scope.addContentTypeParser('text/xml', { parseAs: 'string' }, asText);

      scope.post('/api/channel/notify/:ifCode', { schema: { hide: true } }, async (request, reply) => {
        const { ifCode } = request.params as { ifCode: string };
        const adapter = deps.channels.get(ifCode);
        if (!adapter) return reply.status(404).send({ code: 'CHANNEL_NOT_FOUND', message: `unknown channel ${ifCode}`, requestId: request.id });
        const raw = typeof request.body === 'string' ? request.body : '';
        let n;
        try {
          n = adapter.parseNotification(request.headers, raw);
        } catch (error) {
          if (error instanceof ChannelSignatureInvalid || error instanceof SyntaxError) {
            request.log.warn({ ifCode }, 'channel notification refused: bad signature or body');
            return reply.status(401).send({ code: 'SIGN_INVALID', message: 'notification signature invalid', requestId: request.id });
          }
          throw error;
        }
        await repo.recordChannelEvent(deps.db.kysely, { if_code: ifCode, event_id: n.eventId, kind: n.kind, ref_id: n.refId, payload: raw });
        // Applied even when seen before: applying is idempotent, and a first attempt may have failed halfway.
        if (n.kind === 'pay') {
          const order = await repo.findPayOrder(deps.db.kysely, n.refId);
          if (order) {
            await deps.orders.applyChannelState(order, { status: n.status === 'success' ? 'success' : n.status, channelOrderNo: n.channelNo, amountFen: n.amountFen, successAt: n.successAt, channelUser: n.channelUser }, 'notify');
          } else request.log.warn({ ifCode, refId: n.refId }, 'notification for an unknown order (reconciliation will report it)');
        } else if (n.kind === 'refund') {
          const status = n.status === 'success' ? 'success' : 'failed';
          if (await repo.findRefund(deps.db.kysely, n.refId)) {
            await deps.refunds.applyChannelState(n.refId, { status, channelNo: n.channelNo, amountFen: n.amountFen, successAt: n.successAt, errCode: status === 'failed' ? 'REFUND_FAILED' : null, errMsg: null });
          }
        } else if (await repo.findTransferOrder(deps.db.kysely, n.refId)) {
          const status = n.status === 'success' ? 'success' : 'failed';
          await deps.transfers.applyChannelState(n.refId, { status, channelNo: n.channelNo, amountFen: n.amountFen, successAt: n.successAt, errCode: status === 'failed' ? 'TRANSFER_FAILED' : null, errMsg: null });
        }
        const ack = adapter.notificationAck();
        return reply.type(ack.contentType).send(ack.body);
      });
    });
  };
}
