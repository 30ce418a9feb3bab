-- Clearing and settlement (清结算): fee rules, the fees of each paid order, parties
-- (who gets paid: a merchant, or a utility's collections held for it), settlement
-- entries with the day each becomes available (available_on), holds, settlement
-- batches, settlements, payouts, and the calendar's override table.
-- Money columns are int8 fen. A party id is the ledger account it is paid from.

-- Fee rules per merchant, app, wayCode and order category ('*' = any); the most
-- specific match wins. Channel cost rules per channel (if_code).
CREATE TABLE settle_fee_rules (
  mch_no      text COLLATE "C" NOT NULL,
  app_id      text COLLATE "C" NOT NULL DEFAULT '*',
  way_code    text NOT NULL DEFAULT '*',
  category    text NOT NULL DEFAULT '*',   -- * | ordinary | utility | repair
  rule        text NOT NULL,               -- FeeRule as JSON (bigints as strings)
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mch_no, app_id, way_code, category)
);

CREATE TABLE settle_channel_cost_rules (
  if_code     text PRIMARY KEY,
  rule        text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Who is paid. kind merchant: party_id = mch:<mchNo>:pending; kind utility (代收水电):
-- party_id = util:<mchNo>:<bureau>, the bureau's collections through that merchant.
CREATE TABLE settle_parties (
  party_id        text COLLATE "C" PRIMARY KEY,
  kind            text NOT NULL CHECK (kind IN ('merchant', 'utility')),
  mch_no          text COLLATE "C" NOT NULL,
  bureau          text,
  name            text NOT NULL,
  cycle           text NOT NULL CHECK (cycle IN ('T0', 'T1', 'D1', 'weekly', 'monthly', 'manual')),
  min_payout_fen  int8 NOT NULL DEFAULT 1 CHECK (min_payout_fen >= 1),
  confirm         text NOT NULL DEFAULT 'auto' CHECK (confirm IN ('auto', 'operator')),
  if_code         text NOT NULL,               -- the bank channel payouts go through
  account_no      text NOT NULL DEFAULT '',
  account_name    text,
  bank_name       text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (mch_no, kind, bureau)
);

-- The fees of a paid order, computed once at payment success (with the rules used),
-- and what refunds returned.
CREATE TABLE settle_order_fees (
  pay_order_id        text COLLATE "C" PRIMARY KEY,
  mch_no              text COLLATE "C" NOT NULL,
  if_code             text NOT NULL,
  category            text NOT NULL,
  gross_fen           int8 NOT NULL,
  fee_fen             int8 NOT NULL CHECK (fee_fen >= 0),
  channel_cost_fen    int8 NOT NULL CHECK (channel_cost_fen >= 0),
  fee_rule            text NOT NULL,
  cost_rule           text NOT NULL,
  utility_party       text COLLATE "C",
  utility_fen         int8 NOT NULL DEFAULT 0,
  splits              text,                        -- JSON [{party, kind, fen}] of a line-item order
  refunded_fen        int8 NOT NULL DEFAULT 0,
  fee_returned_fen    int8 NOT NULL DEFAULT 0,
  cost_returned_fen   int8 NOT NULL DEFAULT 0,
  paid_at             timestamptz NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now()
);

-- Every movement of a party's balance, with the day it becomes available. Written in
-- the same transaction as its ledger posting. settlement_id is set when a settlement
-- takes the entry. Amount is signed (+ credit to the party, - debit).
CREATE TABLE settle_entries (
  id             bigserial PRIMARY KEY,
  party_id       text COLLATE "C" NOT NULL,
  kind           text NOT NULL,   -- payment | fee | split_in | split_out | utility_in | utility_out | refund | fee_return | clawback_in | clawback_out | payout | payout_return
  ref            text COLLATE "C" NOT NULL,   -- payOrderId, refundOrderId, payoutId
  amount_fen     int8 NOT NULL,
  available_on   date,            -- null: manual cycle, released by an operator
  settlement_id  text COLLATE "C",
  created_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (party_id, kind, ref)
);
CREATE INDEX settle_entries_open ON settle_entries (party_id, available_on) WHERE settlement_id IS NULL;
CREATE INDEX settle_entries_settlement ON settle_entries (settlement_id) WHERE settlement_id IS NOT NULL;
-- (party_id, kind, ref) also serves a party's statement; no more indexes: binding an
-- entry to its settlement rewrites the row, and each index costs an entry per row.

-- Funds kept back from settlement (reconciliation mistake or risk hold).
CREATE TABLE settle_holds (
  ref          text COLLATE "C" PRIMARY KEY,
  party_id     text COLLATE "C" NOT NULL,
  mch_no       text COLLATE "C" NOT NULL,
  amount_fen   int8 NOT NULL CHECK (amount_fen > 0),
  reason       text NOT NULL CHECK (reason IN ('recon', 'risk')),
  note         text,
  state        text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'released')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  released_at  timestamptz
);
CREATE INDEX settle_holds_open ON settle_holds (party_id) WHERE state = 'open';

-- One batch per settlement date; a run resumes a batch, never makes a second one.
CREATE TABLE settle_batches (
  batch_id      text COLLATE "C" PRIMARY KEY,
  settle_date   date NOT NULL UNIQUE,
  state         text NOT NULL CHECK (state IN ('building', 'built')),
  max_entry_id  int8 NOT NULL,
  settlements   int4 NOT NULL DEFAULT 0,
  net_fen       int8 NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  built_at      timestamptz
);

-- Serializes the stages of settlement runs (one row, locked FOR UPDATE).
CREATE TABLE settle_run_lock (one boolean PRIMARY KEY DEFAULT true CHECK (one));
INSERT INTO settle_run_lock VALUES (true);

CREATE TABLE settle_settlements (
  settlement_id  text COLLATE "C" PRIMARY KEY,
  batch_id       text COLLATE "C" NOT NULL REFERENCES settle_batches (batch_id),
  party_id       text COLLATE "C" NOT NULL,
  gross_fen      int8 NOT NULL,   -- payments, splits and collections received
  fee_fen        int8 NOT NULL,   -- fees charged less fees returned (positive = charged)
  refund_fen     int8 NOT NULL,   -- refunds and clawbacks (positive = paid back)
  other_fen      int8 NOT NULL,   -- splits and collections passed on, returned payouts
  hold_fen       int8 NOT NULL,   -- kept back by open holds
  net_fen        int8 NOT NULL CHECK (net_fen > 0),
  entries        int4 NOT NULL,
  state          text NOT NULL CHECK (state IN ('awaiting_confirm', 'paying', 'paid', 'payout_failed', 'short')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (batch_id, party_id)
);
CREATE INDEX settle_settlements_party ON settle_settlements (party_id);

-- A payout: sent to the bank channel with payout_id as its request id, once.
-- created → sent → success | failed.
CREATE TABLE settle_payouts (
  payout_id      text COLLATE "C" PRIMARY KEY,
  settlement_id  text COLLATE "C" NOT NULL UNIQUE,
  party_id       text COLLATE "C" NOT NULL,
  amount_fen     int8 NOT NULL CHECK (amount_fen > 0),
  if_code        text NOT NULL,
  account_no     text NOT NULL,
  account_name   text,
  bank_name      text,
  state          text NOT NULL CHECK (state IN ('created', 'sent', 'success', 'failed')),
  attempts       int4 NOT NULL DEFAULT 0,
  channel_no     text,
  err_code       text,
  err_msg        text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);
CREATE INDEX settle_payouts_open ON settle_payouts (state, created_at) WHERE state IN ('created', 'sent');

-- Announcements the calendar package does not have yet (调休 notices).
CREATE TABLE settle_calendar_overrides (
  day         date PRIMARY KEY,
  kind        text NOT NULL CHECK (kind IN ('workday', 'holiday')),
  note        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
