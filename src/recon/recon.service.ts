// Reconciliation (对账): a batch per (channel, merchant account, bill date) matches the
// channel's file against our pay orders and refunds set-wise, pools what the channel
// has not reported yet, types every difference as a mistake pointing at both records,
// fixes what is safe automatically (a payment the channel made and we missed goes
// through the normal success path; a fee takes the channel's figure), and leaves the
// rest to an operator, whose every decision is audited and, when it moves money,
// posted to the ledger in the same transaction.
import { performance } from 'node:perf_hooks';
import { transact, type Database, type Tx } from '../platform/db.ts';
import { AppError, badRequest, notFound } from '../platform/errors.ts';
import { businessNo } from '../platform/ids.ts';
import { assert } from '../platform/assert.ts';
import { cstDate, cstDayStart, isValidDate } from '../platform/time.ts';
import type { Ledger, TransferInput } from '../ledger/index.ts';
import { ACCOUNT_FLAGS } from '../ledger/index.ts';
import { ACCOUNT_CODE, LEDGER_CNY, accountIds } from '../payment/types.ts';
import type { PayOrderRow } from '../payment/payment.repo.ts';
import type { ChannelRecord } from './parse/wechat.ts';
import type { BankRecord } from './parse/bank.ts';
import { BillRejected } from './parse/wechat.ts';
import * as repo from './recon.repo.ts';
import { stageLine } from './stage-format.ts';

/**
 * How the parsed records of one file reach the batch: calls onRecord for each (or
 * onChunk with ready staging lines as UTF-8 bytes, see stage-format.ts); may throw
 * BillRejected. Re-invocable (a retried transaction reads the file again).
 */
export type RecordReader = (onRecord: (record: ChannelRecord) => void | Promise<void>, onChunk: (lines: Buffer, rows: number) => Promise<void>) => Promise<void>;

export interface ReconChannel {
  /** Our ifCode for this channel (pay_orders.if_code). */
  ifCode: string;
  /** The merchant account at the channel (商户号) a batch is for by default. */
  mchAccount: string;
  format: 'wechat' | 'alipay' | 'unionpay';
  /** The channel's fee rate (decimal string): our expected fee, unless expectedChannelFeeE5 is given. */
  feeRate: string;
}

export const DEFAULT_CHANNELS: Record<string, ReconChannel> = {
  sandbox: { ifCode: 'sandbox', mchAccount: '1900000109', format: 'wechat', feeRate: '0.006' },
  wechat: { ifCode: 'wxpay', mchAccount: 'default', format: 'wechat', feeRate: '0.006' },
  alipay: { ifCode: 'alipay', mchAccount: 'default', format: 'alipay', feeRate: '0.006' },
  unionpay: { ifCode: 'ysfpay', mchAccount: 'default', format: 'unionpay', feeRate: '0.006' },
};

export const RECON_QUEUE = 'recon-daily';
export const SUSPENSE_ACCOUNT = 'recon:suspense';
export const SUSPENSE_CODE = 1901;
export const RECON_TRANSFER_CODE = 191;
const STAGE_CHUNK = 8000;
const FIX_LIMIT = 100_000;
const FEE_PAGE = 10_000;
const LIST_MAX = 1000;

export interface Mistake {
  id: bigint; type: string; mchNo: string | null; amountFen: bigint; batchId: string; state: string;
}

export interface ReconOptions {
  db: Database;
  ledger: Ledger;
  /** The payment center's success path (orders.markPaid). */
  markPaid: (payOrderId: string, state: { status: string; channelOrderNo: string | null; amountFen: bigint | null; successAt: Date | null; channelUser: string | null }, source: 'recon') => Promise<PayOrderRow>;
  channels?: Record<string, ReconChannel>;
  /** Days a record may wait in the cache pool before it becomes CHANNEL_MISSING (default 3). */
  poolTtlDays?: number;
  /** Our expected channel fee in 1e-5 yuan; default: the channel's feeRate applied in SQL (half up, in fen). */
  expectedChannelFeeE5?: (order: { kind: 'payment' | 'refund'; payOrderId: string; refId: string; mchNo: string; wayCode: string; amountFen: bigint }) => bigint;
  /** Called inside the transaction that opens a mistake (settlement holds the funds). */
  onMistakeOpened?: (tx: Tx, mistake: Mistake) => Promise<void>;
  /** Called inside the transaction that resolves it (settlement releases the hold). */
  onMistakeResolved?: (tx: Tx, mistake: Mistake) => Promise<void>;
  /** Timings of a run's phases (benchmarks). */
  onPhase?: (phase: string, ms: number) => void;
}

export interface BatchSummary {
  batchId: string; channel: string; billDate: string; state: string;
  channelRecords: number; platformRecords: number; matched: number; poolAdded: number; poolResolved: number; autoFixed: number;
  mistakes: Record<string, number>;
  channelTotalFen: string; platformTotalFen: string; matchedFen: string; poolAddedFen: string; poolResolvedFen: string; mistakesFen: string;
  openMistakes: number;
}

export const reconErrors = {
  batchExists: (m: string) => new AppError('RECON_BATCH_EXISTS', 409, m),
  batchNotFound: (m: string) => notFound('RECON_BATCH_NOT_FOUND', m),
  fileRejected: (m: string, details?: unknown) => new AppError('RECON_FILE_REJECTED', 422, m, details),
  channelUnknown: (m: string) => badRequest('RECON_CHANNEL_UNKNOWN', m),
  dateInvalid: (m: string) => badRequest('RECON_DATE_INVALID', m),
  mistakeNotFound: (m: string) => notFound('RECON_MISTAKE_NOT_FOUND', m),
  mistakeNotOpen: (m: string) => new AppError('RECON_MISTAKE_NOT_OPEN', 409, m),
  reasonRequired: (m: string) => badRequest('RECON_REASON_REQUIRED', m),
  sideInvalid: (m: string) => badRequest('RECON_SIDE_INVALID', m),
  balanceShort: (m: string) => new AppError('RECON_BALANCE_SHORT', 409, m),
  bankAccountUnknown: (m: string) => notFound('RECON_BANK_ACCOUNT_UNKNOWN', m),
  formatUnsupported: (m: string) => new AppError('RECON_FORMAT_UNSUPPORTED', 422, m),
};

export type ReconService = ReturnType<typeof createReconService>;

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
const toMistake = (m: repo.MistakeRow): Mistake => ({ id: m.id, type: m.type, mchNo: m.mch_no, amountFen: m.amount_fen, batchId: m.batch_id, state: m.state });
const nextDate = (date: string) => cstDate(new Date(cstDayStart(date).getTime() + 86_400_000 + 3600_000));

export function createReconService(options: ReconOptions) {
  const { db, ledger } = options;
  const channels = options.channels ?? DEFAULT_CHANNELS;
  const ttlDays = options.poolTtlDays ?? 3;
  let phaseAt = performance.now();
  const prof = (phase: string) => {
    if (!options.onPhase) return;
    const now = performance.now();
    options.onPhase(phase, now - phaseAt);
    phaseAt = now;
  };
  assert(Number.isInteger(ttlDays) && ttlDays >= 1 && ttlDays <= 60, 'pool TTL between 1 and 60 days');

  function channelOf(channel: string): ReconChannel {
    const c = channels[channel];
    if (!c) throw reconErrors.channelUnknown(`未知渠道 / unknown channel "${channel}"; use one of ${Object.keys(channels).join(', ')}`);
    return c;
  }

  function checkDate(billDate: string) {
    if (!isValidDate(billDate)) throw reconErrors.dateInvalid(`账单日期格式应为 YYYY-MM-DD / bill date must be YYYY-MM-DD, got "${billDate}"`);
  }

  /** Creates a batch; a second one for the same (channel, account, date) is refused (409 RECON_BATCH_EXISTS). */
  async function createBatch(input: { channel: string; billDate: string; mchAccount?: string; source?: string | null }): Promise<repo.BatchRow> {
    const c = channelOf(input.channel);
    checkDate(input.billDate);
    const mchAccount = input.mchAccount ?? c.mchAccount;
    const batchId = businessNo('RB');
    const created = await repo.insertBatch(db.kysely, { batchId, channel: input.channel, mchAccount, billDate: input.billDate, ifCode: c.ifCode, source: input.source ?? null });
    const row = await repo.findBatchByKey(db.kysely, input.channel, mchAccount, input.billDate);
    assert(row !== null, 'batch exists after insert');
    if (!created) throw reconErrors.batchExists(`对账批次已存在 / a batch for ${input.channel} ${mchAccount} ${input.billDate} already exists (${row.batch_id}); re-run it instead`);
    return row;
  }

  async function getBatchRow(batchId: string): Promise<repo.BatchRow> {
    const b = await repo.findBatch(db.kysely, batchId);
    if (!b) throw reconErrors.batchNotFound(`对账批次不存在 / no batch ${batchId}`);
    return b;
  }

  /**
   * Runs (or re-runs) a batch. Staging and classification are one transaction: a
   * rejected file imports nothing and the batch records why. A batch already
   * classified is not classified again: a re-run finishes its automatic fixes and
   * returns the same summary.
   */
  async function runBatch(batchId: string, reader: RecordReader | null, hooks: { onRows?: (rows: number) => void; source?: string } = {}): Promise<BatchSummary> {
    const batch = await getBatchRow(batchId);
    if (batch.state !== 'classified' && batch.state !== 'done') {
      if (!reader) throw reconErrors.fileRejected(`没有对账文件 / no statement file for batch ${batchId}`);
      try {
        await transact(db, (tx) => classify(tx, batchId, reader, hooks));
      } catch (error) {
        if (error instanceof BillRejected) {
          await repo.updateBatch(db.kysely, batchId, { state: 'rejected', rejectCode: error.code, rejectMessage: error.message, run: true, source: hooks.source ?? null });
          throw reconErrors.fileRejected(`对账文件被拒，未导入任何记录 / the statement file was rejected, nothing imported: ${error.code}: ${error.message}`, { batchId, code: error.code });
        }
        if (!(error instanceof AppError)) await repo.updateBatch(db.kysely, batchId, { state: 'failed', rejectCode: 'RUN_FAILED', rejectMessage: (error as Error).message, run: true });
        throw error;
      }
    }
    await autoFix(batchId);
    const after = await getBatchRow(batchId);
    if (after.state === 'done' && after.summary) return JSON.parse(after.summary) as BatchSummary;
    prof('autofix');
    const summary = { ...(await summarize(after)), state: 'done' };
    prof('summarize');
    await repo.updateBatch(db.kysely, batchId, { state: 'done', summary: JSON.stringify(summary), finished: true, rejectCode: null, rejectMessage: null });
    return summary;
  }

  async function classify(tx: Tx, batchId: string, reader: RecordReader, hooks: { onRows?: (rows: number) => void; source?: string }): Promise<void> {
    phaseAt = performance.now();
    const batch = await repo.findBatch(tx, batchId, true);
    assert(batch !== null, 'batch exists');
    if (batch.state === 'classified' || batch.state === 'done') return; // another runner did it while we waited for the lock
    const c = channelOf(batch.channel);
    await repo.deleteStaged(tx, batchId);
    const dayStart = cstDayStart(batch.bill_date);
    const params: repo.ClassifyParams = {
      batchId, ifCode: batch.if_code, billDate: batch.bill_date, dayStart, dayEnd: new Date(dayStart.getTime() + 86_400_000),
      feeRate: options.expectedChannelFeeE5 ? null : c.feeRate, ttlDays,
    };
    await repo.setJoinMemory(tx, db.kind === 'postgres' ? 256 : 64);
    if (db.kind === 'postgres') await repo.jitOff(tx);
    let lines: string[] = [];
    let staged = 0;
    let inflight: Promise<void> = Promise.resolve();
    // One chunk staged on the transaction while the next one is parsed.
    const stage = async (text: Buffer, count: number) => {
      const first = staged;
      staged += count;
      await inflight;
      inflight = repo.stageText(tx, batchId, text, db.kind === 'postgres' ? 'copy' : 'insert').then((n) => {
        assert(n === count, 'every staged line is one row');
        hooks.onRows?.(first + count);
      });
      inflight.catch(() => undefined); // awaited below; never left unobserved if the reader fails first
    };
    const flush = () => {
      const text = Buffer.from(lines.join('\n'), 'utf8');
      const count = lines.length;
      lines = [];
      return count > 0 ? stage(text, count) : undefined;
    };
    try {
      await reader((r) => {
        lines.push(stageLine(staged + lines.length + 1, r));
        if (lines.length >= STAGE_CHUNK) return flush();
      }, stage);
      await flush();
    } catch (error) {
      await inflight.catch(() => undefined); // let the statement in flight finish before the rollback
      throw error;
    }
    await inflight;
    prof('staged');
    await repo.resolvePool(tx, params);
    await repo.classifyChannelRows(tx, params);
    prof('classify');
    if (options.expectedChannelFeeE5) await feesByFunction(tx, params);
    await repo.addToPool(tx, params);
    prof('addToPool');
    await repo.expirePool(tx, params);
    await repo.recordFeeAdjustments(tx, batchId);
    const counts = await repo.matchedOf(tx, batchId);
    // Working rows leave with the transaction that classified them (mistakes carry what they need).
    await repo.deleteStaged(tx, batchId);
    prof('expire+fees');
    if (options.onMistakeOpened) {
      for (const m of await repo.mistakesInState(tx, batchId, 'open')) await options.onMistakeOpened(tx, toMistake(m));
    }
    await repo.updateBatch(tx, batchId, {
      state: 'classified', run: true, source: hooks.source ?? batch.source, rejectCode: null, rejectMessage: null,
      matched: { n: counts.matched, fen: counts.matchedFen }, channel: { n: counts.rows, fen: counts.netFen },
    });
  }

  /** Fee check by the injected function: matched rows page by page (10k), mismatches inserted set-wise. */
  async function feesByFunction(tx: Tx, p: repo.ClassifyParams): Promise<void> {
    const expected = options.expectedChannelFeeE5 as NonNullable<ReconOptions['expectedChannelFeeE5']>;
    let after = -1;
    for (let page = 0; page < 10_000; page += 1) {
      const rows = await repo.feePage(tx, p.batchId, after, FEE_PAGE);
      if (rows.length === 0) return;
      const wrong = [];
      for (const r of rows) {
        const kind = r.kind === repo.KIND.payment ? 'payment' : 'refund';
        const fee = expected({ kind, payOrderId: r.pay_order_id, refId: r.ref_id, mchNo: r.mch_no, wayCode: r.way_code, amountFen: r.amount_fen });
        const signed = kind === 'refund' ? -fee : fee;
        if (signed !== r.fee_e5) wrong.push({ ...r, expected: signed });
      }
      await repo.insertFeeMistakes(tx, p.batchId, p.ifCode, wrong);
      after = rows[rows.length - 1].row_no;
    }
    assert(false, 'fee pages exceed the row limit');
  }

  /** PLATFORM_STATUS_BEHIND with equal amounts: the normal success path, recorded as recovered by reconciliation. */
  async function autoFix(batchId: string): Promise<void> {
    const fixing = await repo.mistakesInState(db.kysely, batchId, 'fixing');
    assert(fixing.length <= FIX_LIMIT, 'automatic fixes per batch are bounded');
    for (const m of fixing) {
      assert(m.pay_order_id !== null && m.channel_amount_fen !== null, 'a status-behind mistake points at the channel row and the order');
      const time = m.trade_time ?? '';
      const successAt = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(time) ? new Date(`${time.replace(' ', 'T')}+08:00`) : null;
      const order = await options.markPaid(m.pay_order_id, { status: 'success', channelOrderNo: m.channel_no, amountFen: m.channel_amount_fen, successAt, channelUser: null }, 'recon');
      const paid = order.state === 2 || order.state === 5;
      await transact(db, async (tx) => {
        const locked = await repo.findMistake(tx, m.id, true);
        if (!locked || locked.state !== 'fixing') return;
        await repo.setMistakeState(tx, m.id, paid ? 'auto_fixed' : 'open', null);
        await repo.insertDecision(tx, {
          mistakeId: m.id, actor: 'recon', action: paid ? 'auto_mark_paid' : 'auto_mark_paid_refused',
          reason: paid ? '渠道已支付，按正常成功流程补单 / the channel says paid: marked paid through the normal success path (ledger + merchant notification)'
            : `补单被拒，转人工 / the success path refused it (order state ${order.state}): left for an operator`,
          before: { state: 'fixing' }, after: { state: paid ? 'auto_fixed' : 'open', orderState: order.state, recoveredBy: order.recovered_by }, transferIds: paid ? [`pay:${m.pay_order_id}`] : [],
        });
        if (!paid && options.onMistakeOpened) await options.onMistakeOpened(tx, toMistake({ ...locked, state: 'open' }));
      });
    }
  }

  async function summarize(batch: repo.BatchRow): Promise<BatchSummary> {
    const dayStart = cstDayStart(batch.bill_date);
    const counts = await repo.batchCounts(db.kysely, {
      batchId: batch.batch_id, ifCode: batch.if_code, billDate: batch.bill_date, dayStart, dayEnd: new Date(dayStart.getTime() + 86_400_000), feeRate: null, ttlDays,
    });
    const byType = await repo.mistakeCounts(db.kysely, batch.batch_id);
    const mistakes: Record<string, number> = {};
    let autoFixed = 0;
    let open = 0;
    let mistakesFen = 0n;
    for (const m of byType) {
      mistakes[m.type] = (mistakes[m.type] ?? 0) + Number(m.n);
      if (m.state === 'auto_fixed') autoFixed += Number(m.n);
      if (m.state === 'open') open += Number(m.n);
      if (m.state !== 'auto_fixed' && !m.type.includes('FEE_MISMATCH')) mistakesFen += m.fen;
    }
    const channelRecords = Number(batch.channel_records ?? 0n);
    const matched = { n: batch.matched ?? 0n, fen: batch.matched_fen ?? 0n };
    return {
      batchId: batch.batch_id, channel: batch.channel, billDate: batch.bill_date, state: batch.state,
      channelRecords, platformRecords: Number(counts.platform_records), matched: Number(matched.n), poolAdded: Number(counts.pool_added),
      poolResolved: Number(counts.pool_resolved), autoFixed, mistakes,
      channelTotalFen: (batch.channel_total_fen ?? 0n).toString(), platformTotalFen: counts.platform_total_fen.toString(), matchedFen: matched.fen.toString(),
      poolAddedFen: counts.pool_added_fen.toString(), poolResolvedFen: counts.pool_resolved_fen.toString(), mistakesFen: mistakesFen.toString(), openMistakes: open,
    };
  }

  /** Finds or creates the day's batch and runs it (the daily job and `custos recon run`): safe to repeat. */
  async function runDay(input: { channel: string; billDate: string; mchAccount?: string; reader: RecordReader | null; source?: string; onRows?: (rows: number) => void }): Promise<BatchSummary> {
    const c = channelOf(input.channel);
    checkDate(input.billDate);
    const mchAccount = input.mchAccount ?? c.mchAccount;
    let batch = await repo.findBatchByKey(db.kysely, input.channel, mchAccount, input.billDate);
    if (!batch) {
      try {
        batch = await createBatch({ channel: input.channel, billDate: input.billDate, mchAccount, source: input.source ?? null });
      } catch (error) {
        if (!(error instanceof AppError) || error.code !== 'RECON_BATCH_EXISTS') throw error;
        batch = await repo.findBatchByKey(db.kysely, input.channel, mchAccount, input.billDate);
        assert(batch !== null, 'batch exists');
      }
    }
    return runBatch(batch.batch_id, input.reader, { onRows: input.onRows, source: input.source });
  }

  // --- manual handling ---------------------------------------------------------------

  async function ensureAccounts(tx: Tx, ids: string[]): Promise<void> {
    const defs = ids.map((id) => {
      if (id === SUSPENSE_ACCOUNT) return { id, ledger: LEDGER_CNY, code: SUSPENSE_CODE, flags: 0, ref: 'recon:suspense', metadata: null };
      if (id.startsWith('ch:')) return { id, ledger: LEDGER_CNY, code: ACCOUNT_CODE.channel_clearing, flags: 0, ref: `channel:${id.split(':')[1]}`, metadata: null };
      if (id.startsWith('mch:')) {
        return { id, ledger: LEDGER_CNY, code: ACCOUNT_CODE.merchant_pending, flags: ACCOUNT_FLAGS.debits_must_not_exceed_credits | ACCOUNT_FLAGS.history, ref: `merchant:${id.split(':')[1]}`, metadata: null };
      }
      return null;
    }).filter((d) => d !== null);
    if (defs.length === 0) return;
    const results = await ledger.createAccountsIn(tx, defs);
    results.forEach((r, i) => assert(r === 'ok' || r === 'exists', `recon account ${defs[i].id}: ${r}`));
  }

  /** The balancing transfer an operator's decision implies (null: nothing moves). Chart in docs/architecture.md. */
  function postingFor(m: repo.MistakeRow, side: 'channel' | 'platform', bank: repo.BankAccountRow | null): { debit: string; credit: string; amount: bigint } | null {
    if (side === 'platform') return null;
    const clearing = accountIds.channelClearing(m.if_code);
    const merchant = m.mch_no ? accountIds.merchantPending(m.mch_no) : SUSPENSE_ACCOUNT;
    const ch = m.channel_amount_fen ?? 0n;
    const ours = m.platform_amount_fen ?? 0n;
    switch (m.type) {
      case 'PLATFORM_MISSING':
      case 'PLATFORM_STATUS_BEHIND':
        return { debit: clearing, credit: SUSPENSE_ACCOUNT, amount: ch };
      case 'PLATFORM_STATUS_AHEAD':
      case 'CHANNEL_MISSING':
        return { debit: merchant, credit: clearing, amount: ours };
      case 'AMOUNT_OVER':
        return { debit: clearing, credit: SUSPENSE_ACCOUNT, amount: ch - ours };
      case 'AMOUNT_UNDER':
        return { debit: merchant, credit: clearing, amount: ours - ch };
      case 'REFUND_PLATFORM_MISSING':
      case 'REFUND_PLATFORM_STATUS_BEHIND':
        return { debit: SUSPENSE_ACCOUNT, credit: clearing, amount: ch };
      case 'REFUND_PLATFORM_STATUS_AHEAD':
      case 'REFUND_CHANNEL_MISSING':
        return { debit: clearing, credit: merchant, amount: ours };
      case 'REFUND_AMOUNT_OVER':
        return { debit: SUSPENSE_ACCOUNT, credit: clearing, amount: ch - ours };
      case 'REFUND_AMOUNT_UNDER':
        return { debit: clearing, credit: merchant, amount: ours - ch };
      case 'SUPERVISION_LEDGER_MISSING':
      case 'SUPERVISION_BANK_MISSING':
      case 'SUPERVISION_BALANCE_MISMATCH': {
        assert(bank !== null, 'a supervision mistake has its bank account');
        // Money into the bank account on the mirror's normal side; the bank's record stands.
        let inflow = m.direction === 'in';
        if (m.type === 'SUPERVISION_BANK_MISSING') inflow = !inflow; // undo the ledger's entry
        const acct = bank.ledger_account_id;
        const debitSide = (bank.normal_side === 'debit') === inflow;
        return debitSide ? { debit: acct, credit: SUSPENSE_ACCOUNT, amount: m.amount_fen } : { debit: SUSPENSE_ACCOUNT, credit: acct, amount: m.amount_fen };
      }
      default:
        return null;
    }
  }

  /** An operator takes the channel's side (or the bank's) or ours, with a reason; audited, and posted when money moves. */
  async function resolve(id: bigint, input: { side: string; reason: string; actor: string }) {
    if (input.side !== 'channel' && input.side !== 'platform') throw reconErrors.sideInvalid(`side 必须是 channel 或 platform / side must be "channel" (the channel's or bank's record stands) or "platform" (ours stands)`);
    const reason = (input.reason ?? '').trim();
    if (reason.length < 2) throw reconErrors.reasonRequired('必须填写处理原因 / a reason is required (--reason "…")');
    if (reason.length > 2000) throw reconErrors.reasonRequired('处理原因过长 / the reason is longer than 2000 characters');
    const side = input.side as 'channel' | 'platform';
    return transact(db, async (tx) => {
      const m = await repo.findMistake(tx, id, true);
      if (!m) throw reconErrors.mistakeNotFound(`差错不存在 / no mistake ${id}`);
      if (m.state !== 'open') throw reconErrors.mistakeNotOpen(`差错 ${id} 状态为 ${m.state}，无需处理 / mistake ${id} is ${m.state}, not open`);
      const batch = await repo.findBatch(tx, m.batch_id);
      assert(batch !== null, 'a mistake has its batch');
      const bank = m.kind === repo.KIND.supervision ? await repo.findBankAccount(tx, batch.mch_account) : null;
      const posting = postingFor(m, side, bank);
      const transferIds: string[] = [];
      if (posting && posting.amount !== 0n) {
        const a = posting.amount > 0n ? posting : { debit: posting.credit, credit: posting.debit, amount: -posting.amount };
        await ensureAccounts(tx, [a.debit, a.credit]);
        const transfer: TransferInput = {
          id: `recon:m${m.id}`, debit_account_id: a.debit, credit_account_id: a.credit, amount: a.amount, ledger: LEDGER_CNY,
          code: RECON_TRANSFER_CODE, flags: 0, pending_id: null, timeout_s: 0, ref: `recon:${m.type}:${m.ref_id}`, metadata: null,
        };
        const [r] = await ledger.applyInTransaction(tx, [transfer]);
        if (r === 'exceeds_credits') throw reconErrors.balanceShort(`账户 ${a.debit} 余额不足，无法过账 ${a.amount} 分 / ${a.debit} cannot cover ${a.amount} fen; nothing changed`);
        assert(r === 'ok' || r === 'exists', `recon posting for mistake ${m.id}: ${r}`);
        transferIds.push(transfer.id);
      }
      await repo.setMistakeState(tx, m.id, 'resolved', side);
      const decision = await repo.insertDecision(tx, {
        mistakeId: m.id, actor: input.actor, action: `resolve_${side}`, reason,
        before: { state: m.state, type: m.type, channelAmountFen: m.channel_amount_fen, platformAmountFen: m.platform_amount_fen },
        after: { state: 'resolved', side, posting: posting && posting.amount !== 0n ? { ...posting } : null }, transferIds,
      });
      if (options.onMistakeResolved) await options.onMistakeResolved(tx, toMistake({ ...m, state: 'resolved' }));
      if (bank && (await repo.openMistakesOfBatchChannel(tx, 'bank', bank.bank_account_no)) === 0n) {
        await repo.setBankAccountBlocked(tx, bank.bank_account_no, false, null);
      }
      const after = await repo.findMistake(tx, m.id);
      return { mistake: after as repo.MistakeRow, decision };
    });
  }

  // --- supervision accounts (日终对账) ----------------------------------------------

  async function mapBankAccount(input: { bankAccountNo: string; ledgerAccountId: string; normalSide: 'debit' | 'credit' }): Promise<void> {
    if (!/^[0-9A-Za-z-]{4,40}$/.test(input.bankAccountNo)) throw badRequest('RECON_BANK_ACCOUNT_INVALID', 'bank account number: 4–40 letters or digits');
    if (input.normalSide !== 'debit' && input.normalSide !== 'credit') throw badRequest('RECON_BANK_ACCOUNT_INVALID', 'normalSide must be debit or credit');
    await ledger.getAccount(input.ledgerAccountId);
    await repo.upsertBankAccount(db.kysely, input);
  }

  /**
   * The bank's statement of a supervision account for one day against the ledger's
   * entries of its mirror account: flow by flow and the closing balance. Any
   * difference opens a mistake and blocks disbursements from that account.
   */
  async function runSupervision(input: { bankAccountNo: string; billDate: string; records: Iterable<BankRecord>; closingBalanceFen?: bigint | null }): Promise<BatchSummary & { blocked: boolean; bankClosingFen: string | null; ledgerClosingFen: string }> {
    checkDate(input.billDate);
    const bank = await repo.findBankAccount(db.kysely, input.bankAccountNo);
    if (!bank) throw reconErrors.bankAccountUnknown(`监管账户未登记 / bank account ${input.bankAccountNo} is not mapped to a ledger account`);
    let batch = await repo.findBatchByKey(db.kysely, 'bank', bank.bank_account_no, input.billDate);
    if (!batch) {
      await repo.insertBatch(db.kysely, { batchId: businessNo('RS'), channel: 'bank', mchAccount: bank.bank_account_no, billDate: input.billDate, ifCode: bank.ledger_account_id, source: 'bank statement' });
      batch = await repo.findBatchByKey(db.kysely, 'bank', bank.bank_account_no, input.billDate);
      assert(batch !== null, 'batch exists');
    }
    const batchId = batch.batch_id;
    const startNs = BigInt(cstDayStart(input.billDate).getTime()) * 1_000_000n;
    const endNs = startNs + 86_400_000_000_000n;
    const ledgerBalance = await ledger.balanceAt(bank.ledger_account_id, endNs - 1n);
    const ledgerClosing = bank.normal_side === 'debit' ? ledgerBalance.debits_posted - ledgerBalance.credits_posted : ledgerBalance.credits_posted - ledgerBalance.debits_posted;
    let matched = 0n;
    await transact(db, async (tx) => {
      const locked = await repo.findBatch(tx, batchId, true);
      if (!locked || locked.state === 'done') return;
      await repo.deleteStaged(tx, batchId);
      let chunk: repo.BankFlowRow[] = [];
      let n = 0;
      for (const f of input.records) {
        chunk.push(bankFlowOf(f));
        if (chunk.length >= STAGE_CHUNK) {
          await repo.stageBankRows(tx, batchId, n, chunk);
          n += chunk.length;
          chunk = [];
        }
      }
      await repo.stageBankRows(tx, batchId, n, chunk);
      ({ matched } = await repo.classifyBankRows(tx, { batchId, ledgerAccountId: bank.ledger_account_id, normalSide: bank.normal_side, startNs, endNs }));
      const stated = await repo.lastBankBalance(tx, batchId);
      const bankClosing = input.closingBalanceFen ?? stated.balance_fen;
      if (bankClosing !== null && bankClosing !== ledgerClosing) {
        const diff = bankClosing - ledgerClosing;
        await repo.insertMistake(tx, {
          batchId, type: 'SUPERVISION_BALANCE_MISMATCH', kind: repo.KIND.supervision, ifCode: bank.ledger_account_id, refId: 'closing', mchNo: null,
          channelAmountFen: bankClosing, platformAmountFen: ledgerClosing, amountFen: diff < 0n ? -diff : diff, direction: diff > 0n ? 'in' : 'out',
          detail: `银行日终余额 ${bankClosing} 分，总账 ${ledgerClosing} 分 / bank closing balance ${bankClosing} fen, ledger ${ledgerClosing} fen`,
        });
      }
      const open = await repo.mistakesInState(tx, batchId, 'open');
      if (open.length > 0) {
        await repo.setBankAccountBlocked(tx, bank.bank_account_no, true, `对账差错 ${open.length} 笔（批次 ${batchId}）/ ${open.length} open reconciliation mistakes in ${batchId}`);
        if (options.onMistakeOpened) for (const m of open) await options.onMistakeOpened(tx, toMistake(m));
      }
      await repo.updateBatch(tx, batchId, { state: 'classified', run: true, matched: { n: matched, fen: 0n } });
    });
    const after = await getBatchRow(batchId);
    let summary: BatchSummary;
    if (after.state === 'done' && after.summary) summary = JSON.parse(after.summary) as BatchSummary;
    else {
      const stats = await repo.lastBankBalance(db.kysely, batchId);
      const byType = await repo.mistakeCounts(db.kysely, batchId);
      const mistakes: Record<string, number> = {};
      for (const m of byType) mistakes[m.type] = (mistakes[m.type] ?? 0) + Number(m.n);
      summary = {
        batchId, channel: 'bank', billDate: input.billDate, state: 'done', channelRecords: Number(stats.rows), platformRecords: 0, matched: Number(after.matched ?? 0n),
        poolAdded: 0, poolResolved: 0, autoFixed: 0, mistakes, channelTotalFen: (stats.in_fen - stats.out_fen).toString(), platformTotalFen: '0',
        matchedFen: '0', poolAddedFen: '0', poolResolvedFen: '0', mistakesFen: byType.reduce((s, m) => s + m.fen, 0n).toString(), openMistakes: byType.filter((m) => m.state === 'open').reduce((s, m) => s + Number(m.n), 0),
      };
      await repo.updateBatch(db.kysely, batchId, { state: 'done', summary: JSON.stringify(summary), finished: true });
    }
    const account = await repo.findBankAccount(db.kysely, input.bankAccountNo);
    const stated = await repo.lastBankBalance(db.kysely, batchId);
    return { ...summary, blocked: account?.blocked === true, bankClosingFen: (input.closingBalanceFen ?? stated.balance_fen)?.toString() ?? null, ledgerClosingFen: ledgerClosing.toString() };
  }

  /** For disbursements (the fund module): true while the bank account behind this ledger account has an open difference. */
  async function isAccountBlocked(ledgerAccountId: string): Promise<boolean> {
    return repo.isLedgerAccountBlocked(db.kysely, ledgerAccountId);
  }

  // --- queries for the console ----------------------------------------------------------

  async function getBatch(batchId: string) {
    const b = await getBatchRow(batchId);
    const byType = await repo.mistakeCounts(db.kysely, batchId);
    return { batch: b, summary: b.summary ? (JSON.parse(b.summary) as BatchSummary) : null, mistakesByState: byType };
  }

  return {
    channels, ttlDays, createBatch, runBatch, runDay, resolve, getBatch,
    listBatches: (f: { channel?: string; state?: string }, limit = 200) => repo.listBatches(db.kysely, f, Math.min(limit, LIST_MAX)),
    listMistakes: (f: { batchId?: string; state?: string; type?: string; mchNo?: string }, limit = 200) => repo.listMistakes(db.kysely, f, Math.min(limit, LIST_MAX)),
    listPool: (f: { ifCode?: string; state?: string }, limit = 200) => repo.listPool(db.kysely, f, Math.min(limit, LIST_MAX)),
    listDecisions: (f: { mistakeId?: bigint }, limit = 200) => repo.listDecisions(db.kysely, f, Math.min(limit, LIST_MAX)),
    openHoldsByMerchant: () => repo.openHoldsByMerchant(db.kysely),
    mapBankAccount, runSupervision, isAccountBlocked, nextDate,
  };
}

/** A bank statement row as a flow of the account: credit (贷) is money in; a negative amount (冲正) reverses the direction. */
export function bankFlowOf(r: BankRecord): repo.BankFlowRow {
  const negative = r.amountFen < 0n;
  const inflow = (r.direction === 'credit') !== negative;
  return { txnDate: r.date, serial: r.serialNo === '' ? null : r.serialNo, direction: inflow ? 'in' : 'out', amountFen: negative ? -r.amountFen : r.amountFen, balanceFen: r.balanceFen };
}

export { json as reconJson };
