// All SQL of reconciliation. Matching is set-wise: the channel's rows are staged with
// COPY in large batches and classified by a few statements that join them with our
// pay orders and refunds (hash joins on the order number), never a query per record.
import { copyText, sql, type Kdb, type Tx } from '../platform/db.ts';
import { STAGE_COLUMNS } from './stage-format.ts';

type Q = Kdb | Tx;

export const KIND = { payment: 1, refund: 2, supervision: 3 } as const;

export interface BatchRow {
  batch_id: string; channel: string; mch_account: string; bill_date: string; if_code: string; state: string;
  source: string | null; reject_code: string | null; reject_message: string | null; matched: bigint | null; matched_fen: bigint | null; channel_records: bigint | null; channel_total_fen: bigint | null; summary: string | null; runs: number;
  created_at: Date; updated_at: Date; finished_at: Date | null;
}

export interface MistakeRow {
  id: bigint; batch_id: string; type: string; kind: number; if_code: string; ref_id: string; row_no: number | null;
  pay_order_id: string | null; refund_order_id: string | null; mch_no: string | null;
  channel_amount_fen: bigint | null; platform_amount_fen: bigint | null; channel_fee_e5: bigint | null; expected_fee_e5: bigint | null;
  channel_no: string | null; trade_time: string | null; amount_fen: bigint; direction: string | null; detail: string | null; state: string; resolved_side: string | null; created_at: Date; resolved_at: Date | null;
}

export interface PoolRow {
  if_code: string; kind: number; ref_id: string; pay_order_id: string; mch_no: string | null; amount_fen: bigint;
  bill_date: string; state: string; added_batch_id: string | null; closed_batch_id: string | null; created_at: Date;
}

export interface DecisionRow {
  id: bigint; mistake_id: bigint; actor: string; action: string; reason: string; before_json: string; after_json: string;
  transfer_ids: string | null; at: Date;
}

export interface BankAccountRow {
  bank_account_no: string; ledger_account_id: string; normal_side: 'debit' | 'credit'; blocked: boolean;
  blocked_reason: string | null; blocked_at: Date | null;
}

const BATCH_COLUMNS = sql`batch_id, channel, mch_account, to_char(bill_date, 'YYYY-MM-DD') AS bill_date, if_code, state, source,
  reject_code, reject_message, matched, matched_fen, channel_records, channel_total_fen, summary, runs, created_at, updated_at, finished_at`;

// --- batches ------------------------------------------------------------------------

export async function insertBatch(q: Q, b: { batchId: string; channel: string; mchAccount: string; billDate: string; ifCode: string; source: string | null }): Promise<boolean> {
  const r = await sql`INSERT INTO recon_batches (batch_id, channel, mch_account, bill_date, if_code, state, source)
    VALUES (${b.batchId}, ${b.channel}, ${b.mchAccount}, ${b.billDate}::date, ${b.ifCode}, 'created', ${b.source})
    ON CONFLICT (channel, mch_account, bill_date) DO NOTHING`.execute(q);
  return (r.numAffectedRows ?? 0n) > 0n;
}

export async function findBatch(q: Q, batchId: string, forUpdate = false): Promise<BatchRow | null> {
  const r = forUpdate
    ? await sql<BatchRow>`SELECT ${BATCH_COLUMNS} FROM recon_batches WHERE batch_id = ${batchId} FOR UPDATE`.execute(q)
    : await sql<BatchRow>`SELECT ${BATCH_COLUMNS} FROM recon_batches WHERE batch_id = ${batchId}`.execute(q);
  return r.rows[0] ?? null;
}

export async function findBatchByKey(q: Q, channel: string, mchAccount: string, billDate: string): Promise<BatchRow | null> {
  const r = await sql<BatchRow>`SELECT ${BATCH_COLUMNS} FROM recon_batches
    WHERE channel = ${channel} AND mch_account = ${mchAccount} AND bill_date = ${billDate}::date`.execute(q);
  return r.rows[0] ?? null;
}

export async function listBatches(q: Q, f: { channel?: string; state?: string }, limit: number): Promise<BatchRow[]> {
  const r = await sql<BatchRow>`SELECT ${BATCH_COLUMNS} FROM recon_batches
    WHERE (${f.channel ?? null}::text IS NULL OR channel = ${f.channel ?? null})
      AND (${f.state ?? null}::text IS NULL OR state = ${f.state ?? null})
    ORDER BY bill_date DESC, channel LIMIT ${limit}`.execute(q);
  return r.rows;
}

export async function updateBatch(q: Q, batchId: string, f: { state: string; source?: string | null; rejectCode?: string | null; rejectMessage?: string | null; summary?: string | null; finished?: boolean; run?: boolean; matched?: { n: bigint; fen: bigint }; channel?: { n: bigint; fen: bigint } }): Promise<void> {
  await sql`UPDATE recon_batches SET state = ${f.state},
      channel_records = CASE WHEN ${f.channel !== undefined} THEN ${f.channel?.n ?? null}::int8 ELSE channel_records END,
      channel_total_fen = CASE WHEN ${f.channel !== undefined} THEN ${f.channel?.fen ?? null}::int8 ELSE channel_total_fen END,
      matched = CASE WHEN ${f.matched !== undefined} THEN ${f.matched?.n ?? null}::int8 ELSE matched END,
      matched_fen = CASE WHEN ${f.matched !== undefined} THEN ${f.matched?.fen ?? null}::int8 ELSE matched_fen END,
      source = CASE WHEN ${f.source !== undefined} THEN ${f.source ?? null} ELSE source END,
      reject_code = CASE WHEN ${f.rejectCode !== undefined} THEN ${f.rejectCode ?? null} ELSE reject_code END,
      reject_message = CASE WHEN ${f.rejectMessage !== undefined} THEN ${f.rejectMessage ?? null} ELSE reject_message END,
      summary = CASE WHEN ${f.summary !== undefined} THEN ${f.summary ?? null} ELSE summary END,
      finished_at = CASE WHEN ${f.finished === true} THEN now() ELSE finished_at END,
      runs = runs + ${f.run ? 1 : 0}, updated_at = now()
    WHERE batch_id = ${batchId}`.execute(q);
}

// --- staging ------------------------------------------------------------------------

export async function deleteStaged(q: Q, batchId: string): Promise<void> {
  await sql`DELETE FROM recon_channel_rows WHERE batch_id = ${batchId}`.execute(q);
  await sql`DELETE FROM recon_bank_rows WHERE batch_id = ${batchId}`.execute(q);
}

// --- classification -----------------------------------------------------------------

/** Room for the classification's hash joins in memory (a million staged rows), for this transaction only. */
export async function setJoinMemory(q: Tx, mb: number): Promise<void> {
  await sql.raw(`SET LOCAL work_mem = '${Math.max(4, Math.min(1024, Math.floor(mb)))}MB'`).execute(q);
}

export interface ClassifyParams {
  batchId: string; ifCode: string; billDate: string; dayStart: Date; dayEnd: Date;
  /** Channel fee rate as a decimal string, or null when fees are checked by a function (see feePage). */
  feeRate: string | null;
  ttlDays: number;
}

/** A fee rate as an integer fraction, when small enough for int8 arithmetic in SQL (else null: numeric). */
export function rateFraction(rate: string): { num: bigint; den: bigint } | null {
  const m = /^(\d+)(?:\.(\d{1,6}))?$/.exec(rate);
  if (!m) return null;
  const den = 10n ** BigInt(m[2]?.length ?? 0);
  return { num: BigInt(m[1] + (m[2] ?? '')), den };
}

/**
 * Stages a chunk of staging lines (stage-format.ts, UTF-8). PostgreSQL: one COPY, the
 * rows taking the batch id from the transaction's custos.recon_batch_id (migration
 * 0008). PGlite, whose COPY is many times slower than its INSERT: one INSERT that
 * splits the lines in SQL (the format's only escape is a doubled backslash).
 */
export async function stageText(q: Tx, batchId: string, data: Buffer, via: 'copy' | 'insert'): Promise<number> {
  if (data.length === 0) return 0;
  if (via === 'copy') {
    await sql`SELECT set_config('custos.recon_batch_id', ${batchId}, true)`.execute(q);
    return copyText(q, `recon_channel_rows (${STAGE_COLUMNS})`, data);
  }
  const field = (n: number) => sql`replace(split_part(u.l, E'\t', ${sql.raw(String(n))}), ${'\\\\'}, ${'\\'})`; // \\ → \
  const r = await sql`INSERT INTO recon_channel_rows (batch_id, ${sql.raw(STAGE_COLUMNS)})
    SELECT ${batchId}, split_part(u.l, E'\t', 1)::int4, split_part(u.l, E'\t', 2)::int2, ${field(3)}, ${field(4)}, ${field(5)}, ${field(6)}, ${field(7)},
      split_part(u.l, E'\t', 8)::int8, split_part(u.l, E'\t', 9)::int8
    FROM unnest(string_to_array(${data.toString('utf8')}::text, E'\n')) AS u(l)`.execute(q);
  return Number(r.numAffectedRows ?? 0n);
}

/**
 * The channel side, one pass: every staged row joined with our order (payments) or
 * refund (refunds) by our number; from the one join come both
 * - rows that disagree: mistakes;
 * - rows the channel reported the day before our success date (its day ends earlier):
 *   written to the pool as already matched, so that our day's batch does not pool them.
 * Only those few rows are materialized; the rest stream through. Expected fee: amount
 * × rate, half up, in fen (× 1000 for the file's 1e-5 yuan), in int8 arithmetic.
 */
export async function classifyChannelRows(q: Q, p: ClassifyParams): Promise<void> {
  const f = p.feeRate === null ? null : rateFraction(p.feeRate);
  const num = f?.num ?? 0n;
  const den = f?.den ?? 1n;
  const checkFee = f !== null;
  await sql`
    WITH c AS NOT MATERIALIZED (
      SELECT x.*,
        CASE
          WHEN x.our_amount IS NULL THEN CASE WHEN x.ch_ok THEN CASE x.kind WHEN 1 THEN 'PLATFORM_MISSING' ELSE 'REFUND_PLATFORM_MISSING' END END
          WHEN x.ch_ok AND NOT x.our_ok THEN CASE x.kind WHEN 1 THEN 'PLATFORM_STATUS_BEHIND' ELSE 'REFUND_PLATFORM_STATUS_BEHIND' END
          WHEN NOT x.ch_ok AND x.our_ok THEN CASE x.kind WHEN 1 THEN 'PLATFORM_STATUS_AHEAD' ELSE 'REFUND_PLATFORM_STATUS_AHEAD' END
          WHEN NOT x.ch_ok THEN NULL
          WHEN x.amount_fen > x.our_amount THEN CASE x.kind WHEN 1 THEN 'AMOUNT_OVER' ELSE 'REFUND_AMOUNT_OVER' END
          WHEN x.amount_fen < x.our_amount THEN CASE x.kind WHEN 1 THEN 'AMOUNT_UNDER' ELSE 'REFUND_AMOUNT_UNDER' END
          WHEN x.expected_fee_e5 IS NOT NULL AND x.fee_e5 <> x.expected_fee_e5 THEN CASE x.kind WHEN 1 THEN 'FEE_MISMATCH' ELSE 'REFUND_FEE_MISMATCH' END
        END AS type
      FROM (
        SELECT r.row_no, r.kind, r.ref_id, r.pay_order_id, r.amount_fen, r.fee_e5, r.channel_no, r.trade_time,
          CASE WHEN r.kind = 1 THEN r.status = 'SUCCESS' ELSE r.status IN ('REFUND', 'SUCCESS') END AS ch_ok,
          CASE WHEN r.kind = 1 THEN o.state IN (2, 5) ELSE fr.state = 2 END AS our_ok,
          CASE WHEN r.kind = 1 THEN o.amount ELSE fr.refund_amount END AS our_amount,
          CASE WHEN r.kind = 1 THEN o.mch_no ELSE fr.mch_no END AS mch_no,
          CASE WHEN r.kind = 1 THEN o.pay_order_id ELSE fr.pay_order_id END AS our_pay_order_id,
          COALESCE(CASE WHEN r.kind = 1 THEN o.success_at >= ${p.dayEnd} AND o.state IN (2, 5)
                        ELSE fr.success_at >= ${p.dayEnd} AND fr.state = 2 END, false) AS early,
          fr.refund_order_id,
          CASE WHEN NOT ${checkFee} THEN NULL
               WHEN r.kind = 1 THEN ((o.amount * ${num}::int8 * 2 + ${den}::int8) / (2 * ${den}::int8)) * 1000
               ELSE -((fr.refund_amount * ${num}::int8 * 2 + ${den}::int8) / (2 * ${den}::int8)) * 1000 END AS expected_fee_e5
        FROM recon_channel_rows r
        LEFT JOIN pay_orders o ON r.kind = 1 AND o.pay_order_id = r.ref_id
        LEFT JOIN pay_refunds fr ON r.kind = 2 AND fr.refund_order_id = r.ref_id
        WHERE r.batch_id = ${p.batchId}
      ) x
    ),
    few AS MATERIALIZED (SELECT * FROM c WHERE c.type IS NOT NULL OR c.early),
    mistakes AS (
      INSERT INTO recon_mistakes (batch_id, type, kind, if_code, ref_id, row_no, pay_order_id, refund_order_id, mch_no,
        channel_amount_fen, platform_amount_fen, channel_fee_e5, expected_fee_e5, channel_no, trade_time, amount_fen, state)
      SELECT ${p.batchId}, w.type, w.kind, ${p.ifCode}, w.ref_id, w.row_no, CASE WHEN w.our_amount IS NULL AND w.kind = 2 THEN NULL ELSE w.pay_order_id END,
        w.refund_order_id, w.mch_no, w.amount_fen, w.our_amount, w.fee_e5, w.expected_fee_e5, w.channel_no, w.trade_time, COALESCE(w.our_amount, w.amount_fen),
        CASE WHEN w.type IN ('FEE_MISMATCH', 'REFUND_FEE_MISMATCH') THEN 'auto_fixed'
             WHEN w.type = 'PLATFORM_STATUS_BEHIND' AND w.amount_fen = w.our_amount THEN 'fixing'
             ELSE 'open' END
      FROM few w WHERE w.type IS NOT NULL
      ON CONFLICT (batch_id, type, ref_id) DO NOTHING
    ),
    early AS (
      INSERT INTO recon_pool (if_code, kind, ref_id, pay_order_id, mch_no, amount_fen, bill_date, state, added_batch_id, closed_batch_id)
      SELECT ${p.ifCode}, w.kind, w.ref_id, w.our_pay_order_id, w.mch_no, w.our_amount, ${p.billDate}::date, 'matched', ${p.batchId}, ${p.batchId}
      FROM few w WHERE w.early
      ON CONFLICT DO NOTHING
    )
    SELECT 1`.execute(q);
}

/**
 * Matched = staged rows − rows with a mistake (fee differences still count as matched)
 * − rows both sides call unpaid; from the staged rows and the batch's mistakes alone,
 * without joining again.
 */
export async function matchedOf(q: Q, batchId: string): Promise<{ matched: bigint; matchedFen: bigint; rows: bigint; netFen: bigint }> {
  const r = await sql<{ rows: bigint; net_fen: bigint; notok: bigint; notok_fen: bigint; mis: bigint; mis_fen: bigint; ahead: bigint; ahead_fen: bigint }>`SELECT
      s.rows, s.net_fen, s.notok, s.notok_fen, m.mis, m.mis_fen, m.ahead, m.ahead_fen
    FROM (SELECT count(*) AS rows, COALESCE(sum(CASE WHEN kind = 1 THEN amount_fen ELSE -amount_fen END), 0)::int8 AS net_fen,
            count(*) FILTER (WHERE NOT (CASE WHEN kind = 1 THEN status = 'SUCCESS' ELSE status IN ('REFUND', 'SUCCESS') END)) AS notok,
            COALESCE(sum(CASE WHEN kind = 1 THEN amount_fen ELSE -amount_fen END) FILTER (WHERE NOT (CASE WHEN kind = 1 THEN status = 'SUCCESS' ELSE status IN ('REFUND', 'SUCCESS') END)), 0)::int8 AS notok_fen
          FROM recon_channel_rows WHERE batch_id = ${batchId}) s,
         (SELECT count(*) AS mis, COALESCE(sum(CASE WHEN kind = 1 THEN channel_amount_fen ELSE -channel_amount_fen END), 0)::int8 AS mis_fen,
            count(*) FILTER (WHERE type LIKE '%STATUS_AHEAD') AS ahead,
            COALESCE(sum(CASE WHEN kind = 1 THEN channel_amount_fen ELSE -channel_amount_fen END) FILTER (WHERE type LIKE '%STATUS_AHEAD'), 0)::int8 AS ahead_fen
          FROM recon_mistakes WHERE batch_id = ${batchId} AND row_no IS NOT NULL AND type NOT LIKE '%FEE_MISMATCH') m`.execute(q);
  const x = r.rows[0];
  return { matched: x.rows - x.mis - x.notok + x.ahead, matchedFen: x.net_fen - x.mis_fen - x.notok_fen + x.ahead_fen, rows: x.rows, netFen: x.net_fen };
}

/** No JIT for these statements: compiling costs more than it saves on a few scans. */
export async function jitOff(q: Tx): Promise<void> {
  await sql`SET LOCAL jit = off`.execute(q);
}

/** Pool entries of earlier days that this file reports: matched now. Returns how many. */
export async function resolvePool(q: Q, p: ClassifyParams): Promise<void> {
  await sql`UPDATE recon_pool AS pl SET state = 'matched', closed_batch_id = ${p.batchId}
    FROM recon_channel_rows r
    WHERE r.batch_id = ${p.batchId} AND pl.if_code = ${p.ifCode} AND pl.state = 'open' AND pl.bill_date < ${p.billDate}::date
      AND pl.kind = r.kind AND pl.ref_id = r.ref_id`.execute(q);
}

/** Our successes of the bill date that the file lacks go to the pool (anti-joins). */
export async function addToPool(q: Q, p: ClassifyParams): Promise<void> {
  await sql`INSERT INTO recon_pool (if_code, kind, ref_id, pay_order_id, mch_no, amount_fen, bill_date, state, added_batch_id)
    SELECT ${p.ifCode}, 1, o.pay_order_id, o.pay_order_id, o.mch_no, o.amount, ${p.billDate}::date, 'open', ${p.batchId}
    FROM pay_orders o
    WHERE o.success_at >= ${p.dayStart} AND o.success_at < ${p.dayEnd} AND o.if_code = ${p.ifCode} AND o.state IN (2, 5)
      AND NOT EXISTS (SELECT 1 FROM recon_channel_rows r WHERE r.batch_id = ${p.batchId} AND r.kind = 1 AND r.ref_id = o.pay_order_id)
    UNION ALL
    SELECT ${p.ifCode}, 2, f.refund_order_id, f.pay_order_id, f.mch_no, f.refund_amount, ${p.billDate}::date, 'open', ${p.batchId}
    FROM pay_refunds f
    WHERE f.success_at >= ${p.dayStart} AND f.success_at < ${p.dayEnd} AND f.if_code = ${p.ifCode} AND f.state = 2
      AND NOT EXISTS (SELECT 1 FROM recon_channel_rows r WHERE r.batch_id = ${p.batchId} AND r.kind = 2 AND r.ref_id = f.refund_order_id)
    ON CONFLICT DO NOTHING`.execute(q);
}

/** Pool entries older than the TTL become CHANNEL_MISSING mistakes. */
export async function expirePool(q: Q, p: ClassifyParams): Promise<void> {
  await sql`WITH e AS (
      UPDATE recon_pool SET state = 'expired', closed_batch_id = ${p.batchId}
      WHERE if_code = ${p.ifCode} AND state = 'open' AND bill_date <= ${p.billDate}::date - ${p.ttlDays}::int4
      RETURNING *
    )
    INSERT INTO recon_mistakes (batch_id, type, kind, if_code, ref_id, row_no, pay_order_id, refund_order_id, mch_no,
      channel_amount_fen, platform_amount_fen, amount_fen, detail, state)
    SELECT ${p.batchId}, CASE e.kind WHEN 1 THEN 'CHANNEL_MISSING' ELSE 'REFUND_CHANNEL_MISSING' END, e.kind, ${p.ifCode}, e.ref_id, NULL,
      e.pay_order_id, CASE WHEN e.kind = 2 THEN e.ref_id END, e.mch_no, NULL, e.amount_fen, e.amount_fen,
      '缓存池 ' || to_char(e.bill_date, 'YYYY-MM-DD') || ' 起未见于渠道账单 / not in the channel''s files since ' || to_char(e.bill_date, 'YYYY-MM-DD'), 'open'
    FROM e
    ON CONFLICT (batch_id, type, ref_id) DO NOTHING`.execute(q);
}

export interface FeeCandidate {
  row_no: number; kind: number; ref_id: string; pay_order_id: string; fee_e5: bigint; amount_fen: bigint; mch_no: string; way_code: string;
  channel_no: string | null; trade_time: string;
}

/** A page (by row_no) of matched rows, for fee checks done by an injected function. */
export async function feePage(q: Q, batchId: string, afterRowNo: number, limit: number): Promise<FeeCandidate[]> {
  const r = await sql<FeeCandidate>`SELECT r.row_no, r.kind, r.ref_id, r.pay_order_id, r.fee_e5, r.amount_fen, o.mch_no, o.way_code, r.channel_no, r.trade_time
    FROM recon_channel_rows r
    JOIN pay_orders o ON o.pay_order_id = r.pay_order_id
    LEFT JOIN pay_refunds f ON r.kind = 2 AND f.refund_order_id = r.ref_id
    WHERE r.batch_id = ${batchId} AND r.row_no > ${afterRowNo}
      AND ((r.kind = 1 AND r.status = 'SUCCESS' AND o.state IN (2, 5) AND o.amount = r.amount_fen)
        OR (r.kind = 2 AND f.state = 2 AND f.refund_amount = r.amount_fen))
    ORDER BY r.row_no LIMIT ${limit}`.execute(q);
  return r.rows;
}

export async function insertFeeMistakes(q: Q, batchId: string, ifCode: string, rows: Array<FeeCandidate & { expected: bigint }>): Promise<void> {
  if (rows.length === 0) return;
  await sql`INSERT INTO recon_mistakes (batch_id, type, kind, if_code, ref_id, row_no, pay_order_id, refund_order_id, mch_no,
      channel_amount_fen, platform_amount_fen, channel_fee_e5, expected_fee_e5, channel_no, trade_time, amount_fen, state)
    SELECT ${batchId}, CASE WHEN u.kind = 1 THEN 'FEE_MISMATCH' ELSE 'REFUND_FEE_MISMATCH' END, u.kind, ${ifCode}, u.ref_id, u.row_no, u.pay_order_id,
      CASE WHEN u.kind = 2 THEN u.ref_id END, u.mch_no, u.amount_fen, u.amount_fen, u.fee_e5, u.expected, u.channel_no, u.trade_time, u.amount_fen, 'auto_fixed'
    FROM unnest(${rows.map((r) => r.row_no)}::int4[], ${rows.map((r) => r.kind)}::int2[], ${rows.map((r) => r.ref_id)}::text[],
      ${rows.map((r) => r.pay_order_id)}::text[], ${rows.map((r) => r.mch_no)}::text[], ${rows.map((r) => r.amount_fen.toString())}::int8[],
      ${rows.map((r) => r.fee_e5.toString())}::int8[], ${rows.map((r) => r.expected.toString())}::int8[], ${rows.map((r) => r.channel_no)}::text[],
      ${rows.map((r) => r.trade_time)}::text[])
      AS u(row_no, kind, ref_id, pay_order_id, mch_no, amount_fen, fee_e5, expected, channel_no, trade_time)
    ON CONFLICT (batch_id, type, ref_id) DO NOTHING`.execute(q);
}

/** Fee mistakes of a batch: the fee record takes the channel's figure, with an audit line each. */
export async function recordFeeAdjustments(q: Q, batchId: string): Promise<void> {
  await sql`INSERT INTO recon_fee_adjustments (kind, ref_id, pay_order_id, expected_fee_e5, channel_fee_e5, mistake_id)
    SELECT kind, ref_id, pay_order_id, expected_fee_e5, channel_fee_e5, id FROM recon_mistakes
    WHERE batch_id = ${batchId} AND type IN ('FEE_MISMATCH', 'REFUND_FEE_MISMATCH')
    ON CONFLICT (kind, ref_id) DO UPDATE SET expected_fee_e5 = EXCLUDED.expected_fee_e5, channel_fee_e5 = EXCLUDED.channel_fee_e5,
      mistake_id = EXCLUDED.mistake_id, created_at = now()`.execute(q);
  await sql`INSERT INTO recon_decisions (mistake_id, actor, action, reason, before_json, after_json)
    SELECT m.id, 'recon', 'auto_fee_adjust', '手续费以渠道账单为准 / the fee record takes the channel''s figure',
      json_build_object('feeE5', m.expected_fee_e5::text)::text, json_build_object('feeE5', m.channel_fee_e5::text)::text
    FROM recon_mistakes m
    WHERE m.batch_id = ${batchId} AND m.type IN ('FEE_MISMATCH', 'REFUND_FEE_MISMATCH')
      AND NOT EXISTS (SELECT 1 FROM recon_decisions d WHERE d.mistake_id = m.id)`.execute(q);
}

// --- summaries ----------------------------------------------------------------------

export interface BatchCounts {
  platform_records: bigint; platform_total_fen: bigint;
  pool_added: bigint; pool_added_fen: bigint; pool_resolved: bigint; pool_resolved_fen: bigint;
}

export async function batchCounts(q: Q, p: ClassifyParams): Promise<BatchCounts> {
  const r = await sql<BatchCounts>`SELECT
      (SELECT count(*) FROM pay_orders WHERE success_at >= ${p.dayStart} AND success_at < ${p.dayEnd} AND if_code = ${p.ifCode} AND state IN (2, 5))
        + (SELECT count(*) FROM pay_refunds WHERE success_at >= ${p.dayStart} AND success_at < ${p.dayEnd} AND if_code = ${p.ifCode} AND state = 2) AS platform_records,
      (SELECT COALESCE(sum(amount), 0)::int8 FROM pay_orders WHERE success_at >= ${p.dayStart} AND success_at < ${p.dayEnd} AND if_code = ${p.ifCode} AND state IN (2, 5))
        - (SELECT COALESCE(sum(refund_amount), 0)::int8 FROM pay_refunds WHERE success_at >= ${p.dayStart} AND success_at < ${p.dayEnd} AND if_code = ${p.ifCode} AND state = 2) AS platform_total_fen,
      (SELECT count(*) FROM recon_pool WHERE added_batch_id = ${p.batchId} AND closed_batch_id IS DISTINCT FROM ${p.batchId}) AS pool_added,
      (SELECT COALESCE(sum(amount_fen), 0)::int8 FROM recon_pool WHERE added_batch_id = ${p.batchId} AND closed_batch_id IS DISTINCT FROM ${p.batchId}) AS pool_added_fen,
      (SELECT count(*) FROM recon_pool WHERE closed_batch_id = ${p.batchId} AND state = 'matched' AND added_batch_id IS DISTINCT FROM ${p.batchId}) AS pool_resolved,
      (SELECT COALESCE(sum(amount_fen), 0)::int8 FROM recon_pool WHERE closed_batch_id = ${p.batchId} AND state = 'matched' AND added_batch_id IS DISTINCT FROM ${p.batchId}) AS pool_resolved_fen`.execute(q);
  return r.rows[0];
}

export async function mistakeCounts(q: Q, batchId: string): Promise<Array<{ type: string; state: string; n: bigint; fen: bigint }>> {
  const r = await sql<{ type: string; state: string; n: bigint; fen: bigint }>`SELECT type, state, count(*) AS n, COALESCE(sum(amount_fen), 0)::int8 AS fen
    FROM recon_mistakes WHERE batch_id = ${batchId} GROUP BY type, state ORDER BY type, state`.execute(q);
  return r.rows;
}

// --- mistakes, pool, decisions ------------------------------------------------------

export async function findMistake(q: Q, id: bigint, forUpdate = false): Promise<MistakeRow | null> {
  const r = forUpdate
    ? await sql<MistakeRow>`SELECT * FROM recon_mistakes WHERE id = ${id} FOR UPDATE`.execute(q)
    : await sql<MistakeRow>`SELECT * FROM recon_mistakes WHERE id = ${id}`.execute(q);
  return r.rows[0] ?? null;
}

export async function listMistakes(q: Q, f: { batchId?: string; state?: string; type?: string; mchNo?: string }, limit: number): Promise<MistakeRow[]> {
  const r = await sql<MistakeRow>`SELECT * FROM recon_mistakes
    WHERE (${f.batchId ?? null}::text IS NULL OR batch_id = ${f.batchId ?? null})
      AND (${f.state ?? null}::text IS NULL OR state = ${f.state ?? null})
      AND (${f.type ?? null}::text IS NULL OR type = ${f.type ?? null})
      AND (${f.mchNo ?? null}::text IS NULL OR mch_no = ${f.mchNo ?? null})
    ORDER BY id LIMIT ${limit}`.execute(q);
  return r.rows;
}

export async function mistakesInState(q: Q, batchId: string, state: string): Promise<MistakeRow[]> {
  const r = await sql<MistakeRow>`SELECT * FROM recon_mistakes WHERE batch_id = ${batchId} AND state = ${state} ORDER BY id`.execute(q);
  return r.rows;
}

export async function setMistakeState(q: Q, id: bigint, state: string, side: string | null): Promise<void> {
  await sql`UPDATE recon_mistakes SET state = ${state}, resolved_side = ${side},
    resolved_at = CASE WHEN ${state} IN ('resolved', 'auto_fixed') THEN now() ELSE NULL END WHERE id = ${id}`.execute(q);
}

export async function insertDecision(q: Q, d: { mistakeId: bigint; actor: string; action: string; reason: string; before: unknown; after: unknown; transferIds: string[] }): Promise<DecisionRow> {
  const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
  const r = await sql<DecisionRow>`INSERT INTO recon_decisions (mistake_id, actor, action, reason, before_json, after_json, transfer_ids)
    VALUES (${d.mistakeId}, ${d.actor}, ${d.action}, ${d.reason}, ${json(d.before)}, ${json(d.after)}, ${d.transferIds.length ? d.transferIds.join(',') : null})
    RETURNING *`.execute(q);
  return r.rows[0];
}

export async function listDecisions(q: Q, f: { mistakeId?: bigint }, limit: number): Promise<DecisionRow[]> {
  const r = await sql<DecisionRow>`SELECT * FROM recon_decisions WHERE (${f.mistakeId ?? null}::int8 IS NULL OR mistake_id = ${f.mistakeId ?? null})
    ORDER BY id DESC LIMIT ${limit}`.execute(q);
  return r.rows;
}

export async function listPool(q: Q, f: { ifCode?: string; state?: string }, limit: number): Promise<PoolRow[]> {
  const r = await sql<PoolRow>`SELECT if_code, kind, ref_id, pay_order_id, mch_no, amount_fen, to_char(bill_date, 'YYYY-MM-DD') AS bill_date, state,
      added_batch_id, closed_batch_id, created_at
    FROM recon_pool WHERE (${f.ifCode ?? null}::text IS NULL OR if_code = ${f.ifCode ?? null})
      AND (${f.state ?? null}::text IS NULL OR state = ${f.state ?? null})
    ORDER BY bill_date, ref_id LIMIT ${limit}`.execute(q);
  return r.rows;
}

export async function openHoldsByMerchant(q: Q): Promise<Array<{ mch_no: string; mistakes: bigint; amount_fen: bigint }>> {
  const r = await sql<{ mch_no: string; mistakes: bigint; amount_fen: bigint }>`SELECT mch_no, count(*) AS mistakes, sum(amount_fen)::int8 AS amount_fen
    FROM recon_mistakes WHERE state = 'open' AND mch_no IS NOT NULL GROUP BY mch_no ORDER BY mch_no`.execute(q);
  return r.rows;
}

// --- supervision accounts -----------------------------------------------------------

export async function upsertBankAccount(q: Q, a: { bankAccountNo: string; ledgerAccountId: string; normalSide: 'debit' | 'credit' }): Promise<void> {
  await sql`INSERT INTO recon_bank_accounts (bank_account_no, ledger_account_id, normal_side)
    VALUES (${a.bankAccountNo}, ${a.ledgerAccountId}, ${a.normalSide})
    ON CONFLICT (bank_account_no) DO UPDATE SET ledger_account_id = EXCLUDED.ledger_account_id, normal_side = EXCLUDED.normal_side`.execute(q);
}

export async function findBankAccount(q: Q, bankAccountNo: string): Promise<BankAccountRow | null> {
  const r = await sql<BankAccountRow>`SELECT * FROM recon_bank_accounts WHERE bank_account_no = ${bankAccountNo}`.execute(q);
  return r.rows[0] ?? null;
}

export async function isLedgerAccountBlocked(q: Q, ledgerAccountId: string): Promise<boolean> {
  const r = await sql<{ blocked: boolean }>`SELECT blocked FROM recon_bank_accounts WHERE ledger_account_id = ${ledgerAccountId}`.execute(q);
  return r.rows[0]?.blocked === true;
}

export async function setBankAccountBlocked(q: Q, bankAccountNo: string, blocked: boolean, reason: string | null): Promise<void> {
  await sql`UPDATE recon_bank_accounts SET blocked = ${blocked}, blocked_reason = ${reason}, blocked_at = CASE WHEN ${blocked} THEN now() ELSE NULL END
    WHERE bank_account_no = ${bankAccountNo}`.execute(q);
}

export async function openMistakesOfBatchChannel(q: Q, channel: string, mchAccount: string): Promise<bigint> {
  const r = await sql<{ n: bigint }>`SELECT count(*) AS n FROM recon_mistakes m JOIN recon_batches b ON b.batch_id = m.batch_id
    WHERE b.channel = ${channel} AND b.mch_account = ${mchAccount} AND m.state = 'open'`.execute(q);
  return r.rows[0].n;
}

export interface BankFlowRow { txnDate: string; serial: string | null; direction: 'in' | 'out'; amountFen: bigint; balanceFen: bigint | null }

export async function stageBankRows(q: Q, batchId: string, firstRowNo: number, rows: BankFlowRow[]): Promise<void> {
  if (rows.length === 0) return;
  await sql`INSERT INTO recon_bank_rows (batch_id, row_no, txn_date, serial, direction, amount_fen, balance_fen)
    SELECT ${batchId}, * FROM unnest(${rows.map((_r, i) => firstRowNo + i)}::int4[], ${rows.map((r) => r.txnDate)}::date[],
      ${rows.map((r) => r.serial)}::text[], ${rows.map((r) => r.direction)}::text[], ${rows.map((r) => r.amountFen.toString())}::int8[],
      ${rows.map((r) => (r.balanceFen === null ? null : r.balanceFen.toString()))}::int8[])`.execute(q);
}

/**
 * Flow-by-flow match of a bank statement against the ledger entries of the mirrored
 * account on that day: first by serial = the transfer's ref or id (same direction and
 * amount), then the rest by (direction, amount) in time order. Writes a mistake for
 * every flow on one side only; returns how many were written.
 */
export async function classifyBankRows(q: Q, p: { batchId: string; ledgerAccountId: string; normalSide: 'debit' | 'credit'; startNs: bigint; endNs: bigint }): Promise<{ matched: bigint }> {
  const inSide = p.normalSide === 'debit' ? 'debit' : 'credit';
  const r = await sql<{ matched: bigint }>`
    WITH l AS MATERIALIZED (
      SELECT t.id, t.ref, t.ts, t.amount AS amount_fen,
        CASE WHEN (t.debit_account_id = ${p.ledgerAccountId}) = (${inSide} = 'debit') THEN 'in' ELSE 'out' END AS direction
      FROM ledger_transfers t
      WHERE (t.debit_account_id = ${p.ledgerAccountId} OR t.credit_account_id = ${p.ledgerAccountId})
        AND t.failure IS NULL AND (t.flags & 10) = 0 AND t.amount > 0 AND t.ts >= ${p.startNs} AND t.ts < ${p.endNs}
    ),
    b AS MATERIALIZED (SELECT row_no, serial, direction, amount_fen FROM recon_bank_rows WHERE batch_id = ${p.batchId}),
    s AS MATERIALIZED (
      SELECT DISTINCT ON (b.row_no) b.row_no, l.id FROM b JOIN l ON b.serial IS NOT NULL AND (b.serial = l.ref OR b.serial = l.id)
        AND b.direction = l.direction AND b.amount_fen = l.amount_fen
      ORDER BY b.row_no, l.ts
    ),
    b2 AS (SELECT b.*, row_number() OVER (PARTITION BY direction, amount_fen ORDER BY row_no) AS rn FROM b WHERE row_no NOT IN (SELECT row_no FROM s)),
    l2 AS (SELECT l.*, row_number() OVER (PARTITION BY direction, amount_fen ORDER BY ts) AS rn FROM l WHERE id NOT IN (SELECT id FROM s)),
    pairs AS (
      SELECT b2.row_no, l2.id FROM b2 JOIN l2 ON b2.direction = l2.direction AND b2.amount_fen = l2.amount_fen AND b2.rn = l2.rn
      UNION ALL SELECT row_no, id FROM s
    ),
    ins AS (
      INSERT INTO recon_mistakes (batch_id, type, kind, if_code, ref_id, row_no, channel_amount_fen, platform_amount_fen, amount_fen, direction, detail, state)
      SELECT ${p.batchId}, 'SUPERVISION_LEDGER_MISSING', 3, ${p.ledgerAccountId}, 'row:' || b.row_no, b.row_no, b.amount_fen, NULL, b.amount_fen, b.direction,
        '银行流水 ' || b.direction || ' ' || b.amount_fen || ' 分在总账中没有 / a bank flow the ledger lacks' || COALESCE(' (serial ' || b.serial || ')', ''), 'open'
      FROM b WHERE b.row_no NOT IN (SELECT row_no FROM pairs)
      UNION ALL
      SELECT ${p.batchId}, 'SUPERVISION_BANK_MISSING', 3, ${p.ledgerAccountId}, l.id, NULL, NULL, l.amount_fen, l.amount_fen, l.direction,
        '总账分录 ' || l.direction || ' ' || l.amount_fen || ' 分不在银行流水中 / a ledger entry the bank statement lacks', 'open'
      FROM l WHERE l.id NOT IN (SELECT id FROM pairs)
      ON CONFLICT (batch_id, type, ref_id) DO NOTHING
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM pairs) AS matched, (SELECT count(*) FROM ins) AS mistakes`.execute(q);
  return { matched: r.rows[0].matched };
}

export async function lastBankBalance(q: Q, batchId: string): Promise<{ balance_fen: bigint | null; rows: bigint; in_fen: bigint; out_fen: bigint }> {
  const r = await sql<{ balance_fen: bigint | null; rows: bigint; in_fen: bigint; out_fen: bigint }>`SELECT
      (SELECT balance_fen FROM recon_bank_rows WHERE batch_id = ${batchId} AND balance_fen IS NOT NULL ORDER BY row_no DESC LIMIT 1) AS balance_fen,
      count(*) AS rows, COALESCE(sum(amount_fen) FILTER (WHERE direction = 'in'), 0)::int8 AS in_fen,
      COALESCE(sum(amount_fen) FILTER (WHERE direction = 'out'), 0)::int8 AS out_fen
    FROM recon_bank_rows WHERE batch_id = ${batchId}`.execute(q);
  return r.rows[0];
}

export async function insertMistake(q: Q, m: { batchId: string; type: string; kind: number; ifCode: string; refId: string; mchNo: string | null; channelAmountFen: bigint | null; platformAmountFen: bigint | null; amountFen: bigint; direction: string | null; detail: string }): Promise<void> {
  await sql`INSERT INTO recon_mistakes (batch_id, type, kind, if_code, ref_id, mch_no, channel_amount_fen, platform_amount_fen, amount_fen, direction, detail, state)
    VALUES (${m.batchId}, ${m.type}, ${m.kind}, ${m.ifCode}, ${m.refId}, ${m.mchNo}, ${m.channelAmountFen}, ${m.platformAmountFen}, ${m.amountFen}, ${m.direction}, ${m.detail}, 'open')
    ON CONFLICT (batch_id, type, ref_id) DO NOTHING`.execute(q);
}

