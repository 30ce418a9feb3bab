-- The maintenance fund, use and yield half: repair applications (支用申请) with the units
-- in their scope and each unit's share, owners' votes, the approval trail, payouts to
-- the contractor, emergency publications (公示), per-city draw rules, and interest
-- (增值收益) batches with each household's share. Money is int8 fen, areas int8
-- hundredths of a square metre. The money itself lives in the ledger:
-- holds hh:<unit>:principal|interest → fund:use:<applicationId>, payout fund:use → fund:<city>:bank.

-- How a city lets a repair draw on a household: principal only, or interest first.
CREATE TABLE fund_use_rules (
  city        text COLLATE "C" PRIMARY KEY,
  draw_rule   text NOT NULL CHECK (draw_rule IN ('principal_only', 'interest_first')),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fund_applications (
  id                   text COLLATE "C" PRIMARY KEY,
  request_key          text COLLATE "C" NOT NULL UNIQUE,   -- the applicant's idempotency key
  request_hash         text NOT NULL,
  city                 text COLLATE "C" NOT NULL,
  estate_id            text COLLATE "C" NOT NULL REFERENCES register_estates (id),
  scope_kind           text NOT NULL CHECK (scope_kind IN ('estate', 'building', 'stair')),
  building_id          text COLLATE "C" NULL REFERENCES register_buildings (id),
  stair                text NULL,
  title                text NOT NULL,
  description          text NOT NULL,
  items                jsonb NOT NULL,                       -- [{name, amountFen}]
  budget_fen           int8 NOT NULL CHECK (budget_fen > 0),
  contractor_name      text NOT NULL,
  contractor_account   text NOT NULL,
  contractor_bank      text NOT NULL,
  applicant_role       text NOT NULL CHECK (applicant_role IN ('property', 'committee', 'center')),
  applicant            text NOT NULL,
  emergency            boolean NOT NULL,
  emergency_category   text NULL CHECK (emergency_category IN ('roof_leak', 'lift', 'fire_system', 'facade')),
  -- voting | vote_failed | returned | reviewing | approved | paying | paid | payout_failed | rejected
  status               text NOT NULL,
  chain                jsonb NOT NULL,                        -- the approval nodes at application time [{key,label,roles}]
  chain_node           int NULL,                              -- index into chain while reviewing
  vote_result          jsonb NULL,
  version              int NOT NULL DEFAULT 1,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CHECK (emergency = (emergency_category IS NOT NULL)),
  CHECK ((scope_kind = 'estate') = (building_id IS NULL)),
  CHECK ((scope_kind = 'stair') = (stair IS NOT NULL)),
  CHECK ((status = 'reviewing') = (chain_node IS NOT NULL))
);
CREATE INDEX fund_applications_estate ON fund_applications (estate_id, created_at);
CREATE INDEX fund_applications_status ON fund_applications (status);

-- The units in scope, frozen at application time, with their shares and the planned holds.
CREATE TABLE fund_application_units (
  application_id  text COLLATE "C" NOT NULL REFERENCES fund_applications (id),
  unit_id         text COLLATE "C" NOT NULL REFERENCES register_units (id),
  area_m2e2       int8 NOT NULL CHECK (area_m2e2 > 0),
  share_fen       int8 NOT NULL CHECK (share_fen >= 0),
  owners          int NOT NULL DEFAULT 1 CHECK (owners > 0),            -- owners listed in the register (snapshot, at least 1)
  principal_fen   int8 NOT NULL DEFAULT 0 CHECK (principal_fen >= 0),  -- held from 本金 at approval
  interest_fen    int8 NOT NULL DEFAULT 0 CHECK (interest_fen >= 0),   -- held from 利息 at approval
  PRIMARY KEY (application_id, unit_id)
);

-- One vote per unit, changeable until the vote closes.
CREATE TABLE fund_votes (
  application_id  text COLLATE "C" NOT NULL REFERENCES fund_applications (id),
  unit_id         text COLLATE "C" NOT NULL,
  choice          text NOT NULL CHECK (choice IN ('agree', 'disagree', 'abstain')),
  voter_role      text NOT NULL,
  voter           text NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (application_id, unit_id),
  FOREIGN KEY (application_id, unit_id) REFERENCES fund_application_units (application_id, unit_id)
);

-- The audit trail: every state change of an application (who, role, when, comment, from → to).
CREATE TABLE fund_application_actions (
  id              bigserial PRIMARY KEY,
  application_id  text COLLATE "C" NOT NULL REFERENCES fund_applications (id),
  request_key     text COLLATE "C" NULL,
  action          text NOT NULL,
  actor           text NOT NULL,
  actor_role      text NOT NULL,
  comment         text NOT NULL DEFAULT '',
  from_state      text NOT NULL,
  to_state        text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fund_application_actions_app ON fund_application_actions (application_id, id);
CREATE UNIQUE INDEX fund_application_actions_key ON fund_application_actions (application_id, request_key) WHERE request_key IS NOT NULL;

-- Payout instructions to the supervising bank (划转通知), one per application.
CREATE TABLE fund_payouts (
  id              text COLLATE "C" PRIMARY KEY,
  application_id  text COLLATE "C" NOT NULL UNIQUE REFERENCES fund_applications (id),
  amount_fen      int8 NOT NULL CHECK (amount_fen > 0),
  status          text NOT NULL CHECK (status IN ('sent', 'success', 'failed')),
  bank_serial_no  text NULL,
  message         text NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  settled_at      timestamptz NULL
);

-- 公示: emergency uses are published after the fact (and could hold any other notice).
CREATE TABLE fund_publications (
  id              bigserial PRIMARY KEY,
  application_id  text COLLATE "C" NOT NULL UNIQUE REFERENCES fund_applications (id),
  city            text COLLATE "C" NOT NULL,
  estate_id       text COLLATE "C" NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('emergency_use')),
  title           text NOT NULL,
  body            jsonb NOT NULL,
  published_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fund_publications_estate ON fund_publications (estate_id, published_at);

-- Interest received for a period and allocated to households: one batch per (city, period).
CREATE TABLE fund_interest_batches (
  id              text COLLATE "C" PRIMARY KEY,
  city            text COLLATE "C" NOT NULL,
  period          text NOT NULL,
  from_date       date NOT NULL,
  to_date         date NOT NULL,               -- exclusive
  amount_fen      int8 NOT NULL CHECK (amount_fen > 0),
  households      int NOT NULL,
  total_weight    text NOT NULL,               -- Σ 积数 (fen·days), decimal text: can exceed int8 for a big city
  operator        text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (city, period)
);

CREATE TABLE fund_interest_shares (
  batch_id    text COLLATE "C" NOT NULL REFERENCES fund_interest_batches (id),
  unit_id     text COLLATE "C" NOT NULL,
  weight      text NOT NULL,                   -- 积数 (fen·days), decimal text
  share_fen   int8 NOT NULL CHECK (share_fen >= 0),
  PRIMARY KEY (batch_id, unit_id)
);
