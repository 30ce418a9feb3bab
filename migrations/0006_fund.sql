-- The maintenance fund (住宅专项维修资金), register and deposits half: the property
-- register (楼盘表), per-city deposit standards, principals (who may see what),
-- deposit bills (缴款通知书), their links to pay orders, batches paid by a developer,
-- counter payments, refunds, ownership transfers and numbered receipts.
-- Money columns are int8 fen; areas are int8 hundredths of a square metre (area_m2e2).
-- The household accounts themselves live in the ledger (hh:<unitId>:principal|interest).

CREATE TABLE register_estates (
  id                text COLLATE "C" PRIMARY KEY,
  city              text NOT NULL,
  name              text NOT NULL,
  address           text NOT NULL,
  district          text NOT NULL DEFAULT '',
  property_company  text NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (city, name)
);

CREATE TABLE register_buildings (
  id             text COLLATE "C" PRIMARY KEY,
  estate_id      text COLLATE "C" NOT NULL REFERENCES register_estates (id),
  name           text NOT NULL,               -- 幢号
  building_type  text NOT NULL,               -- 'high_rise_lift' | 'multi_storey' | ...
  floors         int NOT NULL CHECK (floors > 0),
  UNIQUE (estate_id, name)
);

CREATE TABLE register_units (
  id           text COLLATE "C" PRIMARY KEY,
  estate_id    text COLLATE "C" NOT NULL REFERENCES register_estates (id),
  building_id  text COLLATE "C" NOT NULL REFERENCES register_buildings (id),
  stair        text NOT NULL,                 -- 单元
  room_no      text NOT NULL,                 -- 户/室号
  area_m2e2    int8 NOT NULL CHECK (area_m2e2 > 0),
  use          text NOT NULL,                 -- 'residential' | 'commercial' | ...
  price_fen    int8 NULL CHECK (price_fen IS NULL OR price_fen > 0),
  cert_no      text NULL,                     -- 不动产权证号
  owners       jsonb NOT NULL DEFAULT '[]',   -- [{name,idNo,phone}]
  sold         boolean NOT NULL DEFAULT false,
  version      int NOT NULL DEFAULT 1,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (building_id, stair, room_no)
);
CREATE INDEX register_units_estate ON register_units (estate_id);
CREATE UNIQUE INDEX register_units_cert ON register_units (cert_no) WHERE cert_no IS NOT NULL;

-- Per-city configuration: the top-up threshold (basis points of the first deposit).
CREATE TABLE fund_city_config (
  city             text COLLATE "C" PRIMARY KEY,
  name             text NOT NULL,
  top_up_ratio_bp  int NOT NULL DEFAULT 3000 CHECK (top_up_ratio_bp > 0 AND top_up_ratio_bp <= 10000),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Deposit standards per city and building type: area x fen/m2, or price x rate.
CREATE TABLE fund_deposit_standards (
  city           text COLLATE "C" NOT NULL REFERENCES fund_city_config (city),
  building_type  text NOT NULL,
  method         text NOT NULL CHECK (method IN ('area', 'price')),
  fen_per_m2     int8 NULL CHECK (fen_per_m2 IS NULL OR fen_per_m2 > 0),
  rate           text NULL,                   -- decimal string, e.g. '0.02' (price method)
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (city, building_type),
  CHECK ((method = 'area' AND fen_per_m2 IS NOT NULL) OR (method = 'price' AND rate IS NOT NULL))
);

-- Principals other than the center (admin token): tokens issued by the center.
CREATE TABLE fund_principals (
  token_hash  text COLLATE "C" PRIMARY KEY,   -- sha256 hex of the bearer token
  role        text NOT NULL CHECK (role IN ('property', 'committee', 'owner')),
  subject     text NOT NULL,
  estate_ids  jsonb NULL,                     -- ["e_..."] or null
  unit_ids    jsonb NULL,                     -- ["u_..."] or null
  expires_at  timestamptz NULL,
  revoked     boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Batches: a developer pays many bills with one pay order.
CREATE TABLE fund_batches (
  id           text COLLATE "C" PRIMARY KEY,
  estate_id    text COLLATE "C" NOT NULL REFERENCES register_estates (id),
  payer        text NOT NULL,
  amount_fen   int8 NOT NULL CHECK (amount_fen > 0),
  bill_count   int NOT NULL CHECK (bill_count > 0),
  bill_ids     jsonb NOT NULL,                -- the bills it covers, kept after it closes
  state        text NOT NULL CHECK (state IN ('open', 'paid', 'cancelled')),
  paid_at      timestamptz NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Deposit bills (缴款通知书): first deposits and top-ups.
CREATE TABLE fund_bills (
  id           text COLLATE "C" PRIMARY KEY,
  unit_id      text COLLATE "C" NOT NULL REFERENCES register_units (id),
  estate_id    text COLLATE "C" NOT NULL REFERENCES register_estates (id),
  city         text NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('first_deposit', 'top_up')),
  amount_fen   int8 NOT NULL CHECK (amount_fen > 0),
  basis        jsonb NOT NULL,                -- the formula and its inputs
  state        text NOT NULL CHECK (state IN ('unpaid', 'paid', 'cancelled')),
  batch_id     text COLLATE "C" NULL REFERENCES fund_batches (id),
  paid_via     text NULL CHECK (paid_via IN ('payment', 'batch', 'counter')),
  paid_ref     text NULL,                     -- pay order id or bank reference
  paid_at      timestamptz NULL,
  receipt_no   text NULL UNIQUE,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fund_bills_unit ON fund_bills (unit_id);
CREATE INDEX fund_bills_estate ON fund_bills (estate_id, state);
CREATE INDEX fund_bills_batch ON fund_bills (batch_id);
-- One live first-deposit bill per unit; one open top-up bill per unit.
CREATE UNIQUE INDEX fund_bills_first_once ON fund_bills (unit_id) WHERE kind = 'first_deposit' AND state <> 'cancelled';
CREATE UNIQUE INDEX fund_bills_topup_open ON fund_bills (unit_id) WHERE kind = 'top_up' AND state = 'unpaid';

-- Pay orders created for a bill or a batch (one row per attempt; the link is unique).
CREATE TABLE fund_pay_links (
  pay_order_id  text COLLATE "C" PRIMARY KEY,
  mch_order_no  text COLLATE "C" NOT NULL UNIQUE,
  bill_id       text COLLATE "C" NULL REFERENCES fund_bills (id),
  batch_id      text COLLATE "C" NULL REFERENCES fund_batches (id),
  amount_fen    int8 NOT NULL,
  outcome       text NULL CHECK (outcome IN ('credited', 'duplicate')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK ((bill_id IS NULL) <> (batch_id IS NULL))
);
CREATE INDEX fund_pay_links_bill ON fund_pay_links (bill_id);

-- Bank counter / transfer payments entered by an operator (idempotent by bank_ref).
CREATE TABLE fund_counter_payments (
  bank_ref    text COLLATE "C" PRIMARY KEY,
  bill_id     text COLLATE "C" NOT NULL REFERENCES fund_bills (id),
  amount_fen  int8 NOT NULL CHECK (amount_fen > 0),
  channel     text NOT NULL CHECK (channel IN ('counter', 'transfer')),
  operator    text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Refunds (退还): demolition, duplicate or mistaken payment, 退房.
CREATE TABLE fund_refunds (
  id              text COLLATE "C" PRIMARY KEY,
  request_key     text COLLATE "C" NOT NULL UNIQUE,
  unit_id         text COLLATE "C" NOT NULL REFERENCES register_units (id),
  reason          text NOT NULL CHECK (reason IN ('demolition', 'duplicate_payment', 'mistaken_payment', 'cancelled_sale')),
  note            text NOT NULL,
  principal_fen   int8 NOT NULL CHECK (principal_fen >= 0),
  interest_fen    int8 NOT NULL CHECK (interest_fen >= 0),
  payee           text NOT NULL,
  operator        text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- Ownership transfers (过户): owners change, no money moves.
CREATE TABLE fund_ownership_transfers (
  id           bigserial PRIMARY KEY,
  unit_id      text COLLATE "C" NOT NULL REFERENCES register_units (id),
  old_owners   jsonb NOT NULL,
  new_owners   jsonb NOT NULL,
  old_cert_no  text NULL,
  new_cert_no  text NULL,
  operator     text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Audit trail of register edits and fund operations.
CREATE TABLE fund_audit (
  id          bigserial PRIMARY KEY,
  actor       text NOT NULL,
  action      text NOT NULL,
  target      text NOT NULL,
  detail      jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Receipt numbers: one sequence, formatted per year by the application.
CREATE SEQUENCE fund_receipt_seq;

-- The fund center's merchant and app at the payment center (created on first use).
CREATE TABLE fund_merchant (
  one         boolean PRIMARY KEY DEFAULT true CHECK (one),
  mch_no      text COLLATE "C" NOT NULL,
  app_id      text COLLATE "C" NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
