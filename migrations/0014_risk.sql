-- Loss prevention (资损防控): monitors' watermarks, alerts, per-merchant risk rules,
-- blocklists and the orders flagged for review.

-- Where each incremental monitor stopped (an opaque cursor, e.g. an ISO time or a ledger ts).
CREATE TABLE risk_watermarks (
  monitor     text COLLATE "C" PRIMARY KEY,
  mark        text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One alert per monitor and subject (deduplicated); repeats bump seen_count/last_seen_at.
CREATE TABLE risk_alerts (
  id            bigserial PRIMARY KEY,
  monitor       text COLLATE "C" NOT NULL,
  subject       text COLLATE "C" NOT NULL,
  mch_no        text COLLATE "C",
  amount_fen    int8,
  summary       text NOT NULL,
  details       text NOT NULL,
  hold_ref      text,
  state         text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acked')),
  seen_count    int4 NOT NULL DEFAULT 1,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  posted_at     timestamptz,
  acked_at      timestamptz,
  acked_note    text,
  UNIQUE (monitor, subject)
);
CREATE INDEX risk_alerts_open ON risk_alerts (monitor) WHERE state = 'open';

-- Risk rules per merchant ('*' = every merchant without its own row). NULL = rule off.
-- Each rule's action: refuse the order, or let it pay and hold its settlement for review.
CREATE TABLE risk_rules (
  mch_no              text COLLATE "C" PRIMARY KEY,
  single_max_fen      int8 CHECK (single_max_fen > 0),
  single_action       text NOT NULL DEFAULT 'refuse' CHECK (single_action IN ('refuse', 'hold')),
  daily_max_fen       int8 CHECK (daily_max_fen > 0),
  daily_action        text NOT NULL DEFAULT 'refuse' CHECK (daily_action IN ('refuse', 'hold')),
  velocity_max        int4 CHECK (velocity_max > 0),
  velocity_window_s   int4 NOT NULL DEFAULT 600 CHECK (velocity_window_s BETWEEN 1 AND 86400),
  velocity_action     text NOT NULL DEFAULT 'refuse' CHECK (velocity_action IN ('refuse', 'hold')),
  pattern_factor      int4 CHECK (pattern_factor > 1),
  pattern_samples     int4 NOT NULL DEFAULT 50 CHECK (pattern_samples BETWEEN 5 AND 1000),
  pattern_action      text NOT NULL DEFAULT 'hold' CHECK (pattern_action IN ('refuse', 'hold')),
  updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE risk_blocklist (
  kind        text NOT NULL CHECK (kind IN ('ip', 'payer', 'merchant')),
  value       text COLLATE "C" NOT NULL,
  reason      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, value)
);

-- Every order the rules let through, with its payer keys (velocity counts these) and,
-- when a hold-action rule matched, the rules that want its settlement held on payment.
CREATE TABLE risk_order_checks (
  mch_no        text COLLATE "C" NOT NULL,
  mch_order_no  text COLLATE "C" NOT NULL,
  amount_fen    int8 NOT NULL,
  payer_ip      text,
  payer_account text,
  hold_rules    text,
  held          boolean NOT NULL DEFAULT false,
  checked_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mch_no, mch_order_no)
);
CREATE INDEX risk_order_checks_ip ON risk_order_checks (payer_ip, checked_at) WHERE payer_ip IS NOT NULL;
CREATE INDEX risk_order_checks_account ON risk_order_checks (payer_account, checked_at) WHERE payer_account IS NOT NULL;

-- The amount-pattern rule reads a merchant's last successful orders.
CREATE INDEX risk_pay_orders_mch_success ON pay_orders (mch_no, success_at) WHERE success_at IS NOT NULL;
-- The settlement-payout monitor reads payouts changed since its watermark.
CREATE INDEX risk_settle_payouts_updated ON settle_payouts (updated_at);
CREATE INDEX risk_pay_refunds_updated ON pay_refunds (updated_at);
-- The ledger monitor reads transfers after its ts mark; ts only grows, so a BRIN index
-- finds them for almost no cost on the insert path.
CREATE INDEX risk_ledger_transfers_ts ON ledger_transfers USING brin (ts);
