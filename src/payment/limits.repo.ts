// SQL of merchants' own rate limits (flow control).
import { sql, type Kdb, type Tx } from '../platform/db.ts';

type Q = Kdb | Tx;

export interface MerchantLimitsRow { mch_no: string; merchant_per_s: number | null; app_per_s: number | null; updated_at: Date }

export async function findMerchantLimits(q: Q, mchNo: string): Promise<MerchantLimitsRow | null> {
  const r = await sql<MerchantLimitsRow>`SELECT * FROM pay_merchant_limits WHERE mch_no = ${mchNo}`.execute(q);
  return r.rows[0] ?? null;
}

export async function upsertMerchantLimits(q: Q, mchNo: string, merchantPerS: number | null, appPerS: number | null): Promise<MerchantLimitsRow> {
  const r = await sql<MerchantLimitsRow>`INSERT INTO pay_merchant_limits (mch_no, merchant_per_s, app_per_s)
    VALUES (${mchNo}, ${merchantPerS}, ${appPerS})
    ON CONFLICT (mch_no) DO UPDATE SET merchant_per_s = EXCLUDED.merchant_per_s, app_per_s = EXCLUDED.app_per_s, updated_at = now()
    RETURNING *`.execute(q);
  return r.rows[0];
}
