// Notifications to merchants (回调). Written in the same transaction as the state
// change (a row in pay_notifications plus a job on the queue); delivered by a worker
// that POSTs the signed form body and counts only the answer `success`; retried on a
// schedule of about 24 hours (WeChat Pay's), then marked failed. Every attempt is
// recorded; an operator can resend. A sweeper re-enqueues any notification whose job
// was lost, so none is forgotten. Delivery goes through the outbound client: a URL
// whose host is (or resolves, at connect time, to) a private, loopback or otherwise
// non-public address is refused, and the attempt is recorded with the reason.
import { transact, type Database, type Tx } from '../platform/db.ts';
import type { Jobs } from '../platform/jobs.ts';
import { notFound } from '../platform/errors.ts';
import * as repo from './payment.repo.ts';
import { sign, type SignType } from './sign.ts';
import type { MerchantService } from './merchant.service.ts';
import { OutboundRefused, type Outbound } from '../platform/outbound.ts';

export const NOTIFY_QUEUE = 'payment-notify';
/** Seconds before each attempt after the first: 15 s … 6 h, about 24 h in all. */
export const WECHAT_SCHEDULE_S = [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600];
const RESPONSE_EXCERPT_MAX = 200;
const RESPONSE_BYTES_MAX = 4096;
const SWEEP_LIMIT = 500;

export interface NotifyOptions {
  db: Database;
  jobs: Jobs;
  merchants: MerchantService;
  outbound: Outbound;
  scheduleS?: number[];
  timeoutMs?: number;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

export type NotifyService = ReturnType<typeof createNotifyService>;

export function createNotifyService(options: NotifyOptions) {
  const { db, jobs, merchants } = options;
  const schedule = options.scheduleS ?? WECHAT_SCHEDULE_S;
  const timeoutMs = options.timeoutMs ?? 10_000;

  /** Builds the signed form body and queues it, inside the caller's transaction. */
  async function enqueue(tx: Tx, n: { kind: 'pay_order' | 'refund_order' | 'transfer_order'; refId: string; mchNo: string; appId: string; notifyUrl: string | null; params: Record<string, unknown> }): Promise<void> {
    const app = await merchants.getApp(n.appId, tx);
    const url = n.notifyUrl || app?.notifyUrl;
    if (!app || !url) return; // nobody to tell: the merchant queries instead
    const signType: SignType = app.signTypes.includes('MD5') ? 'MD5' : app.signTypes[0];
    const params: Record<string, unknown> = { ...n.params, reqTime: String(Date.now()) };
    if (signType !== 'MD5') params.signType = signType;
    params.sign = sign(params, app.secret, signType);
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') body.set(k, String(v));
    const id = await repo.insertNotification(tx, { kind: n.kind, ref_id: n.refId, mch_no: n.mchNo, app_id: n.appId, notify_url: url, body: body.toString() });
    await jobs.send(NOTIFY_QUEUE, { id: id.toString() }, { singletonKey: `notify:${id}:0` }, tx);
  }

  /** One delivery attempt; schedules the next or ends the notification. */
  async function deliver(id: bigint): Promise<void> {
    const n = await repo.findNotification(db.kysely, id);
    if (!n || n.state !== 0) return;
    const started = Date.now();
    let status: number | null = null;
    let answer = '';
    let error: string | null = null;
    try {
      // No redirects followed: a 3xx is simply not "success".
      const res = await options.outbound.request({
        method: 'POST', url: n.notify_url, body: n.body, timeoutMs, maxResponseBytes: RESPONSE_BYTES_MAX,
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8', 'user-agent': 'Custos-Notify/1.0' },
      });
      status = res.status;
      answer = res.body.toString('utf8');
    } catch (e) {
      if (e instanceof OutboundRefused) error = `refused: ${e.reason}`;
      else error = (e as Error).name === 'TimeoutError' ? `timeout after ${timeoutMs} ms` : (e as Error).message;
    }
    const delivered = status === 200 && answer.trim().toLowerCase() === 'success';
    await transact(db, async (tx) => {
      const current = await repo.findNotification(tx, id, true);
      if (!current || current.state !== 0) return;
      const attempt = current.attempts + 1;
      await repo.insertAttempt(tx, {
        notification_id: id, attempt, http_status: status, response_excerpt: answer.slice(0, RESPONSE_EXCERPT_MAX) || null,
        error: error ?? (delivered ? null : `merchant did not answer "success"`), duration_ms: Date.now() - started,
      });
      if (delivered) {
        await repo.updateNotification(tx, id, { state: 1, attempts: attempt, next_at: null, last_status: status, last_error: null });
        return;
      }
      const delayS = schedule[attempt - 1];
      if (delayS === undefined) {
        await repo.updateNotification(tx, id, { state: 2, attempts: attempt, next_at: null, last_status: status, last_error: error ?? answer.slice(0, RESPONSE_EXCERPT_MAX) });
        options.log?.('notification gave up', { id: id.toString(), attempts: attempt });
        return;
      }
      await repo.updateNotification(tx, id, { attempts: attempt, next_at: new Date(Date.now() + delayS * 1000), last_status: status, last_error: error ?? answer.slice(0, RESPONSE_EXCERPT_MAX) });
      await jobs.send(NOTIFY_QUEUE, { id: id.toString() }, { startAfterSeconds: delayS, singletonKey: `notify:${id}:${attempt}` }, tx);
    });
  }

  /** Operator resend: back to pending, one attempt now (the schedule starts again). */
  async function resend(id: bigint): Promise<repo.NotificationRow> {
    return transact(db, async (tx) => {
      const n = await repo.findNotification(tx, id, true);
      if (!n) throw notFound('NOTIFICATION_NOT_FOUND', `通知不存在 / no notification ${id}`);
      await repo.updateNotification(tx, id, { state: 0, attempts: 0, next_at: new Date() });
      await jobs.send(NOTIFY_QUEUE, { id: id.toString() }, { singletonKey: `notify:${id}:resend:${Date.now()}` }, tx);
      return { ...n, state: 0, attempts: 0 };
    });
  }

  /** Re-enqueues pending notifications whose job never ran (lost in a crash). */
  async function sweep(graceS = 60): Promise<number> {
    const overdue = await repo.findOverdueNotifications(db.kysely, new Date(Date.now() - graceS * 1000), SWEEP_LIMIT);
    for (const n of overdue) await jobs.send(NOTIFY_QUEUE, { id: n.id.toString() }, { singletonKey: `notify:${n.id}:sweep:${n.attempts}` });
    return overdue.length;
  }

  async function start(): Promise<void> {
    await jobs.work(NOTIFY_QUEUE, async (data) => deliver(BigInt(String(data.id))), { batchSize: 16, pollingIntervalSeconds: 0.5 });
  }

  return { enqueue, deliver, resend, sweep, start };
}
