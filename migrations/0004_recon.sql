-- Reconciliation (对账): batches, the channel's rows as staged from its bill, the cache
-- pool of our records the channel has not reported yet, typed mistakes that point at
-- both sides, every decision on them (audit), fee adjustments, and the supervision
-- bank accounts (日终对账) with their staged statement flows. Money is int8 fen; a
-- WeChat fee is int8 in 1e-5 yuan (fee_e5).

-- One batch per (channel, merchant account, bill date): the unique key refuses a
-- second one. state: running | classified | done | rejected | failed.
CREATE TABLE recon_batches (
  batch_id          text COLLATE "C" PRIMARY KEY,
  channel           text NOT NULL,
  mch_account       text NOT NULL,
  bill_date         date NOT NULL,
  if_code           text NOT NULL,
  state             text NOT NULL,
  source            text,
  reject_code       text,
  reject_message    text,
  -- channel rows that agreed on status and amount, counted when classified
  channel_records   int8,
  channel_total_fen int8,
  matched           int8,
  matched_fen       int8,
  summary           text,
  runs              int4 NOT NULL DEFAULT 0,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  finished_at       timestamptz,
  UNIQUE (channel, mch_account, bill_date)
);

-- The channel's rows of a batch, as parsed (kind 1 payment, 2 refund). ref_id is our
-- number the row is keyed by: pay_order_id for a payment, refund_order_id for a refund.
-- Working data of a run: UNLOGGED and without an index (bulk staging at C speed, the
-- classification hash-joins it); a crash may empty it, which is why a mistake copies
-- the channel's fields it needs (amount, fee, channel number, time) and a classified
-- batch keeps its result without it.
CREATE UNLOGGED TABLE recon_channel_rows (
  batch_id      text COLLATE "C" NOT NULL,
  row_no        int4 NOT NULL,
  kind          int2 NOT NULL,
  ref_id        text COLLATE "C" NOT NULL,
  pay_order_id  text COLLATE "C" NOT NULL,
  channel_no    text,
  amount_fen    int8 NOT NULL,
  fee_e5        int8 NOT NULL,
  status        text NOT NULL,
  trade_time    text NOT NULL
);

-- Our records the channel's file lacked (a payment at 23:59:58 may be in the next
-- day's file). state: open | matched | expired. A row matched early (the channel
-- reported it the day before our success date) is written as matched, so the later
-- day does not pool it.
CREATE TABLE recon_pool (
  if_code          text NOT NULL,
  kind             int2 NOT NULL,
  ref_id           text COLLATE "C" NOT NULL,
  pay_order_id     text COLLATE "C" NOT NULL,
  mch_no           text COLLATE "C",
  amount_fen       int8 NOT NULL,
  bill_date        date NOT NULL,
  state            text NOT NULL,
  added_batch_id   text COLLATE "C",
  closed_batch_id  text COLLATE "C",
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (if_code, kind, ref_id)
);
CREATE INDEX recon_pool_open ON recon_pool (if_code, bill_date) WHERE state = 'open';
CREATE INDEX recon_pool_closed ON recon_pool (closed_batch_id) WHERE closed_batch_id IS NOT NULL;
CREATE INDEX recon_pool_added ON recon_pool (added_batch_id);

-- Typed mistakes (差错). type carries the REFUND_ prefix for refunds (kind says the
-- same); the bank account ones start with SUPERVISION_. They point at the channel's
-- row (batch_id + row_no) and at our order / refund. state: open | fixing |
-- auto_fixed | resolved. amount_fen is the money tied to it (held from settlement
-- while open).
CREATE TABLE recon_mistakes (
  id               bigserial PRIMARY KEY,
  batch_id         text COLLATE "C" NOT NULL,
  type             text NOT NULL,
  kind             int2 NOT NULL,
  if_code          text NOT NULL,
  ref_id           text COLLATE "C" NOT NULL,
  row_no           int4,
  pay_order_id     text COLLATE "C",
  refund_order_id  text COLLATE "C",
  mch_no           text COLLATE "C",
  channel_amount_fen   int8,
  platform_amount_fen  int8,
  channel_fee_e5   int8,
  expected_fee_e5  int8,
  channel_no       text,
  trade_time       text,
  amount_fen       int8 NOT NULL,
  -- bank flows: 'in' or 'out' as the bank account sees it
  direction        text,
  detail           text,
  state            text NOT NULL,
  resolved_side    text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  resolved_at      timestamptz,
  UNIQUE (batch_id, type, ref_id)
);
CREATE INDEX recon_mistakes_open ON recon_mistakes (state, mch_no) WHERE state IN ('open', 'fixing');
CREATE INDEX recon_mistakes_batch ON recon_mistakes (batch_id);

-- Every decision on a mistake, automatic or by an operator: who, when, why, before/after.
CREATE TABLE recon_decisions (
  id           bigserial PRIMARY KEY,
  mistake_id   int8 NOT NULL REFERENCES recon_mistakes (id),
  actor        text NOT NULL,
  action       text NOT NULL,
  reason       text NOT NULL,
  before_json  text NOT NULL,
  after_json   text NOT NULL,
  transfer_ids text,
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recon_decisions_mistake ON recon_decisions (mistake_id);

-- The channel fee as the channel charged it, where it differed from what we expected:
-- settlement's channel cost reads the adjusted figure from here.
CREATE TABLE recon_fee_adjustments (
  kind             int2 NOT NULL,
  ref_id           text COLLATE "C" NOT NULL,
  pay_order_id     text COLLATE "C" NOT NULL,
  expected_fee_e5  int8 NOT NULL,
  channel_fee_e5   int8 NOT NULL,
  mistake_id       int8 NOT NULL REFERENCES recon_mistakes (id),
  created_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, ref_id)
);

-- Supervision bank accounts: bank account number → the ledger account that mirrors it.
-- normal_side says which ledger side is money coming in (debit for an asset-like
-- mirror, credit for a liability-like one). A difference blocks disbursements.
CREATE TABLE recon_bank_accounts (
  bank_account_no     text PRIMARY KEY,
  ledger_account_id   text COLLATE "C" NOT NULL UNIQUE,
  normal_side         text NOT NULL CHECK (normal_side IN ('debit', 'credit')),
  blocked             boolean NOT NULL DEFAULT false,
  blocked_reason      text,
  blocked_at          timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now()
);

-- A bank statement's flows as staged for a supervision batch. direction: 'in' | 'out'.
-- Kept (logged): a day's statement is small and the mistakes point at its rows.
CREATE TABLE recon_bank_rows (
  batch_id     text COLLATE "C" NOT NULL,
  row_no       int4 NOT NULL,
  txn_date     date NOT NULL,
  serial       text,
  direction    text NOT NULL,
  amount_fen   int8 NOT NULL,
  balance_fen  int8,
  PRIMARY KEY (batch_id, row_no)
);

-- Our refunds of a bill date (the platform side of a batch); pay_orders has its own.
CREATE INDEX recon_pay_refunds_success_day ON pay_refunds (success_at) WHERE success_at IS NOT NULL;
