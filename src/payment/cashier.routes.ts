// The H5 cashier (收银台) for wayCode=QR_CASHIER: a mobile page that shows the order
// and lets the payer choose how to pay; the choice creates the order at the channel
// and sends the payer to the channel's pay page. Chinese first.
import type { FastifyInstance } from 'fastify';
import { AppError } from '../platform/errors.ts';
import { fenToYuan } from '../platform/money.ts';
import { escapeHtml, mobilePage } from '../platform/html.ts';
import * as repo from './payment.repo.ts';
import type { Database } from '../platform/db.ts';
import type { OrderService } from './order.service.ts';
import { CASHIER_WAYS, PAY_STATE } from './types.ts';

const STATE_TEXT: Record<number, string> = {
  0: '待支付 / awaiting payment', 1: '支付中 / paying', 2: '支付成功 / paid', 3: '支付失败 / failed',
  4: '已撤销 / cancelled', 5: '已退款 / refunded', 6: '已关闭 / closed',
};

export function cashierRoutes(deps: { db: Database; orders: OrderService }) {
  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      });

      scope.get('/cashier/:payOrderId', { schema: { hide: true } }, async (request, reply) => {
        const { payOrderId } = request.params as { payOrderId: string };
        const order = /^[A-Za-z0-9]{1,64}$/.test(payOrderId) ? await repo.findPayOrder(deps.db.kysely, payOrderId) : null;
        if (!order) return reply.status(404).type('text/html').send(page('订单不存在', '<p class="err">订单不存在或链接有误 / no such order</p>'));
        const open = order.state === PAY_STATE.created && order.expired_at.getTime() > Date.now();
        const ways = open
          ? `<form method="post" action="/cashier/${order.pay_order_id}/pay">${CASHIER_WAYS.map((w, i) =>
            `<label class="way"><input type="radio" name="wayCode" value="${w.wayCode}"${i === 0 ? ' checked' : ''}> ${w.label}</label>`).join('')}
             <button class="pay" id="pay">立即支付 ¥${fenToYuan(order.amount)} / Pay now</button></form>`
          : order.state === PAY_STATE.paying && order.pay_data
            ? `<p><a class="button" href="${escapeHtml(order.pay_data)}">继续支付 / continue to pay</a></p>` : '';
        return reply.type('text/html').send(page('收银台 / Cashier', `
          <p class="sub">Custos 收银台 · ${escapeHtml(order.mch_no)}</p>
          <h1>¥${fenToYuan(order.amount)}</h1>
          <p>${escapeHtml(order.subject)}</p>
          <p class="muted">${escapeHtml(order.body)}</p>
          <p>订单号 / order: ${escapeHtml(order.mch_order_no)}</p>
          <p id="state">状态 / status: ${STATE_TEXT[order.state] ?? order.state}</p>
          ${ways}`));
      });

      scope.post('/cashier/:payOrderId/pay', { schema: { hide: true } }, async (request, reply) => {
        const { payOrderId } = request.params as { payOrderId: string };
        const wayCode = String((request.body as Record<string, unknown> | undefined)?.wayCode ?? '');
        if (!CASHIER_WAYS.some((w) => w.wayCode === wayCode)) {
          return reply.status(400).type('text/html').send(page('请选择支付方式', '<p class="err">请选择支付方式 / choose a way to pay</p>'));
        }
        try {
          const order = await deps.orders.cashierPay(payOrderId, wayCode);
          if (order.pay_data && order.state === PAY_STATE.paying) return reply.redirect(order.pay_data, 303);
          return reply.redirect(`/cashier/${payOrderId}`, 303);
        } catch (error) {
          if (error instanceof AppError) return reply.status(error.status).type('text/html').send(page('无法支付', `<p class="err">${escapeHtml(error.message)}</p>`));
          throw error;
        }
      });
    });
  };
}

const page = (title: string, body: string) => mobilePage(title, body,
  '.way{display:block;padding:14px;border:1px solid #ddd;border-radius:8px;margin:8px 0}' +
  'button,.button{display:block;width:100%;box-sizing:border-box;text-align:center;padding:14px;margin:12px 0;font-size:16px;border-radius:8px;border:none;background:#1677ff;color:#fff;text-decoration:none}');
