// All SQL of the payment center.
import { sql, type Kdb, type Tx } from '../platform/db.ts';
import { CHECK_BACKOFF_LITERAL, type ClaimOptions } from '../platform/check-schedule.ts';

type Q = Kdb | Tx;

export interface MerchantRow { mch_no: string; name: string; state: number; created_at: Date }
export interface AppRow {
  app_id: string; mch_no: string; name: string; secret_sealed: string; sign_types: string;
  notify_url: string | null; ip_allowlist: string | null; state: number;
}
export interface RouteRow { mch_no: string; way_code: string; if_code: string; fallback_if_code: string | null }

export interface PayOrderRow {
  pay_order_id: string; mch_no: string; app_id: string; mch_order_no: string; way_code: string; if_code: string | null;
  amount: bigint; currency: string; subject: string; body: string; client_ip: string | null; notify_url: string | null;
  return_url: string | null; channel_extra: string | null; ext_param: string | null; division_mode: number; state: number;
  close_reason: string | null; request_hash: string; pay_data_type: string | null; pay_data: string | null;
  channel_order_no: string | null; channel_user: string | null; err_code: string | null; err_msg: string | null;
  refund_amount: bigint; refund_times: number; division_state: number; recovered_by: string | null;
  expired_at: Date; success_at: Date | null; created_at: Date; updated_at: Date;
  /** The check schedule (polling): when this order is next asked about at its channel, and how often it was. */
  next_check_at?: Date; check_attempts?: number;
}

export interface RefundRow {
  refund_order_id: string; pay_order_id: string; mch_no: string; app_id: string; mch_refund_no: string; if_code: string;
  pay_amount: bigint; refund_amount: bigint; currency: string; refund_reason: string; client_ip: string | null;
  notify_url: string | null; channel_extra: string | null; ext_param: string | null; state: number; request_hash: string;
  channel_refund_no: string | null; err_code: string | null; err_msg: string | null; success_at: Date | null;
  created_at: Date; updated_at: Date;
}

export interface TransferOrderRow {
  transfer_id: string; mch_no: string; app_id: string; mch_order_no: string; if_code: string; entry_type: string;
  amount: bigint; currency: string; account_no: string; account_name: string | null; bank_name: string | null;
  client_ip: string | null; transfer_desc: string; notify_url: string | null; channel_extra: string | null;
  ext_param: string | null; state: number; request_hash: string; channel_order_no: string | null;
  err_code: string | null; err_msg: string | null; success_at: Date | null; created_at: Date; updated_at: Date;
}

export interface ReceiverRow {
  receiver_id: string; mch_no: string; app_id: string; if_code: string; receiver_alias: string | null;
  receiver_group_id: string | null; acc_type: number; acc_no: string; acc_name: string | null;
  relation_type: string | null; relation_type_name: string | null; division_profit: string; state: number; created_at: Date;
}

export interface NotificationRow {
  id: bigint; kind: string; ref_id: string; mch_no: string; app_id: string; notify_url: string; body: string;
  state: number; attempts: number; next_at: Date | null; last_status: number | null; last_error: string | null;
  created_at: Date; updated_at: Date;
}

// --- merchants and apps -------------------------------------------------------------

export async function insertMerchant(q: Q, mchNo: string, name: string): Promise<void> {
  await sql`INSERT INTO pay_merchants (mch_no, name) VALUES (${mchNo}, ${name})`.execute(q);
}

export async function findMerchant(q: Q, mchNo: string): Promise<MerchantRow | null> {
  const r = await sql<MerchantRow>`SELECT * FROM pay_merchants WHERE mch_no = ${mchNo}`.execute(q);
  return r.rows[0] ?? null;
}

export async function listMerchants(q: Q, limit: number): Promise<MerchantRow[]> {
  return (await sql<MerchantRow>`SELECT * FROM pay_merchants ORDER BY created_at, mch_no LIMIT ${limit}`.execute(q)).rows;
}

export async function insertApp(q: Q, app: Omit<AppRow, 'state'>): Promise<void> {
  await sql`INSERT INTO pay_apps (app_id, mch_no, name, secret_sealed, sign_types, notify_url, ip_allowlist)
    VALUES (${app.app_id}, ${app.mch_no}, ${app.name}, ${app.secret_sealed}, ${app.sign_types}, ${app.notify_url}, ${app.ip_allowlist})`.execute(q);
}

export async function findApp(q: Q, appId: string): Promise<AppRow | null> {
  return (await sql<AppRow>`SELECT * FROM pay_apps WHERE app_id = ${appId}`.execute(q)).rows[0] ?? null;
}

export async function listApps(q: Q, mchNo: string): Promise<AppRow[]> {
  return (await sql<AppRow>`SELECT * FROM pay_apps WHERE mch_no = ${mchNo} ORDER BY created_at`.execute(q)).rows;
}

export async function upsertRoute(q: Q, route: RouteRow): Promise<void> {
  await sql`INSERT INTO pay_routes (mch_no, way_code, if_code, fallback_if_code)
    VALUES (${route.mch_no}, ${route.way_code}, ${route.if_code}, ${route.fallback_if_code})
    ON CONFLICT (mch_no, way_code) DO UPDATE SET if_code = EXCLUDED.if_code, fallback_if_code = EXCLUDED.fallback_if_code`.execute(q);
}

/** The route for a way, else the merchant's default ('*'). */
export async function findRoute(q: Q, mchNo: string, wayCode: string): Promise<RouteRow | null> {
  const r = await sql<RouteRow>`SELECT * FROM pay_routes WHERE mch_no = ${mchNo} AND way_code IN (${wayCode}, '*')
    ORDER BY (way_code = '*') LIMIT 1`.execute(q);
  return r.rows[0] ?? null;
}

// --- pay orders ---------------------------------------------------------------------

export type NewPayOrder = Omit<PayOrderRow, 'refund_amount' | 'refund_times' | 'division_state' | 'recovered_by' | 'success_at' |
  'created_at' | 'updated_at' | 'close_reason' | 'channel_order_no' | 'channel_user' | 'err_code' | 'err_msg'>;

/**
 * Inserts many new orders in one statement (group commit of unified orders); returns
 * the rows it inserted. An order whose (mch_no, mch_order_no) exists is skipped.
 */
export async function insertPayOrders(q: Q, orders: NewPayOrder[]): Promise<PayOrderRow[]> {
  if (orders.length === 0) return [];
  const col = <T>(pick: (o: NewPayOrder) => T) => orders.map(pick);
  const r = await sql<PayOrderRow>`
    INSERT INTO pay_orders (pay_order_id, mch_no, app_id, mch_order_no, way_code, if_code, amount, currency, subject, body,
      client_ip, notify_url, return_url, channel_extra, ext_param, division_mode, state, request_hash, expired_at, pay_data_type, pay_data)
    SELECT * FROM unnest(${col((o) => o.pay_order_id)}::text[], ${col((o) => o.mch_no)}::text[], ${col((o) => o.app_id)}::text[],
      ${col((o) => o.mch_order_no)}::text[], ${col((o) => o.way_code)}::text[], ${col((o) => o.if_code)}::text[],
      ${col((o) => o.amount.toString())}::int8[], ${col((o) => o.currency)}::text[], ${col((o) => o.subject)}::text[],
      ${col((o) => o.body)}::text[], ${col((o) => o.client_ip)}::text[], ${col((o) => o.notify_url)}::text[],
      ${col((o) => o.return_url)}::text[], ${col((o) => o.channel_extra)}::text[], ${col((o) => o.ext_param)}::text[],
      ${col((o) => o.division_mode)}::int2[], ${col((o) => o.state)}::int2[], ${col((o) => o.request_hash)}::text[],
      ${col((o) => o.expired_at.toISOString())}::timestamptz[], ${col((o) => o.pay_data_type)}::text[], ${col((o) => o.pay_data)}::text[])
    ON CONFLICT (mch_no, mch_order_no) DO NOTHING RETURNING *`.execute(q);
  return r.rows;
}

export async function findPayOrder(q: Q, payOrderId: string, forUpdate = false): Promise<PayOrderRow | null> {
  const lock = forUpdate ? sql` FOR UPDATE` : sql``;
  return (await sql<PayOrderRow>`SELECT * FROM pay_orders WHERE pay_order_id = ${payOrderId}${lock}`.execute(q)).rows[0] ?? null;
}

export async function findPayOrderByMchOrderNo(q: Q, mchNo: string, mchOrderNo: string): Promise<PayOrderRow | null> {
  return (await sql<PayOrderRow>`SELECT * FROM pay_orders WHERE mch_no = ${mchNo} AND mch_order_no = ${mchOrderNo}`.execute(q)).rows[0] ?? null;
}

/**
 * Sets the given columns (undefined ones are left alone) and updated_at on one row of
 * one of the payment tables, found by its key.
 */
async function updateById(q: Q, table: 'pay_orders' | 'pay_refunds' | 'pay_transfers', key: string, id: string, fields: object): Promise<void> {
  const entries = Object.entries(fields).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return;
  const sets = entries.map(([k, v]) => sql`${sql.ref(k)} = ${typeof v === 'bigint' ? v.toString() : v}`);
  await sql`UPDATE ${sql.table(table)} SET ${sql.join(sets)}, updated_at = now() WHERE ${sql.ref(key)} = ${id}`.execute(q);
}

export async function updatePayOrder(q: Q, payOrderId: string, fields: Partial<PayOrderRow>): Promise<void> {
  await updateById(q, 'pay_orders', 'pay_order_id', payOrderId, fields);
}

/** Orders still open (created or paying) created before `before`, oldest first. */
export async function findOpenOrders(q: Q, before: Date, limit: number): Promise<PayOrderRow[]> {
  return (await sql<PayOrderRow>`SELECT * FROM pay_orders WHERE state IN (0, 1) AND created_at <= ${before}
    ORDER BY created_at LIMIT ${limit}`.execute(q)).rows;
}

// --- refunds ------------------------------------------------------------------------

export async function insertRefund(q: Q, r: Omit<RefundRow, 'channel_refund_no' | 'err_code' | 'err_msg' | 'success_at' | 'created_at' | 'updated_at'>): Promise<boolean> {
  const res = await sql<{ refund_order_id: string }>`
    INSERT INTO pay_refunds (refund_order_id, pay_order_id, mch_no, app_id, mch_refund_no, if_code, pay_amount, refund_amount,
      currency, refund_reason, client_ip, notify_url, channel_extra, ext_param, state, request_hash)
    VALUES (${r.refund_order_id}, ${r.pay_order_id}, ${r.mch_no}, ${r.app_id}, ${r.mch_refund_no}, ${r.if_code},
      ${r.pay_amount.toString()}::int8, ${r.refund_amount.toString()}::int8, ${r.currency}, ${r.refund_reason}, ${r.client_ip},
      ${r.notify_url}, ${r.channel_extra}, ${r.ext_param}, ${r.state}, ${r.request_hash})
    ON CONFLICT (mch_no, mch_refund_no) DO NOTHING RETURNING refund_order_id`.execute(q);
  return res.rows.length === 1;
}

export async function findRefund(q: Q, refundOrderId: string, forUpdate = false): Promise<RefundRow | null> {
  const lock = forUpdate ? sql` FOR UPDATE` : sql``;
  return (await sql<RefundRow>`SELECT * FROM pay_refunds WHERE refund_order_id = ${refundOrderId}${lock}`.execute(q)).rows[0] ?? null;
}

export async function findRefundByMchRefundNo(q: Q, mchNo: string, mchRefundNo: string): Promise<RefundRow | null> {
  return (await sql<RefundRow>`SELECT * FROM pay_refunds WHERE mch_no = ${mchNo} AND mch_refund_no = ${mchRefundNo}`.execute(q)).rows[0] ?? null;
}

/** Σ refund amounts of an order that are not failed or closed (in progress or done). */
export async function sumActiveRefunds(q: Q, payOrderId: string): Promise<bigint> {
  const r = await sql<{ total: bigint }>`SELECT coalesce(sum(refund_amount), 0)::int8 AS total FROM pay_refunds
    WHERE pay_order_id = ${payOrderId} AND state IN (0, 1, 2)`.execute(q);
  return r.rows[0].total;
}

export async function updateRefund(q: Q, id: string, fields: Partial<RefundRow>): Promise<void> {
  await updateById(q, 'pay_refunds', 'refund_order_id', id, fields);
}

export async function findOpenRefunds(q: Q, before: Date, limit: number): Promise<RefundRow[]> {
  return (await sql<RefundRow>`SELECT * FROM pay_refunds WHERE state IN (0, 1) AND created_at <= ${before}
    ORDER BY created_at LIMIT ${limit}`.execute(q)).rows;
}

// --- transfers (payouts) ----------------------------------------------------------

export async function insertTransferOrder(q: Q, t: Omit<TransferOrderRow, 'channel_order_no' | 'err_code' | 'err_msg' | 'success_at' | 'created_at' | 'updated_at'>): Promise<boolean> {
  const res = await sql<{ transfer_id: string }>`
    INSERT INTO pay_transfers (transfer_id, mch_no, app_id, mch_order_no, if_code, entry_type, amount, currency, account_no,
      account_name, bank_name, client_ip, transfer_desc, notify_url, channel_extra, ext_param, state, request_hash)
    VALUES (${t.transfer_id}, ${t.mch_no}, ${t.app_id}, ${t.mch_order_no}, ${t.if_code}, ${t.entry_type}, ${t.amount.toString()}::int8,
      ${t.currency}, ${t.account_no}, ${t.account_name}, ${t.bank_name}, ${t.client_ip}, ${t.transfer_desc}, ${t.notify_url},
      ${t.channel_extra}, ${t.ext_param}, ${t.state}, ${t.request_hash})
    ON CONFLICT (mch_no, mch_order_no) DO NOTHING RETURNING transfer_id`.execute(q);
  return res.rows.length === 1;
}

export async function findTransferOrder(q: Q, transferId: string, forUpdate = false): Promise<TransferOrderRow | null> {
  const lock = forUpdate ? sql` FOR UPDATE` : sql``;
  return (await sql<TransferOrderRow>`SELECT * FROM pay_transfers WHERE transfer_id = ${transferId}${lock}`.execute(q)).rows[0] ?? null;
}

export async function findTransferByMchOrderNo(q: Q, mchNo: string, mchOrderNo: string): Promise<TransferOrderRow | null> {
  return (await sql<TransferOrderRow>`SELECT * FROM pay_transfers WHERE mch_no = ${mchNo} AND mch_order_no = ${mchOrderNo}`.execute(q)).rows[0] ?? null;
}

export async function updateTransferOrder(q: Q, id: string, fields: Partial<TransferOrderRow>): Promise<void> {
  await updateById(q, 'pay_transfers', 'transfer_id', id, fields);
}

export async function findOpenTransfers(q: Q, before: Date, limit: number): Promise<TransferOrderRow[]> {
  return (await sql<TransferOrderRow>`SELECT * FROM pay_transfers WHERE state IN (0, 1) AND created_at <= ${before}
    ORDER BY created_at LIMIT ${limit}`.execute(q)).rows;
}

// --- division -----------------------------------------------------------------------

export async function insertReceiver(q: Q, r: Omit<ReceiverRow, 'state' | 'created_at'>): Promise<ReceiverRow> {
  const res = await sql<ReceiverRow>`
    INSERT INTO pay_division_receivers (receiver_id, mch_no, app_id, if_code, receiver_alias, receiver_group_id, acc_type, acc_no,
      acc_name, relation_type, relation_type_name, division_profit)
    VALUES (${r.receiver_id}, ${r.mch_no}, ${r.app_id}, ${r.if_code}, ${r.receiver_alias}, ${r.receiver_group_id}, ${r.acc_type},
      ${r.acc_no}, ${r.acc_name}, ${r.relation_type}, ${r.relation_type_name}, ${r.division_profit})
    ON CONFLICT (mch_no, app_id, acc_no) DO UPDATE SET receiver_alias = EXCLUDED.receiver_alias,
      receiver_group_id = EXCLUDED.receiver_group_id, acc_name = EXCLUDED.acc_name, relation_type = EXCLUDED.relation_type,
      relation_type_name = EXCLUDED.relation_type_name, division_profit = EXCLUDED.division_profit
    RETURNING *`.execute(q);
  return res.rows[0];
}

export async function findReceivers(q: Q, mchNo: string, appId: string): Promise<ReceiverRow[]> {
  return (await sql<ReceiverRow>`SELECT * FROM pay_division_receivers WHERE mch_no = ${mchNo} AND app_id = ${appId} AND state = 1
    ORDER BY receiver_id`.execute(q)).rows;
}

export async function insertDivision(q: Q, d: { division_id: string; pay_order_id: string; receiver_id: string; amount: bigint; state: number }): Promise<boolean> {
  const r = await sql`INSERT INTO pay_divisions (division_id, pay_order_id, receiver_id, amount, state)
    VALUES (${d.division_id}, ${d.pay_order_id}, ${d.receiver_id}, ${d.amount.toString()}::int8, ${d.state})
    ON CONFLICT (pay_order_id, receiver_id) DO NOTHING RETURNING division_id`.execute(q);
  return r.rows.length === 1;
}

export async function sumDivisions(q: Q, payOrderId: string): Promise<bigint> {
  const r = await sql<{ total: bigint }>`SELECT coalesce(sum(amount), 0)::int8 AS total FROM pay_divisions WHERE pay_order_id = ${payOrderId}`.execute(q);
  return r.rows[0].total;
}

export async function listDivisions(q: Q, payOrderId: string): Promise<Array<{ division_id: string; receiver_id: string; amount: bigint; state: number }>> {
  return (await sql<{ division_id: string; receiver_id: string; amount: bigint; state: number }>`
    SELECT division_id, receiver_id, amount, state FROM pay_divisions WHERE pay_order_id = ${payOrderId} ORDER BY receiver_id`.execute(q)).rows;
}

// --- notifications and channel events ----------------------------------------------

export async function insertNotification(q: Q, n: { kind: string; ref_id: string; mch_no: string; app_id: string; notify_url: string; body: string }): Promise<bigint> {
  const r = await sql<{ id: bigint }>`INSERT INTO pay_notifications (kind, ref_id, mch_no, app_id, notify_url, body, next_at)
    VALUES (${n.kind}, ${n.ref_id}, ${n.mch_no}, ${n.app_id}, ${n.notify_url}, ${n.body}, now()) RETURNING id`.execute(q);
  return r.rows[0].id;
}

export async function findNotification(q: Q, id: bigint, forUpdate = false): Promise<NotificationRow | null> {
  const lock = forUpdate ? sql` FOR UPDATE` : sql``;
  return (await sql<NotificationRow>`SELECT * FROM pay_notifications WHERE id = ${id.toString()}::int8${lock}`.execute(q)).rows[0] ?? null;
}

export async function listNotifications(q: Q, filter: { kind?: string; refId?: string; state?: number }, limit: number): Promise<NotificationRow[]> {
  const conditions = [sql`true`];
  if (filter.kind) conditions.push(sql`kind = ${filter.kind}`);
  if (filter.refId) conditions.push(sql`ref_id = ${filter.refId}`);
  if (filter.state !== undefined) conditions.push(sql`state = ${filter.state}`);
  return (await sql<NotificationRow>`SELECT * FROM pay_notifications WHERE ${sql.join(conditions, sql` AND `)}
    ORDER BY id DESC LIMIT ${limit}`.execute(q)).rows;
}

export async function updateNotification(q: Q, id: bigint, fields: { state?: number; attempts?: number; next_at?: Date | null; last_status?: number | null; last_error?: string | null }): Promise<void> {
  const entries = Object.entries(fields).filter(([, v]) => v !== undefined);
  const sets = entries.map(([k, v]) => sql`${sql.ref(k)} = ${v}`);
  await sql`UPDATE pay_notifications SET ${sql.join(sets)}, updated_at = now() WHERE id = ${id.toString()}::int8`.execute(q);
}

export async function insertAttempt(q: Q, a: { notification_id: bigint; attempt: number; http_status: number | null; response_excerpt: string | null; error: string | null; duration_ms: number }): Promise<void> {
  await sql`INSERT INTO pay_notify_attempts (notification_id, attempt, http_status, response_excerpt, error, duration_ms)
    VALUES (${a.notification_id.toString()}::int8, ${a.attempt}, ${a.http_status}, ${a.response_excerpt}, ${a.error}, ${a.duration_ms})`.execute(q);
}

export async function listAttempts(q: Q, notificationId: bigint): Promise<Array<{ attempt: number; at: Date; http_status: number | null; response_excerpt: string | null; error: string | null; duration_ms: number }>> {
  return (await sql<{ attempt: number; at: Date; http_status: number | null; response_excerpt: string | null; error: string | null; duration_ms: number }>`
    SELECT attempt, at, http_status, response_excerpt, error, duration_ms FROM pay_notify_attempts
    WHERE notification_id = ${notificationId.toString()}::int8 ORDER BY id`.execute(q)).rows;
}

/** Pending notifications whose next attempt is overdue (their job was lost). */
export async function findOverdueNotifications(q: Q, before: Date, limit: number): Promise<NotificationRow[]> {
  return (await sql<NotificationRow>`SELECT * FROM pay_notifications WHERE state = 0 AND next_at <= ${before}
    ORDER BY next_at LIMIT ${limit}`.execute(q)).rows;
}

/** Records a channel event once; false when it was seen before. */
export async function recordChannelEvent(q: Q, e: { if_code: string; event_id: string; kind: string; ref_id: string; payload: string }): Promise<boolean> {
  const r = await sql`INSERT INTO channel_events (if_code, event_id, kind, ref_id, payload)
    VALUES (${e.if_code}, ${e.event_id}, ${e.kind}, ${e.ref_id}, ${e.payload}) ON CONFLICT DO NOTHING RETURNING event_id`.execute(q);
  return r.rows.length === 1;
}

// --- reads for loss prevention (src/risk), set-wise and bounded -------------------------

export interface PaidOrderBrief { pay_order_id: string; mch_no: string; amount: bigint; refund_amount: bigint; success_at: Date }

/** Orders that succeeded at or after `since`, oldest first. */
export async function paidOrdersSince(q: Q, since: Date, limit: number): Promise<PaidOrderBrief[]> {
  const result = await sql<PaidOrderBrief>`
    SELECT pay_order_id, mch_no, amount, refund_amount, success_at FROM pay_orders
    WHERE success_at IS NOT NULL AND success_at >= ${since} ORDER BY success_at LIMIT ${limit}`.execute(q);
  return result.rows;
}

export interface RefundTotals { pay_order_id: string; mch_no: string; amount: bigint; order_refund_amount: bigint; refunded_fen: bigint; in_flight_fen: bigint; last_updated_at: Date }

/** For the orders whose refunds changed at or after `since`: what was paid and what is refunded or being refunded. */
export async function refundTotalsSince(q: Q, since: Date, limit: number): Promise<RefundTotals[]> {
  const result = await sql<RefundTotals>`
    WITH changed AS (
      SELECT pay_order_id, max(updated_at) AS last_updated_at FROM pay_refunds
      WHERE updated_at >= ${since} GROUP BY pay_order_id ORDER BY max(updated_at) LIMIT ${limit}
    )
    SELECT o.pay_order_id, o.mch_no, o.amount, o.refund_amount AS order_refund_amount, c.last_updated_at,
      coalesce(sum(r.refund_amount) FILTER (WHERE r.state = 2), 0)::int8 AS refunded_fen,
      coalesce(sum(r.refund_amount) FILTER (WHERE r.state IN (0, 1)), 0)::int8 AS in_flight_fen
    FROM changed c JOIN pay_orders o ON o.pay_order_id = c.pay_order_id
    JOIN pay_refunds r ON r.pay_order_id = c.pay_order_id
    GROUP BY o.pay_order_id, o.mch_no, o.amount, o.refund_amount, c.last_updated_at
    ORDER BY c.last_updated_at`.execute(q);
  return result.rows;
}

export interface StuckItem { kind: 'notification' | 'refund' | 'transfer'; id: string; mch_no: string; amount: bigint | null; since: Date }

/**
 * Work overdue on its own schedule: notifications whose next attempt is more than
 * `notifyGraceS` late, refunds and payouts (transfer orders) still open after `openMaxS`.
 */
export async function stuckItems(q: Q, now: Date, notifyGraceS: number, openMaxS: number, limit: number): Promise<StuckItem[]> {
  const notifyBefore = new Date(now.getTime() - notifyGraceS * 1000);
  const openBefore = new Date(now.getTime() - openMaxS * 1000);
  const result = await sql<StuckItem>`
    (SELECT 'notification' AS kind, id::text AS id, mch_no, NULL::int8 AS amount, next_at AS since FROM pay_notifications
      WHERE state = 0 AND next_at < ${notifyBefore} ORDER BY next_at LIMIT ${limit})
    UNION ALL
    (SELECT 'refund', refund_order_id, mch_no, refund_amount, created_at FROM pay_refunds
      WHERE state IN (0, 1) AND created_at < ${openBefore} ORDER BY state, created_at LIMIT ${limit})
    UNION ALL
    (SELECT 'transfer', transfer_id, mch_no, amount, created_at FROM pay_transfers
      WHERE state IN (0, 1) AND created_at < ${openBefore} ORDER BY state, created_at LIMIT ${limit})`.execute(q);
  return result.rows;
}

/** Σ amount of a merchant's orders that succeeded at or after `since`. */
export async function merchantPaidSince(q: Q, mchNo: string, since: Date): Promise<bigint> {
  const result = await sql<{ total: bigint }>`
    SELECT coalesce(sum(amount), 0)::int8 AS total FROM pay_orders
    WHERE mch_no = ${mchNo} AND success_at IS NOT NULL AND success_at >= ${since}`.execute(q);
  return result.rows[0].total;
}

/** The amounts of a merchant's last `n` successful orders, newest first. */
export async function recentPaidAmounts(q: Q, mchNo: string, n: number): Promise<bigint[]> {
  const result = await sql<{ amount: bigint }>`
    SELECT amount FROM pay_orders WHERE mch_no = ${mchNo} AND success_at IS NOT NULL
    ORDER BY success_at DESC LIMIT ${n}`.execute(q);
  return result.rows.map((r) => r.amount);
}

// --- the check schedule (polling) ------------------------------------------------------

/**
 * Claims the open rows due for a check (next_check_at ≤ now, or created before
 * forceBefore), oldest due first, and moves each to its next check by the back-off in
 * the same statement. SKIP LOCKED: two processes never claim the same row, and a row
 * locked by a payment in progress is left for the next tick. An order's next check is
 * never later than its expiry, so an expired order is closed promptly.
 */
async function claimDue<T>(q: Q, table: 'pay_orders' | 'pay_refunds' | 'pay_transfers', key: string, o: ClaimOptions, capAtExpiry: boolean): Promise<T[]> {
  const t = sql.table(table);
  const k = sql.ref(key);
  const due = o.forceBefore ? sql`(next_check_at <= ${o.now} OR created_at <= ${o.forceBefore})` : sql`next_check_at <= ${o.now}`;
  const backoff = sql`${o.now}::timestamptz + make_interval(secs => (${CHECK_BACKOFF_LITERAL}::int4[])[least(c.check_attempts + 1, cardinality(${CHECK_BACKOFF_LITERAL}::int4[]))])`;
  const next = capAtExpiry ? sql`CASE WHEN c.expired_at > ${o.now} THEN least(${backoff}, c.expired_at) ELSE ${backoff} END` : backoff;
  return (await sql<T>`UPDATE ${t} AS c SET next_check_at = ${next}, check_attempts = c.check_attempts + 1
    FROM (SELECT ${k} AS id FROM ${t} WHERE state IN (0, 1) AND ${due} ORDER BY next_check_at LIMIT ${o.limit} FOR UPDATE SKIP LOCKED) AS d
    WHERE c.${k} = d.id RETURNING c.*`.execute(q)).rows;
}

export const claimDueOrders = (q: Q, o: ClaimOptions) => claimDue<PayOrderRow>(q, 'pay_orders', 'pay_order_id', o, true);
export const claimDueRefunds = (q: Q, o: ClaimOptions) => claimDue<RefundRow>(q, 'pay_refunds', 'refund_order_id', o, false);
export const claimDueTransfers = (q: Q, o: ClaimOptions) => claimDue<TransferOrderRow>(q, 'pay_transfers', 'transfer_id', o, false);
