-- The maintenance fund: proofs of ownership that the register does not hold (issue 12,
-- holes 3 and 7), and owners' id numbers and phones sealed at rest.
--
-- * fund_principals gains how an owner session was proven ('sms') and its session id;
--   one owner session covers exactly one unit.
-- * fund_votes gains how the voter was proven ('sms' | 'voting_code') and the session id.
-- * fund_voting_codes: a code per (application, unit) issued by the fund center, shown
--   once, stored as an HMAC; single use, bounded failures, an expiry.
-- * fund_sms_codes: one-time codes sent to an owner's phone on record (HMAC only).
-- * fund_sms_outbox: the default SMS sender in development and tests writes here.
-- * fund_signin_limits: failure counters with lock-out for the owner sign-in (per unit,
--   per IP), shared by every instance, on both databases.
-- * register_units.owners keeps idNo/phone only sealed (idNoEnc/phoneEnc) with a keyed
--   hash (idNoHash/phoneHash) for lookups; existing clear rows are sealed at start-up
--   by the application (the key is not available to SQL).

ALTER TABLE fund_principals ADD COLUMN proof text NULL CHECK (proof IS NULL OR proof IN ('sms'));
ALTER TABLE fund_principals ADD COLUMN session_id text NULL;

ALTER TABLE fund_votes ADD COLUMN proof text NULL CHECK (proof IS NULL OR proof IN ('sms', 'voting_code'));
ALTER TABLE fund_votes ADD COLUMN session_id text NULL;

CREATE TABLE fund_voting_codes (
  application_id  text COLLATE "C" NOT NULL,
  unit_id         text COLLATE "C" NOT NULL,
  code_hash       text NOT NULL,                 -- HMAC-SHA256 (key derived from the master key), hex
  issued_by       text NOT NULL,
  issued_at       timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL,
  failures        int NOT NULL DEFAULT 0 CHECK (failures >= 0),
  used_at         timestamptz NULL,
  PRIMARY KEY (application_id, unit_id),
  FOREIGN KEY (application_id, unit_id) REFERENCES fund_application_units (application_id, unit_id)
);

CREATE TABLE fund_sms_codes (
  id            text COLLATE "C" PRIMARY KEY,
  unit_id       text COLLATE "C" NOT NULL REFERENCES register_units (id),
  owner_index   int NOT NULL CHECK (owner_index >= 0),
  purpose       text NOT NULL CHECK (purpose IN ('sign_in')),
  code_hash     text NOT NULL,
  failures      int NOT NULL DEFAULT 0 CHECK (failures >= 0),
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz NULL,
  created_at    timestamptz NOT NULL
);
CREATE INDEX fund_sms_codes_unit ON fund_sms_codes (unit_id, created_at);

CREATE TABLE fund_sms_outbox (
  id            bigserial PRIMARY KEY,
  phone_masked  text NOT NULL,
  phone_hash    text NOT NULL,
  ref           text NOT NULL,                   -- e.g. the unit id
  body          text NOT NULL,
  created_at    timestamptz NOT NULL
);
CREATE INDEX fund_sms_outbox_ref ON fund_sms_outbox (ref, id);

CREATE TABLE fund_signin_limits (
  key           text COLLATE "C" PRIMARY KEY,    -- 'unit:<id>' | 'ip:<address>' | 'sms:<unit id>'
  window_start  timestamptz NOT NULL,
  failures      int NOT NULL CHECK (failures >= 0),
  locked_until  timestamptz NULL
);

CREATE INDEX register_units_owners ON register_units USING gin (owners jsonb_path_ops);
