// Risk rules (风控规则) on order creation: blocklists refuse; per-merchant single and
// daily limits, per-payer velocity and an amount far above the merchant's pattern each
// either refuse the order or let it pay and hold its settlement for review. Rules live
// in risk_rules (a merchant's row, else the default row '*'); a rule with NULL is off.
import type { Database, Tx } from '../platform/db.ts';
import type { Clock } from '../platform/clock.ts';
import { cstDate, cstDayStart } from '../platform/time.ts';
import type { PaymentCenter, PayOrderRow, UnifiedOrderInput } from '../payment/index.ts';
import * as repo from './risk.repo.ts';
import { riskErrors } from './risk.errors.ts';

export type RuleName = 'single' | 'daily' | 'velocity' | 'pattern';
interface Hit { rule: RuleName; action: repo.RuleAction; message: string }

/** The minimum history the pattern rule needs before it judges (fewer orders: no pattern yet). */
const PATTERN_MIN_SAMPLES = 5;
const PAYER_KEY_MAX = 128;
/**
 * Order checks read rules and blocklists from an in-memory snapshot instead of two
 * queries per order (those halved the merchant API's throughput: docs/benchmarks.md).
 * A change through the admin API applies at once in its own process and within
 * SNAPSHOT_TTL_MS in the others. Beyond SNAPSHOT_ROWS_MAX rows a table is read per
 * order as before.
 */
const SNAPSHOT_TTL_MS = 2000;
const SNAPSHOT_ROWS_MAX = 20_000;

interface Snapshot {
  loadedAtMs: number;
  /** null: too many rows to hold, ask the database. */
  rules: Map<string, repo.RuleRow> | null;
  blocks: Set<string> | null;
}
const blockKey = (kind: repo.BlockKind, value: string) => `${kind}\u0000${value}`;

export interface RulesDeps {
  db: Database;
  clock: Clock;
  payment: () => Pick<PaymentCenter, 'reads'>;
  placeHold: (tx: Tx, h: { ref: string; mchNo: string; amountFen: bigint; reason: 'risk'; note: string }) => Promise<unknown>;
}

/** The payer's account as the order carries it: an openid / buyer id in channelExtra. */
export function payerAccountOf(channelExtra: string | null): string | null {
  if (!channelExtra) return null;
  try {
    const extra = JSON.parse(channelExtra) as Record<string, unknown>;
    for (const key of ['openid', 'openId', 'subOpenid', 'buyerUserId', 'buyerId', 'userId']) {
      const v = extra[key];
      if (typeof v === 'string' && v !== '') return v.slice(0, PAYER_KEY_MAX);
    }
  } catch {
    // not JSON: no payer account
  }
  return null;
}

export function createRules(deps: RulesDeps) {
  const now = () => new Date(Number(deps.clock.nowNs() / 1_000_000n));
  let snapshot: Snapshot | null = null;
  let loading: Promise<Snapshot> | null = null;
  let generation = 0;

  async function load(): Promise<Snapshot> {
    const started = generation;
    const loadedAtMs = performance.now();
    const [rules, blocks] = await Promise.all([
      repo.listRules(deps.db.kysely, SNAPSHOT_ROWS_MAX + 1), repo.listBlocks(deps.db.kysely, SNAPSHOT_ROWS_MAX + 1),
    ]);
    const next: Snapshot = {
      loadedAtMs,
      rules: rules.length > SNAPSHOT_ROWS_MAX ? null : new Map(rules.map((r) => [r.mch_no, r])),
      blocks: blocks.length > SNAPSHOT_ROWS_MAX ? null : new Set(blocks.map((b) => blockKey(b.kind, b.value))),
    };
    // A change made while this load ran is not in it: keep it for this caller only.
    if (started === generation) snapshot = next;
    return next;
  }

  /** The snapshot, reloaded (one load at a time) when older than SNAPSHOT_TTL_MS. Age is monotonic time, not business time. */
  async function current(): Promise<Snapshot> {
    if (snapshot && performance.now() - snapshot.loadedAtMs < SNAPSHOT_TTL_MS) return snapshot;
    loading ??= load().finally(() => { loading = null; });
    return loading;
  }

  async function blocksOf(keys: Array<{ kind: repo.BlockKind; value: string }>): Promise<Array<{ kind: repo.BlockKind }>> {
    const snap = await current();
    if (snap.blocks === null) return repo.findBlocks(deps.db.kysely, keys);
    const blocks = snap.blocks;
    return keys.filter((k) => blocks.has(blockKey(k.kind, k.value)));
  }

  async function rulesOf(mchNo: string): Promise<repo.RuleRow | null> {
    const snap = await current();
    if (snap.rules === null) return repo.findRules(deps.db.kysely, mchNo);
    return snap.rules.get(mchNo) ?? snap.rules.get('*') ?? null;
  }

  async function evaluate(rules: repo.RuleRow, input: UnifiedOrderInput, payer: { ip: string | null; account: string | null }): Promise<Hit[]> {
    const hits: Hit[] = [];
    const amount = input.amount;
    if (rules.single_max_fen !== null && amount > rules.single_max_fen) {
      hits.push({ rule: 'single', action: rules.single_action, message: `单笔金额 ${amount} 分超过上限 ${rules.single_max_fen} 分 / amount above the single-order limit of ${rules.single_max_fen} fen` });
    }
    if (rules.daily_max_fen !== null) {
      const today = await deps.payment().reads.merchantPaidSince(input.mchNo, cstDayStart(cstDate(now())));
      if (today + amount > rules.daily_max_fen) {
        hits.push({ rule: 'daily', action: rules.daily_action, message: `今日累计 ${today} 分，加本单超过日限额 ${rules.daily_max_fen} 分 / today's ${today} fen plus this order exceeds the daily limit of ${rules.daily_max_fen} fen` });
      }
    }
    if (rules.velocity_max !== null && (payer.ip || payer.account)) {
      const counts = await repo.countPayerChecks(deps.db.kysely, payer, new Date(now().getTime() - rules.velocity_window_s * 1000));
      if (Math.max(counts.byIp, counts.byAccount) >= rules.velocity_max) {
        hits.push({ rule: 'velocity', action: rules.velocity_action, message: `付款人 ${rules.velocity_window_s} 秒内已下单 ${Math.max(counts.byIp, counts.byAccount)} 次，超过 ${rules.velocity_max} 次 / the payer placed too many orders (limit ${rules.velocity_max} per ${rules.velocity_window_s} s); try later` });
      }
    }
    if (rules.pattern_factor !== null) {
      const recent = await deps.payment().reads.recentPaidAmounts(input.mchNo, rules.pattern_samples);
      if (recent.length >= PATTERN_MIN_SAMPLES) {
        const meanFen = recent.reduce((s, a) => s + a, 0n) / BigInt(recent.length);
        if (amount > BigInt(rules.pattern_factor) * meanFen) {
          hits.push({ rule: 'pattern', action: rules.pattern_action, message: `金额 ${amount} 分超过该商户近 ${recent.length} 笔均值 ${meanFen} 分的 ${rules.pattern_factor} 倍 / amount is more than ${rules.pattern_factor}× the merchant's recent mean of ${meanFen} fen` });
        }
      }
    }
    return hits;
  }

  /** PaymentOptions.checkOrder: throws RISK_BLOCKED / RISK_LIMIT_EXCEEDED, or records the order (with rules to hold on payment). */
  async function checkOrder(input: UnifiedOrderInput): Promise<void> {
    const payer = { ip: input.clientIp ? input.clientIp.slice(0, PAYER_KEY_MAX) : null, account: payerAccountOf(input.channelExtra) };
    const keys: Array<{ kind: repo.BlockKind; value: string }> = [{ kind: 'merchant', value: input.mchNo }];
    if (payer.ip) keys.push({ kind: 'ip', value: payer.ip });
    if (payer.account) keys.push({ kind: 'payer', value: payer.account });
    const blocked = await blocksOf(keys);
    if (blocked.length > 0) {
      const b = blocked[0];
      throw riskErrors.blocked(`风控拦截：${b.kind === 'merchant' ? '商户' : b.kind === 'ip' ? '付款 IP' : '付款账户'}已被列入黑名单 / refused: the ${b.kind === 'payer' ? 'payer account' : b.kind === 'ip' ? 'payer IP' : 'merchant'} is blocked; contact the platform operator`);
    }
    // No rules for the merchant: two reads per order, nothing written (velocity counts from when a rule applies).
    const rules = await rulesOf(input.mchNo);
    if (!rules) return;
    // A retry of an order already let through gets the same answer (the payment center dedupes the order).
    if (await repo.findCheck(deps.db.kysely, input.mchNo, input.mchOrderNo)) return;
    const hits = await evaluate(rules, input, payer);
    const refused = hits.find((h) => h.action === 'refuse');
    if (refused) throw riskErrors.limitExceeded(`风控拒绝 / refused by risk rule "${refused.rule}": ${refused.message}`);
    const held = hits.filter((h) => h.action === 'hold');
    await repo.insertCheck(deps.db.kysely, {
      mch_no: input.mchNo, mch_order_no: input.mchOrderNo, amount_fen: input.amount, payer_ip: payer.ip, payer_account: payer.account,
      hold_rules: held.length > 0 ? JSON.stringify(held.map((h) => ({ rule: h.rule, message: h.message }))) : null, checked_at: now(),
    });
  }

  /** Inside the payment-success transaction: an order a hold-action rule matched gets its settlement held and an alert. */
  async function onPaid(tx: Tx, order: PayOrderRow): Promise<void> {
    const check = await repo.findCheck(tx, order.mch_no, order.mch_order_no, true);
    if (!check || !check.hold_rules || check.held) return;
    const ref = `risk:rule:${order.pay_order_id}`;
    const rules = (JSON.parse(check.hold_rules) as Array<{ rule: string; message: string }>);
    await deps.placeHold(tx, { ref, mchNo: order.mch_no, amountFen: order.amount, reason: 'risk', note: `rules: ${rules.map((r) => r.rule).join(',')}` });
    await repo.setHeld(tx, order.mch_no, order.mch_order_no);
    await repo.upsertAlert(tx, {
      monitor: 'rule_hold', subject: order.pay_order_id, mch_no: order.mch_no, amount_fen: order.amount, hold_ref: ref,
      summary: `订单 ${order.pay_order_id} 命中风控规则 ${rules.map((r) => r.rule).join('、')}，结算已冻结待审 / risk rule matched; settlement held for review`,
      details: JSON.stringify({ payOrderId: order.pay_order_id, mchOrderNo: order.mch_order_no, amountFen: order.amount.toString(), rules }),
    });
  }

  /** After a change to rules or blocklists (admin API): the next order check reloads. */
  function invalidate(): void {
    generation += 1;
    snapshot = null;
    loading = null; // a load already running may predate the change: the next check starts its own
  }

  return { checkOrder, onPaid, evaluate, invalidate };
}

export type Rules = ReturnType<typeof createRules>;
