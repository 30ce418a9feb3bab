-- The account center (账户中心): accounts and transfers, TigerBeetle's model.
-- A transfer row is both entries of a transfer (debit side and credit side); for
-- accounts with the history flag it carries the balances after it was applied.
-- Failed transfer ids are kept in the same table (failure is not null, no accounts,
-- amount 0) so that one primary key makes an id either applied or failed, never both.
-- Ids compare byte-wise (COLLATE "C"): cheaper index maintenance than a locale's
-- collation, and the same order as the ledger's lock order.

CREATE TABLE ledger_accounts (
  id               text COLLATE "C" PRIMARY KEY,
  ledger           int4 NOT NULL CHECK (ledger > 0),
  code             int4 NOT NULL CHECK (code > 0),
  flags            int4 NOT NULL DEFAULT 0,
  ref              text,
  metadata         text,
  debits_posted    int8 NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
  credits_posted   int8 NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
  debits_pending   int8 NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
  credits_pending  int8 NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
  version          int8 NOT NULL DEFAULT 0,
  closed           boolean NOT NULL DEFAULT false,
  ts               int8 NOT NULL
) WITH (fillfactor = 70); -- room on each page for HOT updates: balances change on every transfer
CREATE INDEX ledger_accounts_ref ON ledger_accounts (ref) WHERE ref IS NOT NULL;

CREATE TABLE ledger_transfers (
  id                 text COLLATE "C" PRIMARY KEY,
  ts                 int8 NOT NULL,
  debit_account_id   text COLLATE "C",
  credit_account_id  text COLLATE "C",
  amount             int8 NOT NULL CHECK (amount >= 0),
  ledger             int4 NOT NULL,
  code               int4 NOT NULL,
  flags              int4 NOT NULL,
  pending_id         text COLLATE "C",
  timeout_s          int4 NOT NULL DEFAULT 0,
  -- pending transfers only: when it expires (ns since epoch, 0 = never) and its state
  -- 1 pending, 2 posted, 3 voided, 4 expired
  expires_at         int8 NOT NULL DEFAULT 0,
  status             int2,
  ref                text,
  metadata           text,
  failure            text,
  -- balances after this transfer, for accounts with the history flag
  dr_debits_posted   int8, dr_credits_posted int8, dr_debits_pending int8, dr_credits_pending int8,
  cr_debits_posted   int8, cr_credits_posted int8, cr_debits_pending int8, cr_credits_pending int8
);
CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account_id, ts) WHERE debit_account_id IS NOT NULL;
CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account_id, ts) WHERE credit_account_id IS NOT NULL;
CREATE INDEX ledger_transfers_expiry ON ledger_transfers (expires_at) WHERE status = 1 AND expires_at > 0;
CREATE INDEX ledger_transfers_ref ON ledger_transfers (ref) WHERE ref IS NOT NULL;

-- The ledger's clock: strictly increasing nanosecond timestamps across processes.
CREATE TABLE ledger_clock (
  one  boolean PRIMARY KEY DEFAULT true CHECK (one),
  ts   int8 NOT NULL
);
INSERT INTO ledger_clock (one, ts) VALUES (true, 0);
