-- The payment center (支付中心): merchants and apps, routing, pay orders, refunds,
-- transfers (payouts), division, notifications to merchants, and channel events.
-- Money columns are int8 fen. Every (mch_no, merchant number) pair is unique, which
-- is what makes a resent order, refund or transfer return the original.

CREATE TABLE pay_merchants (
  mch_no      text COLLATE "C" PRIMARY KEY,
  name        text NOT NULL,
  state       int2 NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pay_apps (
  app_id        text COLLATE "C" PRIMARY KEY,
  mch_no        text COLLATE "C" NOT NULL REFERENCES pay_merchants (mch_no),
  name          text NOT NULL,
  secret_sealed text NOT NULL,
  sign_types    text NOT NULL DEFAULT 'MD5,HMAC-SHA256,SM3',
  notify_url    text,
  ip_allowlist  text,
  state         int2 NOT NULL DEFAULT 1,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pay_apps_mch ON pay_apps (mch_no);

-- Which channel serves a merchant's way; '*' is the merchant's default.
CREATE TABLE pay_routes (
  mch_no            text COLLATE "C" NOT NULL,
  way_code          text NOT NULL,
  if_code           text NOT NULL,
  fallback_if_code  text,
  PRIMARY KEY (mch_no, way_code)
);

CREATE TABLE pay_orders (
  pay_order_id      text COLLATE "C" PRIMARY KEY,
  mch_no            text COLLATE "C" NOT NULL,
  app_id            text COLLATE "C" NOT NULL,
  mch_order_no      text COLLATE "C" NOT NULL,
  way_code          text NOT NULL,
  if_code           text,
  amount            int8 NOT NULL CHECK (amount > 0),
  currency          text NOT NULL,
  subject           text NOT NULL,
  body              text NOT NULL,
  client_ip         text,
  notify_url        text,
  return_url        text,
  channel_extra     text,
  ext_param         text,
  division_mode     int2 NOT NULL DEFAULT 0,
  state             int2 NOT NULL,
  close_reason      text,
  request_hash      text NOT NULL,
  pay_data_type     text,
  pay_data          text,
  channel_order_no  text,
  channel_user      text,
  err_code          text,
  err_msg           text,
  refund_amount     int8 NOT NULL DEFAULT 0,
  refund_times      int4 NOT NULL DEFAULT 0,
  division_state    int2 NOT NULL DEFAULT 0,
  recovered_by      text,
  expired_at        timestamptz NOT NULL,
  success_at        timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (mch_no, mch_order_no)
);
CREATE INDEX pay_orders_open ON pay_orders (state, created_at) WHERE state IN (0, 1);
CREATE INDEX pay_orders_success_day ON pay_orders (success_at) WHERE success_at IS NOT NULL;

CREATE TABLE pay_refunds (
  refund_order_id    text COLLATE "C" PRIMARY KEY,
  pay_order_id       text COLLATE "C" NOT NULL REFERENCES pay_orders (pay_order_id),
  mch_no             text COLLATE "C" NOT NULL,
  app_id             text COLLATE "C" NOT NULL,
  mch_refund_no      text COLLATE "C" NOT NULL,
  if_code            text NOT NULL,
  pay_amount         int8 NOT NULL,
  refund_amount      int8 NOT NULL CHECK (refund_amount > 0),
  currency           text NOT NULL,
  refund_reason      text NOT NULL,
  client_ip          text,
  notify_url         text,
  channel_extra      text,
  ext_param          text,
  state              int2 NOT NULL,
  request_hash       text NOT NULL,
  channel_refund_no  text,
  err_code           text,
  err_msg            text,
  success_at         timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (mch_no, mch_refund_no)
);
CREATE INDEX pay_refunds_order ON pay_refunds (pay_order_id);
CREATE INDEX pay_refunds_open ON pay_refunds (state, created_at) WHERE state IN (0, 1);

CREATE TABLE pay_transfers (
  transfer_id       text COLLATE "C" PRIMARY KEY,
  mch_no            text COLLATE "C" NOT NULL,
  app_id            text COLLATE "C" NOT NULL,
  mch_order_no      text COLLATE "C" NOT NULL,
  if_code           text NOT NULL,
  entry_type        text NOT NULL,
  amount            int8 NOT NULL CHECK (amount > 0),
  currency          text NOT NULL,
  account_no        text NOT NULL,
  account_name      text,
  bank_name         text,
  client_ip         text,
  transfer_desc     text NOT NULL,
  notify_url        text,
  channel_extra     text,
  ext_param         text,
  state             int2 NOT NULL,
  request_hash      text NOT NULL,
  channel_order_no  text,
  err_code          text,
  err_msg           text,
  success_at        timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (mch_no, mch_order_no)
);
CREATE INDEX pay_transfers_open ON pay_transfers (state, created_at) WHERE state IN (0, 1);

CREATE TABLE pay_division_receivers (
  receiver_id         text COLLATE "C" PRIMARY KEY,
  mch_no              text COLLATE "C" NOT NULL,
  app_id              text COLLATE "C" NOT NULL,
  if_code             text NOT NULL,
  receiver_alias      text,
  receiver_group_id   text,
  acc_type            int2 NOT NULL,
  acc_no              text NOT NULL,
  acc_name            text,
  relation_type       text,
  relation_type_name  text,
  division_profit     text NOT NULL,
  state               int2 NOT NULL DEFAULT 1,
  created_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (mch_no, app_id, acc_no)
);

CREATE TABLE pay_divisions (
  division_id    text COLLATE "C" PRIMARY KEY,
  pay_order_id   text COLLATE "C" NOT NULL REFERENCES pay_orders (pay_order_id),
  receiver_id    text COLLATE "C" NOT NULL,
  amount         int8 NOT NULL CHECK (amount > 0),
  state          int2 NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (pay_order_id, receiver_id)
);

-- Notifications to merchants: written in the same transaction as the state change.
CREATE TABLE pay_notifications (
  id             bigserial PRIMARY KEY,
  kind           text NOT NULL,           -- pay_order | refund_order | transfer_order
  ref_id         text COLLATE "C" NOT NULL,
  mch_no         text COLLATE "C" NOT NULL,
  app_id         text COLLATE "C" NOT NULL,
  notify_url     text NOT NULL,
  body           text NOT NULL,           -- the signed form body, as sent
  state          int2 NOT NULL DEFAULT 0, -- 0 pending, 1 delivered, 2 failed (gave up)
  attempts       int4 NOT NULL DEFAULT 0,
  next_at        timestamptz,
  last_status    int4,
  last_error     text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pay_notifications_ref ON pay_notifications (kind, ref_id);
CREATE INDEX pay_notifications_due ON pay_notifications (next_at) WHERE state = 0;

CREATE TABLE pay_notify_attempts (
  id               bigserial PRIMARY KEY,
  notification_id  int8 NOT NULL REFERENCES pay_notifications (id),
  attempt          int4 NOT NULL,
  at               timestamptz NOT NULL DEFAULT now(),
  http_status      int4,
  response_excerpt text,
  error            text,
  duration_ms      int4 NOT NULL
);
CREATE INDEX pay_notify_attempts_n ON pay_notify_attempts (notification_id);

-- Channel notifications as received (dedup by the channel's event id) for audit.
CREATE TABLE channel_events (
  if_code      text NOT NULL,
  event_id     text NOT NULL,
  kind         text NOT NULL,
  ref_id       text,
  payload      text NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (if_code, event_id)
);
