-- Every open order, refund, transfer and settlement payout is checked at the channel
-- on a schedule of its own: next_check_at (when it is due) and check_attempts (how
-- many checks so far, which picks the back-off). Pollers take the due rows in
-- next_check_at order, a bounded batch per tick, so every open row is visited, not
-- only the oldest ones. Existing open rows are due at once; new rows after 5 s.
ALTER TABLE pay_orders ADD COLUMN next_check_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE pay_orders ADD COLUMN check_attempts int4 NOT NULL DEFAULT 0;
ALTER TABLE pay_orders ALTER COLUMN next_check_at SET DEFAULT now() + interval '5 seconds';
CREATE INDEX pay_orders_check_due ON pay_orders (next_check_at) WHERE state IN (0, 1);

ALTER TABLE pay_refunds ADD COLUMN next_check_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE pay_refunds ADD COLUMN check_attempts int4 NOT NULL DEFAULT 0;
ALTER TABLE pay_refunds ALTER COLUMN next_check_at SET DEFAULT now() + interval '5 seconds';
CREATE INDEX pay_refunds_check_due ON pay_refunds (next_check_at) WHERE state IN (0, 1);

ALTER TABLE pay_transfers ADD COLUMN next_check_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE pay_transfers ADD COLUMN check_attempts int4 NOT NULL DEFAULT 0;
ALTER TABLE pay_transfers ALTER COLUMN next_check_at SET DEFAULT now() + interval '5 seconds';
CREATE INDEX pay_transfers_check_due ON pay_transfers (next_check_at) WHERE state IN (0, 1);

ALTER TABLE settle_payouts ADD COLUMN next_check_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE settle_payouts ADD COLUMN check_attempts int4 NOT NULL DEFAULT 0;
ALTER TABLE settle_payouts ALTER COLUMN next_check_at SET DEFAULT now() + interval '5 seconds';
CREATE INDEX settle_payouts_check_due ON settle_payouts (next_check_at) WHERE state IN ('created', 'sent');
