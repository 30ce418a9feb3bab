// Where channels call us: /api/channel/notify/:ifCode. The notification is verified
// by the channel's adapter and recorded once by its event id — and then used only as
// a trigger: the channel is asked about the record (confirmNotification) and its
// answer is applied through the same idempotent paths as polling. A notification
// claiming success while the channel says otherwise changes nothing; twice, late or
// out of order changes nothing twice.
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { ChannelSignatureInvalid, ChannelUnavailable, confirmNotification, type ChannelAdapter, type ChannelNotification } from '../channel/contract.ts';
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
        let n: ChannelNotification;
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
        try {
          await confirmAndApply(deps, adapter, n, request.log);
        } catch (error) {
          if (!(error instanceof ChannelUnavailable)) throw error;
          // Not acknowledged: the channel sends it again, and polling asks meanwhile.
          request.log.warn({ ifCode, refId: n.refId }, 'channel notification not confirmed yet: the channel did not answer the query');
          return reply.status(503).send({ code: 'CHANNEL_UNAVAILABLE', message: '渠道查询暂不可用，请重发 / could not confirm with the channel; send again', requestId: request.id });
        }
        const ack = adapter.notificationAck();
        return reply.type(ack.contentType).send(ack.body);
      });
    });
  };
}

/** Asks the record's own channel about it and applies that answer (never the notification's claim). */
async function confirmAndApply(deps: ChannelRouteDeps, notified: ChannelAdapter, n: ChannelNotification, log: FastifyBaseLogger): Promise<void> {
  const channelOf = (ifCode: string | null) => (ifCode ? deps.channels.get(ifCode) : undefined) ?? notified;
  const unconfirmed = (status: string) => {
    if (status !== n.claimed.status) log.warn({ ifCode: notified.ifCode, eventId: n.eventId, kind: n.kind, refId: n.refId, claimed: n.claimed.status, channel: status }, 'channel notification not confirmed by the channel: its query says otherwise');
  };
  if (n.kind === 'pay') {
    const order = await repo.findPayOrder(deps.db.kysely, n.refId);
    if (!order) {
      log.warn({ ifCode: notified.ifCode, refId: n.refId }, 'notification for an unknown order (reconciliation will report it)');
      return;
    }
    const confirmed = await confirmNotification(channelOf(order.if_code), n);
    if (confirmed.kind !== 'pay') return;
    unconfirmed(confirmed.state.status);
    if (confirmed.state.status !== 'not_found') await deps.orders.applyChannelState(order, confirmed.state, 'notify');
    return;
  }
  if (n.kind === 'refund') {
    const refund = await repo.findRefund(deps.db.kysely, n.refId);
    if (!refund) return;
    const confirmed = await confirmNotification(channelOf(refund.if_code), n);
    if (confirmed.kind !== 'refund') return;
    unconfirmed(confirmed.state.status);
    if (confirmed.state.status !== 'not_found') await deps.refunds.applyChannelState(n.refId, confirmed.state);
    return;
  }
  const transfer = await repo.findTransferOrder(deps.db.kysely, n.refId);
  if (!transfer) return;
  const confirmed = await confirmNotification(channelOf(transfer.if_code), n);
  if (confirmed.kind !== 'transfer') return;
  unconfirmed(confirmed.state.status);
  if (confirmed.state.status !== 'not_found') await deps.transfers.applyChannelState(n.refId, confirmed.state);
}
