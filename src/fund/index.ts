// The maintenance fund (住宅专项维修资金): wiring of its services and routes. The
// register-and-deposits half lives here; the use-and-yield half (repairs, votes,
// approvals, apportionment, interest) adds its routes to `routes` below.
import { createHmac } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Database, Tx } from '../platform/db.ts';
import type { Clock } from '../platform/clock.ts';
import type { Ledger } from '../ledger/index.ts';
import type { PaymentCenter, PayOrderRow } from '../payment/index.ts';
import { fundGuard } from './access.ts';
import * as depositRepo from './deposit/deposit.repo.ts';
import { fundAccountIds } from './accounts.ts';
import { accountIds } from '../payment/index.ts';
import { createRegisterService } from './register/register.service.ts';
import { registerRoutes } from './register/register.routes.ts';
import { createDepositService } from './deposit/deposit.service.ts';
import { depositRoutes } from './deposit/deposit.routes.ts';
import { createReceiptService } from './receipt/receipt.service.ts';
import { createReports } from './report/report.ts';
import { h5Routes } from './h5/h5.routes.ts';
import { createFundInterest, createFundUse, fundUseRoutes } from './use/index.ts';
import { createPii } from './register/pii.ts';
import { outboxSmsSender, type SmsSender } from './proof/sms.ts';
import { createLimiter, type SigninLimits } from './proof/limiter.ts';
import { createOwnerSignin } from './proof/signin.ts';
import { proofRoutes } from './proof/proof.routes.ts';

export type { SmsSender, SmsMessage } from './proof/sms.ts';
export type { SigninLimits } from './proof/limiter.ts';

export interface FundOptions {
  db: Database;
  ledger: Ledger;
  clock: Clock;
  adminToken: string;
  /** The platform's master key: the receipt check-code key is derived from it. */
  masterKey: Buffer;
  publicUrl: string;
  /** True while the supervision account behind a ledger account has an open reconciliation difference (日终对账): payouts wait. */
  accountBlocked?: (ledgerAccountId: string) => Promise<boolean>;
  /** Sends owners' SMS codes; default: the fund_sms_outbox table (development and tests). */
  sms?: SmsSender;
  /** With the default outbox sender: also hand each message to this (the embedded demo prints it to its terminal). */
  smsEcho?: (line: string) => void;
  /** Owner sign-in failure limits (default: 5 per unit and 20 per IP in 15 min, locked 15 min; 5 SMS per unit per hour). */
  signinLimits?: Partial<SigninLimits>;
}

export type Fund = ReturnType<typeof createFund>;

/** Units read per city by supervisionBalances (a bound on the check, not on the fund). */
const SUPERVISION_UNITS_MAX = 200_000;

/**
 * The payment center needs the fund's onPaid handler and the fund needs the payment
 * center: create the fund first, then `attach(payment)` once the center exists.
 */
export function createFund(options: FundOptions) {
  const { db, ledger } = options;
  const guardDeps = { db, adminToken: options.adminToken, clock: options.clock };
  const guard = fundGuard(guardDeps);
  const pii = createPii(options.masterKey);
  const register = createRegisterService({ db, pii });
  const sms = options.sms ?? outboxSmsSender({ db, pii, clock: options.clock, echo: options.smsEcho });
  const limiter = createLimiter({ db, clock: options.clock, limits: options.signinLimits });
  const signin = createOwnerSignin({ db, clock: options.clock, pii, sms, limiter });
  const receipts = createReceiptService({ db, key: createHmac('sha256', options.masterKey).update('custos/fund/receipt/v1').digest(), publicUrl: options.publicUrl });
  const reports = createReports({ db });
  let deposits: ReturnType<typeof createDepositService> | null = null;
  const need = () => {
    if (!deposits) throw new Error('fund: attach(payment) before use');
    return deposits;
  };

  return {
    guard, register, receipts, reports, signin, sms, publicUrl: options.publicUrl,
    /** At start-up: seals owners' id numbers and phones still in clear (rows from before 0010). Returns rows rewritten. */
    async start(): Promise<number> {
      return register.sealLegacyOwners();
    },
    get deposits() {
      return need();
    },
    attach(payment: PaymentCenter) {
      deposits = createDepositService({ db, ledger, payment, publicUrl: options.publicUrl });
    },
    /** For PaymentOptions.onPaid: runs inside the payment-success transaction. */
    async onPaid(tx: Tx, order: PayOrderRow): Promise<void> {
      await need().onPaid(tx, order);
    },
    /**
     * For loss prevention: per city, what the fund owes (household principal + interest,
     * yield not yet allocated, approved repair money awaiting payout: credit balances) and
     * what backs it (the supervision bank account's debit balance, plus online deposits that
     * reached households through the fund merchant and sit at the channel). Equal when whole.
     */
    async supervisionBalances(unitsMax = SUPERVISION_UNITS_MAX) {
      const owners = await depositRepo.cityAccountOwners(db.kysely, unitsMax);
      const merchant = await depositRepo.findFundMerchant(db.kysely);
      const out: Array<{ city: string; owedFen: bigint; bankFen: bigint; inTransitFen: bigint; truncated: boolean }> = [];
      for (const o of owners) {
        const households = o.unit_ids.flatMap((u) => [fundAccountIds.principal(u), fundAccountIds.interest(u)]);
        const owed = await ledger.reads.sumPosted([...households, fundAccountIds.yield(o.city), ...o.application_ids.map((a) => fundAccountIds.payable(a))]);
        const bank = await ledger.reads.sumPosted([fundAccountIds.bank(o.city)]);
        const inTransit = merchant ? await ledger.reads.sumTransfersInto(accountIds.merchantPending(merchant.mch_no), households) : 0n;
        out.push({
          city: o.city, owedFen: owed.credits_posted - owed.debits_posted, bankFen: bank.debits_posted - bank.credits_posted, inTransitFen: inTransit,
          truncated: o.unit_ids.length >= unitsMax || o.application_ids.length >= unitsMax,
        });
      }
      return out;
    },
    /** Orders of the fund center's own merchant are household deposits, not merchant income (settlement skips them). */
    async ownsOrder(tx: Tx, order: { mch_no: string }): Promise<boolean> {
      return need().isFundMerchant(tx, order.mch_no);
    },
    get routes(): Array<(app: FastifyInstance) => Promise<void>> {
      const d = need();
      const use = createFundUse({ db, ledger, accountBlocked: options.accountBlocked, pii, clock: options.clock });
      return [
        registerRoutes({ db, pii, register, deposits: d, guard }),
        depositRoutes({ db, deposits: d, register, receipts, reports, guard }),
        h5Routes({ db, guardDeps, deposits: d, receipts, signin }),
        proofRoutes({ db, guard, use, limiter }),
        fundUseRoutes({ use, interest: createFundInterest({ db, ledger, clock: options.clock }), guard }),
      ];
    },
  };
}
