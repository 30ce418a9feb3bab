-- Flow control: a merchant's own request-rate limits on the merchant API (requests per
-- second, counted over the configured window). NULL = the platform default
-- (CUSTOS_RATE_MCH_PER_S / CUSTOS_RATE_APP_PER_S).
CREATE TABLE pay_merchant_limits (
  mch_no          text COLLATE "C" PRIMARY KEY REFERENCES pay_merchants (mch_no),
  merchant_per_s  int4 CHECK (merchant_per_s BETWEEN 1 AND 100000),
  app_per_s       int4 CHECK (app_per_s BETWEEN 1 AND 100000),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
