import { openTestDb } from './helpers.ts';
import { createLedger } from '../src/ledger/ledger.service.ts';
import { ManualClock } from '../src/platform/clock.ts';
const t = await openTestDb();
const clock = new ManualClock();
const ledger = createLedger({ db: t.db, clock });
const acc = (id: string, flags = 0) => ({ id, ledger: 1, code: 1, flags, ref: null, metadata: null });
console.log(await ledger.createAccounts([acc('a'), acc('b', 1 | 4), acc('a')]));
const tr = (id: string, d: string, c: string, amount: bigint | null, flags = 0, pending_id: string | null = null, timeout_s = 0) =>
  ({ id, debit_account_id: d, credit_account_id: c, amount, ledger: 1, code: 1, flags, pending_id, timeout_s, ref: null, metadata: null });
console.log(await ledger.createTransfers([tr('t1', 'a', 'b', 100n), tr('t2', 'b', 'a', 50n), tr('t3', 'b', 'a', 51n), tr('t3', 'b', 'a', 1n), tr('t1', 'a', 'b', 100n)]));
console.log(await ledger.createTransfers([tr('p1', 'b', 'a', 10n, 2, null, 5), tr('p2', 'b', 'a', 10n, 2, null, 5)]));
console.log(await ledger.createTransfers([{ ...tr('x1', null as never, null as never, null, 4, 'p1') }]));
clock.advanceSeconds(10);
console.log(await ledger.expireDue());
console.log(await ledger.getAccount('b'));
console.log(await ledger.listEntries('b', 10, 0n));
console.log(JSON.stringify(await ledger.verify(), (k, v) => typeof v === 'bigint' ? v.toString() : v));
await t.close();
