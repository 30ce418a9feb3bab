// Two operators (or a job retry and an operator) run the same day at once: one
// classification, one set of mistakes, the same summary for both; two creates at once:
// one batch, the other refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { openTestDb, PG_ONLY } from './helpers.ts';
import { createLedger } from '../src/ledger/index.ts';
import { systemClock } from '../src/platform/clock.ts';
import { cstDayStart } from '../src/platform/time.ts';
import { wechatBill } from '../src/channel/sandbox/statements.ts';
import { createReconService } from '../src/recon/recon.service.ts';
import { bufferReader } from '../src/recon/reader.ts';

test('concurrent runs of one day classify once and agree; concurrent creates make one batch', { skip: PG_ONLY }, async () => {
  const t = await openTestDb({ poolSize: 8 });
  try {
    const day = '2026-11-20';
    const start = cstDayStart(day);
    await sql`INSERT INTO pay_orders (pay_order_id, mch_no, app_id, mch_order_no, way_code, if_code, amount, currency, subject, body, state, request_hash, expired_at, success_at)
      SELECT 'PC' || g, 'M1', 'A1', 'mo' || g, 'WX_NATIVE', 'sandbox', 1000 + g, 'cny', 's', 'b', 2, 'h', ${start}, ${start}::timestamptz + g * interval '1 second'
      FROM generate_series(1, 500) g`.execute(t.db.kysely);
    const payments = Array.from({ length: 499 }, (_v, i) => ({
      outTradeNo: `PC${i + 1}`, tradeNo: `T${i + 1}`, amountFen: BigInt(1001 + i) + (i === 7 ? 5n : 0n), wayCode: 'WX_NATIVE', subject: 's', payer: null,
      successAt: new Date(start.getTime() + (i + 1) * 1000), createdAt: start,
    }));
    const bill = wechatBill({ billDate: day, feeRate: '0.006', payments, refunds: [] });
    const recon = createReconService({
      db: t.db, ledger: createLedger({ db: t.db, clock: systemClock }),
      markPaid: async () => {
        throw new Error('no status differences here');
      },
    });
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => recon.runDay({ channel: 'sandbox', billDate: day, reader: bufferReader(bill, 'wechat') })));
    assert.deepEqual(a, b);
    assert.deepEqual(a, c);
    assert.deepEqual(a.mistakes, { AMOUNT_OVER: 1 });
    assert.equal(a.poolAdded, 1, 'PC500 is not in the file');
    assert.equal(a.matched, 498);
    const n = await sql<{ n: bigint }>`SELECT count(*)::int8 AS n FROM recon_mistakes`.execute(t.db.kysely);
    assert.equal(n.rows[0].n, 1n);

    const results = await Promise.allSettled([1, 2, 3, 4].map(() => recon.createBatch({ channel: 'sandbox', billDate: '2026-11-21' })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, 'RECON_BATCH_EXISTS');
  } finally {
    await t.close();
  }
});
