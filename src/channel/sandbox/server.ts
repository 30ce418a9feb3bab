// The sandbox channel: a real, separate HTTP server that behaves like a payment
// channel (create, query, close, refund, transfer; signed both ways), with a payer
// page, scripted payer actions, asynchronous notifications with injectable faults,
// and daily statements in WeChat Pay, Alipay and UnionPay (ZM) formats. State lives in memory and,
// when a file is given, is saved there so statements survive a restart.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  payerPageToken, payerPageTokenValid, signBody, verifyBody, SIGNATURE_HEADER, type SbAsyncStatus, type SbNotification, type SbOrderStatus,
} from './protocol.ts';
import { alipayBill, unionpayZm, wechatBill, type StatementInput } from './statements.ts';
import { isValidDate } from '../../platform/time.ts';
import { escapeHtml, mobilePage } from '../../platform/html.ts';

export interface SandboxFaults {
  /** Delay before a notification is sent. */
  notifyDelayMs: number;
  /** Extra copies of each notification. */
  notifyDuplicates: number;
  /** Drop notifications (the order is still paid: polling or reconciliation must find it). */
  notifyDrop: boolean;
  /** Hold notifications for notifyDelayMs and send the batch in reverse order. */
  notifyReverse: boolean;
  /** The next N channel API calls answer 500. */
  api5xxNext: number;
  /** The next N channel API calls hang for apiTimeoutMs before answering 504. */
  apiTimeoutNext: number;
  apiTimeoutMs: number;
  /** Result of refunds and transfers, and how long they take. */
  refundResult: 'SUCCESS' | 'FAILED';
  transferResult: 'SUCCESS' | 'FAILED';
  asyncDelayMs: number;
}

export const DEFAULT_FAULTS: SandboxFaults = {
  notifyDelayMs: 0, notifyDuplicates: 0, notifyDrop: false, notifyReverse: false,
  api5xxNext: 0, apiTimeoutNext: 0, apiTimeoutMs: 3000,
  refundResult: 'SUCCESS', transferResult: 'SUCCESS', asyncDelayMs: 50,
};

interface Order {
  outTradeNo: string; tradeNo: string; amount: string; subject: string; wayCode: string; notifyUrl: string;
  status: SbOrderStatus; createdAt: string; successAt: string | null; payer: string | null; expireAt: string;
}
interface AsyncRecord {
  kind: 'refund' | 'transfer'; outNo: string; channelNo: string; amount: string; notifyUrl: string;
  status: SbAsyncStatus; createdAt: string; successAt: string | null; errCode: string | null; errMsg: string | null;
  outTradeNo?: string; accountNo?: string;
}
interface State {
  orders: Record<string, Order>;
  byTradeNo: Record<string, string>;
  refunds: Record<string, AsyncRecord>;
  transfers: Record<string, AsyncRecord>;
}

export interface SandboxOptions {
  key: string;
  /** Where the sandbox saves its state (JSON); null keeps it in memory only. */
  stateFile?: string | null;
  /** The sandbox's own public base URL (for pay pages), e.g. http://127.0.0.1:8081 */
  publicUrl: string;
  feeRate?: string;
  logLevel?: string;
  now?: () => Date;
}

const ORDERS_MAX = 2_000_000;
const REQUEST_DEFAULT_EXPIRE_S = 7200;

export interface Sandbox {
  app: FastifyInstance;
  faults: SandboxFaults;
  /** Payer actions for scripts and tests. */
  pay(outTradeNo: string, payer?: string): Promise<Order>;
  fail(outTradeNo: string): Promise<Order>;
  statementInput(billDate: string): StatementInput;
  flush(): Promise<void>;
}

export function createSandbox(options: SandboxOptions): Sandbox {
  const now = options.now ?? (() => new Date());
  const feeRate = options.feeRate ?? '0.006';
  const faults: SandboxFaults = { ...DEFAULT_FAULTS };
  const state: State = load(options.stateFile ?? null);
  const inflight = new Set<Promise<unknown>>();
  let held: Array<{ url: string; n: SbNotification }> = [];
  let saveTimer: NodeJS.Timeout | null = null;

  const app = Fastify({ logger: { level: options.logLevel ?? 'warn' }, bodyLimit: 1024 * 1024 });
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  function save() {
    if (!options.stateFile || saveTimer) return;
    saveTimer = setTimeout(() => {
      saveTimer = null;
      const tmp = `${options.stateFile}.tmp`;
      writeFileSync(tmp, JSON.stringify(state));
      renameSync(tmp, options.stateFile as string);
    }, 100);
    saveTimer.unref();
  }

  function track<T>(p: Promise<T>): Promise<T> {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    return p;
  }

  const id = (prefix: string) => `${prefix}${now().toISOString().slice(0, 10).replaceAll('-', '')}${randomBytes(8).toString('hex')}`;

  function reply(body: unknown, status = 200) {
    const text = JSON.stringify(body);
    return { status, text, signature: signBody(options.key, text) };
  }

  // Every API call: verify the caller's signature, apply API faults, sign the answer.
  async function api(request: { headers: Record<string, unknown>; body: unknown }, handle: (body: Record<string, unknown>) => { status?: number; body: unknown }) {
    const raw = typeof request.body === 'string' ? request.body : '';
    if (!verifyBody(options.key, raw, request.headers[SIGNATURE_HEADER] as string | undefined)) {
      return reply({ code: 'SIGN_ERROR', message: 'signature invalid' }, 401);
    }
    if (faults.api5xxNext > 0) {
      faults.api5xxNext -= 1;
      return reply({ code: 'SYSTEM_ERROR', message: 'injected 500' }, 500);
    }
    if (faults.apiTimeoutNext > 0) {
      faults.apiTimeoutNext -= 1;
      await new Promise((resolve) => setTimeout(resolve, faults.apiTimeoutMs));
      return reply({ code: 'TIMEOUT', message: 'injected timeout' }, 504);
    }
    let body: Record<string, unknown> = {};
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        return reply({ code: 'PARAM_ERROR', message: 'body is not JSON' }, 400);
      }
    }
    const result = handle(body);
    return reply(result.body, result.status ?? 200);
  }

  function route(method: 'GET' | 'POST', url: string, handle: (body: Record<string, unknown>, params: Record<string, string>) => { status?: number; body: unknown }) {
    app.route({
      method, url,
      handler: async (request, res) => {
        const r = await api({ headers: request.headers, body: method === 'GET' ? '' : request.body }, (b) => handle(b, request.params as Record<string, string>));
        return res.status(r.status).header(SIGNATURE_HEADER, r.signature).type('application/json').send(r.text);
      },
    });
  }

  function orderView(o: Order) {
    return {
      out_trade_no: o.outTradeNo, trade_no: o.tradeNo, amount: o.amount, status: o.status, way_code: o.wayCode,
      success_time: o.successAt, payer: o.payer, pay_url: `${options.publicUrl}/pay/${o.tradeNo}`, code_url: `${options.publicUrl}/pay/${o.tradeNo}`,
    };
  }
  function asyncView(r: AsyncRecord) {
    return { out_no: r.outNo, channel_no: r.channelNo, amount: r.amount, status: r.status, success_time: r.successAt, err_code: r.errCode, err_msg: r.errMsg };
  }

  function expireIfDue(o: Order) {
    if (o.status === 'NOTPAY' && Date.parse(o.expireAt) <= now().getTime()) {
      o.status = 'CLOSED';
      save();
    }
  }

  route('POST', '/v1/orders', (b) => {
    const outTradeNo = String(b.out_trade_no ?? '');
    const amount = String(b.amount ?? '');
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(outTradeNo) || !/^[1-9][0-9]{0,17}$/.test(amount)) {
      return { status: 400, body: { code: 'PARAM_ERROR', message: 'out_trade_no and a positive amount (fen) are required' } };
    }
    const existing = state.orders[outTradeNo];
    if (existing) {
      if (existing.amount !== amount) return { status: 400, body: { code: 'OUT_TRADE_NO_USED', message: 'out_trade_no already used with another amount' } };
      return { body: orderView(existing) };
    }
    if (Object.keys(state.orders).length >= ORDERS_MAX) return { status: 503, body: { code: 'FULL', message: 'sandbox is full' } };
    const expireS = Number(b.expire_s ?? REQUEST_DEFAULT_EXPIRE_S);
    const order: Order = {
      outTradeNo, tradeNo: id('42'), amount, subject: String(b.subject ?? ''), wayCode: String(b.way_code ?? 'WX_NATIVE'),
      notifyUrl: String(b.notify_url ?? ''), status: 'NOTPAY', createdAt: now().toISOString(), successAt: null, payer: null,
      expireAt: new Date(now().getTime() + Math.max(60, Math.min(expireS, 86400 * 3)) * 1000).toISOString(),
    };
    state.orders[outTradeNo] = order;
    state.byTradeNo[order.tradeNo] = outTradeNo;
    save();
    return { body: orderView(order) };
  });

  route('GET', '/v1/orders/:outTradeNo', (_b, p) => {
    const o = state.orders[p.outTradeNo];
    if (!o) return { status: 404, body: { code: 'ORDER_NOT_EXIST', message: 'no such order' } };
    expireIfDue(o);
    return { body: orderView(o) };
  });

  route('POST', '/v1/orders/:outTradeNo/close', (_b, p) => {
    const o = state.orders[p.outTradeNo];
    if (!o) return { status: 404, body: { code: 'ORDER_NOT_EXIST', message: 'no such order' } };
    if (o.status === 'NOTPAY') {
      o.status = 'CLOSED';
      save();
    }
    return { body: orderView(o) };
  });

  route('POST', '/v1/refunds', (b) => {
    const outNo = String(b.out_refund_no ?? '');
    const outTradeNo = String(b.out_trade_no ?? '');
    const amount = String(b.amount ?? '');
    const order = state.orders[outTradeNo];
    if (!order) return { status: 404, body: { code: 'ORDER_NOT_EXIST', message: 'no such order' } };
    if (!/^[1-9][0-9]{0,17}$/.test(amount)) return { status: 400, body: { code: 'PARAM_ERROR', message: 'amount must be positive fen' } };
    const existing = state.refunds[outNo];
    if (existing) return { body: asyncView(existing) };
    if (order.status !== 'SUCCESS') return { status: 400, body: { code: 'TRADE_STATE_ERROR', message: 'order is not paid' } };
    const already = Object.values(state.refunds).filter((r) => r.outTradeNo === outTradeNo && r.status !== 'FAILED')
      .reduce((sum, r) => sum + BigInt(r.amount), 0n);
    if (already + BigInt(amount) > BigInt(order.amount)) {
      return { status: 400, body: { code: 'REFUND_EXCEEDED', message: 'refund exceeds the paid amount' } };
    }
    const record: AsyncRecord = {
      kind: 'refund', outNo, channelNo: id('50'), amount, notifyUrl: String(b.notify_url ?? ''), status: 'PROCESSING',
      createdAt: now().toISOString(), successAt: null, errCode: null, errMsg: null, outTradeNo,
    };
    state.refunds[outNo] = record;
    save();
    settleLater(record, faults.refundResult);
    return { body: asyncView(record) };
  });

  route('GET', '/v1/refunds/:outNo', (_b, p) => {
    const r = state.refunds[p.outNo];
    if (!r) return { status: 404, body: { code: 'REFUND_NOT_EXIST', message: 'no such refund' } };
    return { body: asyncView(r) };
  });

  route('POST', '/v1/transfers', (b) => {
    const outNo = String(b.out_biz_no ?? '');
    const amount = String(b.amount ?? '');
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(outNo) || !/^[1-9][0-9]{0,17}$/.test(amount)) {
      return { status: 400, body: { code: 'PARAM_ERROR', message: 'out_biz_no and a positive amount (fen) are required' } };
    }
    const existing = state.transfers[outNo];
    if (existing) return { body: asyncView(existing) };
    const record: AsyncRecord = {
      kind: 'transfer', outNo, channelNo: id('60'), amount, notifyUrl: String(b.notify_url ?? ''), status: 'PROCESSING',
      createdAt: now().toISOString(), successAt: null, errCode: null, errMsg: null, accountNo: String(b.account_no ?? ''),
    };
    state.transfers[outNo] = record;
    save();
    settleLater(record, faults.transferResult);
    return { body: asyncView(record) };
  });

  route('GET', '/v1/transfers/:outNo', (_b, p) => {
    const r = state.transfers[p.outNo];
    if (!r) return { status: 404, body: { code: 'TRANSFER_NOT_EXIST', message: 'no such transfer' } };
    return { body: asyncView(r) };
  });

  function settleLater(record: AsyncRecord, result: 'SUCCESS' | 'FAILED') {
    const timer = setTimeout(() => {
      record.status = result;
      if (result === 'SUCCESS') record.successAt = now().toISOString();
      else {
        record.errCode = record.kind === 'refund' ? 'REFUND_FAILED' : 'ACCOUNT_ERROR';
        record.errMsg = record.kind === 'refund' ? '退款失败（沙箱注入）' : '收款账户异常（沙箱注入）';
      }
      save();
      notify(record.notifyUrl, {
        event_id: randomBytes(12).toString('hex'), kind: record.kind, out_no: record.outNo, channel_no: record.channelNo,
        status: result, amount: record.amount, success_time: record.successAt, payer: null,
      });
    }, faults.asyncDelayMs);
    timer.unref();
  }

  // --- notifications to the platform, with faults ------------------------------------
  function notify(url: string, n: SbNotification) {
    if (!url || faults.notifyDrop) return;
    const copies = 1 + faults.notifyDuplicates;
    if (faults.notifyReverse) {
      for (let i = 0; i < copies; i += 1) held.push({ url, n });
      const timer = setTimeout(() => {
        const batch = held.reverse();
        held = [];
        for (const h of batch) void track(deliver(h.url, h.n));
      }, Math.max(faults.notifyDelayMs, 50));
      timer.unref();
      return;
    }
    for (let i = 0; i < copies; i += 1) {
      void track(new Promise((resolve) => setTimeout(resolve, faults.notifyDelayMs)).then(() => deliver(url, n)));
    }
  }

  async function deliver(url: string, n: SbNotification): Promise<void> {
    const text = JSON.stringify(n);
    // Like a channel: retry a few times on anything but 200 + SUCCESS.
    for (let attempt = 0; attempt < 5; attempt += 1) {
      try {
        const res = await fetch(url, {
          method: 'POST', body: text, signal: AbortSignal.timeout(5000),
          headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signBody(options.key, text) },
        });
        const answer = await res.text();
        if (res.ok && answer.includes('SUCCESS')) return;
      } catch {
        // retry below
      }
      await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)));
    }
  }

  function payerAction(outTradeNo: string, action: 'pay' | 'fail' | 'cancel', payer?: string): Order {
    const o = state.orders[outTradeNo];
    if (!o) throw Object.assign(new Error(`订单不存在 / no sandbox order ${outTradeNo}`), { statusCode: 404 });
    expireIfDue(o);
    if (o.status !== 'NOTPAY') return o;
    if (action === 'pay') {
      o.status = 'SUCCESS';
      o.successAt = now().toISOString();
      o.payer = payer ?? `oSandbox${randomBytes(6).toString('hex')}`;
    } else if (action === 'fail') o.status = 'PAYERROR';
    else o.status = 'CLOSED';
    save();
    notify(o.notifyUrl, {
      event_id: randomBytes(12).toString('hex'), kind: 'pay', out_no: o.outTradeNo, channel_no: o.tradeNo,
      status: o.status as SbNotification['status'], amount: o.amount, success_time: o.successAt, payer: o.payer,
    });
    return o;
  }

  // Payer actions. Scripted ones (`custos sandbox pay`, tests) carry the sandbox's own
  // signature over a body naming the order and the action; the payer page's buttons
  // carry the token of the page the sandbox served. Anything else — a request some
  // server was tricked into sending — is refused.
  for (const action of ['pay', 'fail', 'cancel'] as const) {
    app.post(`/v1/sim/orders/:outTradeNo/${action}`, async (request, res) => {
      const { outTradeNo } = request.params as { outTradeNo: string };
      const raw = typeof request.body === 'string' ? request.body : '';
      let body: { out_trade_no?: unknown; action?: unknown; payer?: unknown } = {};
      try {
        body = raw === '' ? {} : JSON.parse(raw);
      } catch {
        // refused below
      }
      if (!verifyBody(options.key, raw, request.headers[SIGNATURE_HEADER] as string | undefined) || body.out_trade_no !== outTradeNo || body.action !== action) {
        return res.status(401).send({ code: 'SIGN_ERROR', message: '付款人操作需沙箱签名 / payer actions must be signed with the sandbox key over {"out_trade_no","action"}' });
      }
      return orderView(payerAction(outTradeNo, action, typeof body.payer === 'string' ? body.payer : undefined));
    });
    app.post(`/pay/:tradeNo/${action}`, async (request, res) => {
      const { tradeNo } = request.params as { tradeNo: string };
      const outTradeNo = state.byTradeNo[tradeNo];
      if (!outTradeNo) return res.status(404).type('text/html').send(page('订单不存在', '<p>没有这个订单 / no such order</p>'));
      const form = new URLSearchParams(typeof request.body === 'string' ? request.body : '');
      if (!payerPageTokenValid(options.key, tradeNo, form.get('token'))) {
        return res.status(403).type('text/html').send(page('请从收银页面操作', '<p>请在沙箱收银页面上点击按钮 / use the buttons of the sandbox pay page</p>'));
      }
      payerAction(outTradeNo, action);
      return res.redirect(`/pay/${tradeNo}`, 303);
    });
  }

  app.get('/pay/:tradeNo', async (request, res) => {
    const { tradeNo } = request.params as { tradeNo: string };
    const outTradeNo = state.byTradeNo[tradeNo];
    const o = outTradeNo ? state.orders[outTradeNo] : undefined;
    if (!o) return res.status(404).type('text/html').send(page('订单不存在', '<p>没有这个订单 / no such order</p>'));
    expireIfDue(o);
    const yuan = (BigInt(o.amount) / 100n).toString() + '.' + (BigInt(o.amount) % 100n).toString().padStart(2, '0');
    const status: Record<SbOrderStatus, string> = { NOTPAY: '待支付 / awaiting payment', SUCCESS: '支付成功 / paid', CLOSED: '已关闭 / closed', PAYERROR: '支付失败 / failed' };
    const token = `<input type="hidden" name="token" value="${payerPageToken(options.key, tradeNo)}">`;
    const buttons = o.status === 'NOTPAY'
      ? `<form method="post" action="/pay/${tradeNo}/pay">${token}<button class="pay" id="pay">确认支付 ¥${yuan} / Pay</button></form>
         <form method="post" action="/pay/${tradeNo}/fail">${token}<button id="fail">模拟失败 / Fail</button></form>
         <form method="post" action="/pay/${tradeNo}/cancel">${token}<button id="cancel">取消 / Cancel</button></form>`
      : '';
    return res.type('text/html').send(page('沙箱收银台 / Sandbox', `
      <p class="sub">沙箱支付渠道 · 不会扣真钱 / sandbox channel, no real money</p>
      <h1>¥${yuan}</h1><p>${escapeHtml(o.subject)}</p>
      <p>订单号 / order: ${escapeHtml(o.outTradeNo)}</p>
      <p id="status">状态 / status: ${status[o.status]}</p>${buttons}`));
  });

  app.get('/healthz', async () => ({ status: 'ok', channel: 'sandbox' }));

  app.get('/v1/sim/faults', async () => faults);
  app.put('/v1/sim/faults', async (request, res) => {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(String(request.body ?? '{}'));
    } catch {
      return res.status(400).send({ code: 'PARAM_ERROR', message: 'body is not JSON' });
    }
    for (const [k, v] of Object.entries(body)) {
      if (!(k in DEFAULT_FAULTS)) return res.status(400).send({ code: 'PARAM_ERROR', message: `unknown fault ${k}` });
      if (typeof v !== typeof (DEFAULT_FAULTS as unknown as Record<string, unknown>)[k]) {
        return res.status(400).send({ code: 'PARAM_ERROR', message: `fault ${k} must be a ${typeof (DEFAULT_FAULTS as unknown as Record<string, unknown>)[k]}` });
      }
    }
    Object.assign(faults, body);
    return faults;
  });
  app.post('/v1/sim/faults/reset', async () => Object.assign(faults, DEFAULT_FAULTS));

  function statementInput(billDate: string): StatementInput {
    const payments = Object.values(state.orders).filter((o) => o.status === 'SUCCESS' || Object.values(state.refunds).some((r) => r.outTradeNo === o.outTradeNo))
      .filter((o) => o.successAt !== null)
      .map((o) => ({
        outTradeNo: o.outTradeNo, tradeNo: o.tradeNo, amountFen: BigInt(o.amount), wayCode: o.wayCode, subject: o.subject,
        payer: o.payer, successAt: new Date(o.successAt as string), createdAt: new Date(o.createdAt),
      }));
    const refunds = Object.values(state.refunds).filter((r) => r.status === 'SUCCESS').map((r) => {
      const o = state.orders[r.outTradeNo as string];
      return {
        outRefundNo: r.outNo, refundNo: r.channelNo, outTradeNo: o.outTradeNo, tradeNo: o.tradeNo, amountFen: BigInt(r.amount),
        subject: o.subject, requestedAt: new Date(r.createdAt), successAt: new Date(r.successAt as string),
        wayCode: o.wayCode, payer: o.payer,
      };
    });
    return { billDate, feeRate, payments, refunds };
  }

  // Statements are signed like the API (a channel's bill download is authenticated).
  app.get('/v1/statements/:format', async (request, res) => {
    if (!verifyBody(options.key, '', request.headers[SIGNATURE_HEADER] as string | undefined)) {
      return res.status(401).send({ code: 'SIGN_ERROR', message: 'signature invalid' });
    }
    const { format } = request.params as { format: string };
    const q = request.query as { bill_date?: string; bill_type?: string };
    if (!q.bill_date || !isValidDate(q.bill_date)) return res.status(400).send({ code: 'PARAM_ERROR', message: 'bill_date must be YYYY-MM-DD' });
    const today = new Date(now().getTime() + 8 * 3600 * 1000).toISOString().slice(0, 10);
    if (q.bill_date >= today) return res.status(404).send({ code: 'BILL_NOT_READY', message: `账单未生成 / the bill for ${q.bill_date} is not ready yet` });
    const input = statementInput(q.bill_date);
    if (format === 'wechat') {
      const type = (q.bill_type ?? 'ALL').toUpperCase();
      if (type !== 'ALL' && type !== 'SUCCESS' && type !== 'REFUND') return res.status(400).send({ code: 'PARAM_ERROR', message: 'bill_type must be ALL, SUCCESS or REFUND' });
      return res.type('text/csv; charset=utf-8').send(wechatBill(input, type));
    }
    if (format === 'alipay') return res.type('application/zip').send(alipayBill(input, now()));
    if (format === 'unionpay') return res.type('application/zip').send(unionpayZm(input, undefined, now()));
    return res.status(404).send({ code: 'PARAM_ERROR', message: 'format must be wechat, alipay or unionpay' });
  });

  return {
    app,
    faults,
    pay: async (outTradeNo, payer) => payerAction(outTradeNo, 'pay', payer),
    fail: async (outTradeNo) => payerAction(outTradeNo, 'fail'),
    statementInput,
    async flush() {
      for (let i = 0; i < 50 && (inflight.size > 0 || held.length > 0); i += 1) {
        await Promise.allSettled([...inflight]);
        if (held.length > 0) await new Promise((resolve) => setTimeout(resolve, 60));
      }
    },
  };
}

function load(file: string | null): State {
  const empty: State = { orders: {}, byTradeNo: {}, refunds: {}, transfers: {} };
  if (!file) return empty;
  try {
    return { ...empty, ...JSON.parse(readFileSync(file, 'utf8')) };
  } catch {
    return empty;
  }
}

const page = (title: string, body: string) => mobilePage(title, body,
  'button{width:100%;padding:14px;margin:6px 0;font-size:16px;border-radius:8px;border:1px solid #ccc;background:#fff}' +
  'button.pay{background:#07c160;color:#fff;border:none}');
