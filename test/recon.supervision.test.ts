// Supervision-account reconciliation (日终对账): the bank's statement of a supervision
// account against the ledger entries of the account that mirrors it, flow by flow and
// closing balance. A difference opens mistakes and blocks the account; resolving them
// (the bank's record stands: a balancing posting against recon:suspense) unblocks it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openTestDb } from './helpers.ts';
import { createLedger } from '../src/ledger/index.ts';
import { systemClock } from '../src/platform/clock.ts';
import { cstDate } from '../src/platform/time.ts';
import { createReconService, bankFlowOf, type Mistake } from '../src/recon/recon.service.ts';
import type { BankRecord } from '../src/recon/parse/bank.ts';

const row = (serialNo: string, direction: 'debit' | 'credit', amountFen: bigint, balanceFen: bigint | null, date: string): BankRecord => ({
  date, time: '10:00:00', serialNo, direction, amountFen, balanceFen, counterpartyName: '', counterpartyAccount: '', counterpartyBank: '', summary: '', remark: '',
});

test('a bank flow the ledger lacks and a closing-balance difference block the account until resolved', async () => {
  const t = await openTestDb();
  try {
    const ledger = createLedger({ db: t.db, clock: systemClock });
    const opened: Mistake[] = [];
    const resolved: Mistake[] = [];
    const recon = createReconService({
      db: t.db, ledger,
      markPaid: async () => {
        throw new Error('no payments in this test');
      },
      onMistakeOpened: async (_tx, m) => {
        opened.push(m);
      },
      onMistakeResolved: async (_tx, m) => {
        resolved.push(m);
      },
    });
    await ledger.createAccounts([
      { id: 'sup:001', ledger: 1, code: 1101, flags: 0, ref: null, metadata: null },
      { id: 'fund:src', ledger: 1, code: 2101, flags: 0, ref: null, metadata: null },
    ]);
    const tr = (id: string, debit: string, credit: string, amount: bigint, ref: string | null) =>
      ({ id, debit_account_id: debit, credit_account_id: credit, amount, ledger: 1, code: 1, flags: 0, pending_id: null, timeout_s: 0, ref, metadata: null });
    const results = await ledger.createTransfers([tr('dep-1', 'sup:001', 'fund:src', 5000n, 'BANK-001'), tr('pay-1', 'fund:src', 'sup:001', 2000n, null)]);
    assert.deepEqual(results, ['ok', 'ok']);
    const today = cstDate(new Date());

    await assert.rejects(recon.runSupervision({ bankAccountNo: '6222000011112222', billDate: today, records: [] }), (e: Error & { code?: string }) => e.code === 'RECON_BANK_ACCOUNT_UNKNOWN');
    await recon.mapBankAccount({ bankAccountNo: '6222000011112222', ledgerAccountId: 'sup:001', normalSide: 'debit' });
    assert.equal(await recon.isAccountBlocked('sup:001'), false);

    // A clean day first: same flows (one by serial, one by amount and direction), same balance.
    const clean = await recon.runSupervision({ bankAccountNo: '6222000011112222', billDate: today, records: [row('BANK-001', 'credit', 5000n, 5000n, today), row('B-2', 'debit', 2000n, 3000n, today)] });
    assert.equal(clean.matched, 2);
    assert.deepEqual(clean.mistakes, {});
    assert.equal(clean.blocked, false);
    assert.equal(clean.ledgerClosingFen, '3000');

    // Now the bank shows an inflow the ledger never booked (another account number, same ledger would be refused: one mapping per ledger account).
    await ledger.createAccounts([{ id: 'sup:002', ledger: 1, code: 1101, flags: 0, ref: null, metadata: null }]);
    await ledger.createTransfers([tr('dep-2', 'sup:002', 'fund:src', 5000n, 'BANK-101'), tr('pay-2', 'fund:src', 'sup:002', 2000n, null)]);
    await recon.mapBankAccount({ bankAccountNo: '6222000033334444', ledgerAccountId: 'sup:002', normalSide: 'debit' });
    const s = await recon.runSupervision({
      bankAccountNo: '6222000033334444', billDate: today,
      records: [row('BANK-101', 'credit', 5000n, 5000n, today), row('B-102', 'debit', 2000n, 3000n, today), row('B-103', 'credit', 700n, 3700n, today)],
    });
    assert.equal(s.matched, 2);
    assert.deepEqual(s.mistakes, { SUPERVISION_BALANCE_MISMATCH: 1, SUPERVISION_LEDGER_MISSING: 1 });
    assert.equal(s.blocked, true);
    assert.equal(s.bankClosingFen, '3700');
    assert.equal(s.ledgerClosingFen, '3000');
    assert.equal(await recon.isAccountBlocked('sup:002'), true);
    assert.equal(await recon.isAccountBlocked('sup:001'), false, 'only the account with a difference is blocked');
    assert.deepEqual(opened.map((m) => m.type).sort(), ['SUPERVISION_BALANCE_MISMATCH', 'SUPERVISION_LEDGER_MISSING']);

    const mistakes = await recon.listMistakes({ batchId: s.batchId });
    const balance = mistakes.find((m) => m.type === 'SUPERVISION_BALANCE_MISMATCH');
    const flow = mistakes.find((m) => m.type === 'SUPERVISION_LEDGER_MISSING');
    assert.ok(balance && flow);
    assert.equal(flow.amount_fen, 700n);
    assert.equal(flow.direction, 'in');
    // The balance difference is explained by the flow: ours stands for it, nothing posted.
    await recon.resolve(balance.id, { side: 'platform', reason: '由流水差错解释 / explained by the missing flow', actor: 'ops' });
    assert.equal(await recon.isAccountBlocked('sup:002'), true, 'still blocked: one difference is open');
    // The bank's record stands for the flow: Dr the mirror account, Cr suspense.
    const r = await recon.resolve(flow.id, { side: 'channel', reason: '银行确认到账，补记 / the bank confirms the inflow', actor: 'ops' });
    assert.equal(r.decision.transfer_ids, `recon:m${flow.id}`);
    assert.equal(await recon.isAccountBlocked('sup:002'), false);
    const acct = await ledger.getAccount('sup:002');
    assert.equal(acct.debits_posted - acct.credits_posted, 3700n, 'the ledger now agrees with the bank');
    assert.deepEqual(resolved.map((m) => m.type), ['SUPERVISION_BALANCE_MISMATCH', 'SUPERVISION_LEDGER_MISSING']);
    assert.equal((await ledger.verify()).balanced, true);

    // a reversal (冲正) is a flow in the other direction
    assert.deepEqual(bankFlowOf(row('X', 'debit', -100n, null, today)), { txnDate: today, serial: 'X', direction: 'in', amountFen: 100n, balanceFen: null });
  } finally {
    await t.close();
  }
});
