// Group commit isolates a failing caller (issue 12, hole 4): when a batch fails, its
// callers run again apart (bisect), so exactly the callers with a poison item fail and
// every other caller's items commit once. The runner is a transactional in-memory
// store: a batch with a poison item throws and commits nothing, as one SQL
// transaction does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GroupCommit, isConnectionError } from '../src/platform/group-commit.ts';

interface Item { caller: number; n: number; poison: boolean }

function store() {
  const committed = new Map<string, number>();
  let runs = 0;
  const run = async (items: Item[]) => {
    runs += 1;
    await new Promise((resolve) => setImmediate(resolve));
    if (items.some((i) => i.poison)) throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' });
    for (const i of items) committed.set(`${i.caller}:${i.n}`, (committed.get(`${i.caller}:${i.n}`) ?? 0) + 1);
    return items.map((i) => `${i.caller}:${i.n}`);
  };
  return { committed, run, runs: () => runs };
}

test('for any batch and any set of poison members, exactly the poison callers fail and every other item commits once', async () => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({ size: fc.integer({ min: 1, max: 3 }), poisonAt: fc.option(fc.integer({ min: 0, max: 2 }), { freq: 3 }) }), { minLength: 1, maxLength: 60 }),
    fc.integer({ min: 1, max: 64 }),
    fc.integer({ min: 1, max: 3 }),
    async (callers, batchMax, concurrency) => {
      const s = store();
      const gc = new GroupCommit<Item, string>(s.run, Math.max(batchMax, 3), concurrency);
      const outcomes = await Promise.allSettled(callers.map((c, caller) => gc.submit(Array.from({ length: c.size }, (_v, n) => ({ caller, n, poison: n === c.poisonAt })))));
      callers.forEach((c, caller) => {
        const poisoned = c.poisonAt !== null && c.poisonAt < c.size;
        const outcome = outcomes[caller];
        if (poisoned) {
          assert.equal(outcome.status, 'rejected', `caller ${caller} had a poison item`);
          for (let n = 0; n < c.size; n += 1) assert.equal(s.committed.get(`${caller}:${n}`), undefined, 'nothing of a failed caller commits');
        } else {
          assert.equal(outcome.status, 'fulfilled', `caller ${caller} had no poison item`);
          assert.deepEqual((outcome as PromiseFulfilledResult<string[]>).value, Array.from({ length: c.size }, (_v, n) => `${caller}:${n}`));
          for (let n = 0; n < c.size; n += 1) assert.equal(s.committed.get(`${caller}:${n}`), 1, 'committed exactly once');
        }
      });
      assert.ok(s.runs() <= 2 * callers.length, `bounded: ${s.runs()} runs for ${callers.length} callers`);
    },
  ), { numRuns: 200 });
});

test('a connection failure is not split: every caller of the batch gets it at once', async () => {
  let runs = 0;
  const gc = new GroupCommit<number, number>(async () => {
    runs += 1;
    throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  }, 100, 1);
  const outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_v, i) => gc.submit([i])));
  assert.ok(outcomes.every((o) => o.status === 'rejected'));
  assert.ok(runs <= 2, `no bisect on a dead database (${runs} runs)`);
  assert.equal(isConnectionError({ code: '57P01' }), true);
  assert.equal(isConnectionError({ code: '22021' }), false);
});
