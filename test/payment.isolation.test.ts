// One merchant's bad input must not fail other merchants' orders (issue 12, hole 4).
// Concurrent orders share one INSERT (group commit); a poison order that still reaches
// the database (here sent to the order service directly, past the edge's character
// check: a NUL in the subject, which PostgreSQL refuses) used to fail the whole batch —
// 191 of another merchant's 300 orders failed with 500. Now a failed batch is split
// until only the poison order fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { PG_ONLY } from './helpers.ts';
import { merchant, order, startStack } from './payment.harness.ts';

test('a merchant sending poison orders does not fail another merchant\'s 300 concurrent orders', { skip: PG_ONLY }, async () => {
  const stack = await startStack({ background: false });
  try {
    const good = await merchant(stack, null, '好商户');
    const bad = await merchant(stack, null, '坏商户');
    let sending = true;
    const poisonResults: Array<PromiseSettledResult<unknown>> = [];
    const poison = (async () => {
      let n = 0;
      while (sending && n < 3000) {
        const wave = Array.from({ length: 4 }, () => {
          n += 1;
          return stack.platform.payment.orders.unifiedOrder({
            mchNo: bad.mchNo, appId: bad.appId, mchOrderNo: `poison-${n}`, wayCode: 'QR_CASHIER', amount: 100n, currency: 'cny',
            subject: `坏\u0000${n}`, body: 'b', clientIp: null, notifyUrl: null, returnUrl: null, expiredTime: 600, channelExtra: null, extParam: null, divisionMode: 0,
          });
        });
        poisonResults.push(...(await Promise.allSettled(wave)));
      }
    })();
    const answers = await Promise.all(Array.from({ length: 300 }, (_v, i) => good.call('/api/pay/unifiedOrder', order(`good-${i}`, { wayCode: 'QR_CASHIER' }))));
    sending = false;
    await poison;
    const failed = answers.filter((a) => a.body.code !== 0);
    assert.equal(failed.length, 0, `the good merchant's orders that failed: ${JSON.stringify(failed.slice(0, 3).map((f) => f.body))}`);
    assert.ok(poisonResults.length > 0 && poisonResults.every((r) => r.status === 'rejected'), 'every poison order failed');
    const rows = await sql<{ mch_no: string; n: string }>`SELECT mch_no, count(*)::text AS n FROM pay_orders GROUP BY mch_no`.execute(stack.t.db.kysely);
    const byMch = Object.fromEntries(rows.rows.map((r) => [r.mch_no, Number(r.n)]));
    assert.equal(byMch[good.mchNo], 300, 'each good order committed once');
    assert.equal(byMch[bad.mchNo] ?? 0, 0);
  } finally {
    await stack.close();
  }
});
