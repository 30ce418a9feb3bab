// The payment center (支付中心): wiring of its services and routes. Other modules use
// only what is exported here.
import type { FastifyInstance } from 'fastify';
import type { Database, Tx } from '../platform/db.ts';
import type { Jobs } from '../platform/jobs.ts';
import type { SecretBox } from '../platform/secrets.ts';
import { createOutbound, type Outbound } from '../platform/outbound.ts';
import type { Ledger } from '../ledger/index.ts';
import type { ChannelAdapter } from '../channel/contract.ts';
import { createChannels } from './channels.ts';
import { createPostings } from './postings.ts';
import { createMerchantService } from './merchant.service.ts';
import { createNotifyService } from './notify.service.ts';
import { createOrderService } from './order.service.ts';
import { createRefundService } from './refund.service.ts';
import { createTransferService } from './transfer.service.ts';
import { createDivisionService } from './division.service.ts';
import { jeepayRoutes } from './jeepay.routes.ts';
import { channelRoutes } from './channel.routes.ts';
import { cashierRoutes } from './cashier.routes.ts';
import { paymentAdminRoutes } from './admin.routes.ts';
import * as repo from './payment.repo.ts';
import type { PayOrderRow, RefundRow } from './payment.repo.ts';
import type { RateLimiter } from '../platform/ratelimit.ts';
import { createMerchantLimits, type LimitDefaults } from './limits.service.ts';
import { limitsRoutes } from './limits.routes.ts';
import type { UnifiedOrderInput } from './order.service.ts';

export interface PaymentOptions {
  db: Database;
  ledger: Ledger;
  jobs: Jobs;
  box: SecretBox;
  adapters: ChannelAdapter[];
  defaultIfCode: string;
  publicUrl: string;
  /** The client for merchant-supplied URLs; default: nothing but public addresses. */
  outbound?: Outbound;
  reqTimeWindowMs: number;
  notifyScheduleS?: number[];
  guard: (req: never) => Promise<void>;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
  onPaid?: (tx: Tx, order: PayOrderRow) => Promise<void>;
  /** Called before a new order is stored; throws an AppError to refuse it (risk rules). */
  checkOrder?: (input: UnifiedOrderInput) => Promise<void>;
  /** The injected clock, as a Date (polling and expiry); default: the system time. */
  now?: () => Date;
  /** Channel queries in flight at once per polling round (default 8). */
  pollConcurrency?: number;
  /** Called inside the refund-success transaction. */
  onRefunded?: (tx: Tx, refund: RefundRow) => Promise<void>;
  /** Per-merchant and per-app rate limits on the merchant API; absent = none. */
  rateLimiter?: RateLimiter;
  rateDefaults?: LimitDefaults;
}

export type PaymentCenter = ReturnType<typeof createPaymentCenter>;

export function createPaymentCenter(options: PaymentOptions) {
  const { db, jobs } = options;
  const channels = createChannels(options.adapters, options.defaultIfCode);
  const postings = createPostings(options.ledger);
  const outbound = options.outbound ?? createOutbound();
  const merchants = createMerchantService({ db, box: options.box, outbound });
  const notify = createNotifyService({ db, jobs, merchants, outbound, scheduleS: options.notifyScheduleS, log: options.log });
  const common = { db, channels, postings, notify, publicUrl: options.publicUrl };
  const now = options.now ?? (() => new Date());
  const concurrency = options.pollConcurrency ?? 8;
  const orders = createOrderService({ ...common, now, log: options.log, onPaid: options.onPaid, checkOrder: options.checkOrder });
  const refunds = createRefundService({ ...common, onRefunded: options.onRefunded });
  const transfers = createTransferService(common);
  const divisions = createDivisionService({ db, postings });
  const limits = createMerchantLimits({ db, limiter: options.rateLimiter ?? null, defaults: options.rateDefaults ?? { mchPerS: 200, appPerS: 200, windowS: 1 } });

  const routes: Array<(app: FastifyInstance) => Promise<void>> = [
    jeepayRoutes({ merchants, reqTimeWindowMs: options.reqTimeWindowMs, orders, refunds, transfers, divisions, onAuthenticated: limits.check, outbound }),
    channelRoutes({ db, channels, orders, refunds, transfers }),
    cashierRoutes({ db, orders }),
    paymentAdminRoutes({ db, merchants, notify, guard: options.guard }),
    limitsRoutes({ limits, guard: options.guard }),
  ];

  /**
   * One round of background checks: the open orders, refunds and transfers due on
   * their check schedule (at most `limit` of each), and lost notifications. With
   * `olderThanS` (a manual sweep), also every open one created that long ago, due or not.
   */
  async function poll(olderThanS?: number, limit = 200) {
    const at = now();
    const forceBefore = olderThanS === undefined ? null : new Date(at.getTime() - olderThanS * 1000);
    const round = { forceBefore, limit, concurrency, now: at };
    const orderResult = await orders.pollOpen(round);
    const refundsSettled = await refunds.pollOpen(round);
    const transfersSettled = await transfers.pollOpen(round);
    const requeued = await notify.sweep();
    return { ...orderResult, refundsSettled, transfersSettled, notificationsRequeued: requeued };
  }

  /** Set-wise reads for loss prevention (src/risk): bounded, read-only. */
  const reads = {
    paidOrdersSince: (since: Date, limit: number) => repo.paidOrdersSince(db.kysely, since, limit),
    refundTotalsSince: (since: Date, limit: number) => repo.refundTotalsSince(db.kysely, since, limit),
    stuckItems: (now: Date, notifyGraceS: number, openMaxS: number, limit: number) => repo.stuckItems(db.kysely, now, notifyGraceS, openMaxS, limit),
    merchantPaidSince: (mchNo: string, since: Date) => repo.merchantPaidSince(db.kysely, mchNo, since),
    recentPaidAmounts: (mchNo: string, n: number) => repo.recentPaidAmounts(db.kysely, mchNo, n),
  };

  return { channels, merchants, notify, orders, refunds, transfers, divisions, limits, routes, poll, reads };
}

export { PAY_STATE, ASYNC_STATE, LEDGER_CNY, accountIds, TRANSFER_CODE, ACCOUNT_CODE } from './types.ts';
export { sign, verify, canonicalString, type SignType } from './sign.ts';
export type { PayOrderRow, RefundRow, PaidOrderBrief, RefundTotals, StuckItem } from './payment.repo.ts';
export type { UnifiedOrderInput } from './order.service.ts';
