// Repair applications end to end over HTTP (inject) on a real database: scope → units
// and shares, owners' votes (Art. 278), the approval chain with returns, holds on final
// approval, payout success/failure, rejection, emergencies, idempotent retries, access
// and bad requests that change nothing. Money is checked in the ledger.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFund, seedRegister, deposit, household, tokenFor, count, ballot, CITY, type FundStack } from './fund.use.support.ts';
import { fundAccountIds } from '../src/fund/accounts.ts';
import { PG_ONLY } from './helpers.ts';

const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

function application(over: Record<string, unknown> = {}) {
  return {
    requestKey: `req-${Math.random().toString(36).slice(2)}`, estateId: 'E1', scope: 'building', buildingId: 'E1_B1',
    title: '1 幢屋面防水 / roof waterproofing of building 1', description: '屋面防水层老化渗漏，整体翻新 / the roof membrane leaks',
    budgetFen: '100000', contractor: { name: '某某建筑公司', accountNo: '6222020200112233', bankName: '工商银行' },
    items: [{ name: '防水卷材', amountFen: '60000' }, { name: '人工', amountFen: '40000' }], ...over,
  };
}

async function create(s: FundStack, over: Record<string, unknown> = {}, token?: string): Promise<string> {
  const r = await s.call('POST', '/v1/fund/applications', application(over), token);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.id;
}

async function voteAll(s: FundStack, id: string, choices: Array<[string, 'agree' | 'disagree' | 'abstain']>) {
  for (const [unitId, choice] of choices) {
    const r = await ballot(s, id, unitId, choice);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
}

let keySeq = 0;
async function act(s: FundStack, id: string, action: string, extra: Record<string, unknown> = {}, token?: string) {
  return s.call('POST', `/v1/fund/applications/${id}/actions`, { requestKey: `k${(keySeq += 1)}`, action, comment: `${action} 意见`, ...extra }, token);
}

async function approveToEnd(s: FundStack, id: string) {
  let r;
  for (let i = 0; i < 4; i += 1) {
    r = await act(s, id, 'approve');
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  return r as { status: number; body: any };
}

const B1 = ['E1_u1101', 'E1_u1102', 'E1_u1201', 'E1_u1202'];

test('a voted repair: scope, shares, vote passes, approval chain with returns, holds, payout success posts them', async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    await deposit(s, B1.map((u) => [u, 50_000n]));
    const id = await create(s);
    const d0 = await s.call('GET', `/v1/fund/applications/${id}`);
    assert.equal(d0.body.application.status, 'voting');
    assert.deepEqual(d0.body.units.map((u: any) => u.unitId), B1, 'building scope = the units of building 1');
    // shares by area 8950/12000/8950/10030 of 39930, exact to the fen
    assert.deepEqual(d0.body.units.map((u: any) => u.shareFen), ['22414', '30053', '22414', '25119']);
    assert.equal(sum(d0.body.units.map((u: any) => BigInt(u.shareFen))), 100_000n);

    await voteAll(s, id, [['E1_u1101', 'agree'], ['E1_u1102', 'agree'], ['E1_u1201', 'disagree'], ['E1_u1202', 'agree']]);
    // change a vote before the vote closes; the same vote again changes nothing
    await voteAll(s, id, [['E1_u1201', 'agree']]);
    const again = await ballot(s, id, 'E1_u1201', 'agree');
    assert.equal(again.body.changed, false);
    const closed = await s.call('POST', `/v1/fund/applications/${id}/vote/close`, {});
    assert.equal(closed.status, 200);
    assert.equal(closed.body.state, 'reviewing:first_review');
    assert.equal(closed.body.voteResult.passed, true);
    const late = await s.call('POST', `/v1/fund/applications/${id}/votes`, { unitId: 'E1_u1201', choice: 'disagree', votingCode: 'AAAA-AAAA-AAAA' });
    assert.equal(late.status, 409);
    assert.equal(late.body.code, 'FUND_INVALID_STATE');

    // 初审 approve → 审核 returns to 初审 → 初审 approve → 审核 → 复核 returns to the applicant → resubmit
    assert.equal((await act(s, id, 'approve')).body.state, 'reviewing:review');
    assert.equal((await act(s, id, 'return', { to: 'previous' })).body.state, 'reviewing:first_review');
    assert.equal((await act(s, id, 'approve')).body.state, 'reviewing:review');
    assert.equal((await act(s, id, 'approve')).body.state, 'reviewing:recheck');
    assert.equal((await act(s, id, 'return', { to: 'applicant' })).body.state, 'returned');
    const early = await act(s, id, 'approve');
    assert.equal(early.status, 409);
    assert.equal(early.body.code, 'FUND_INVALID_TRANSITION');
    assert.equal((await act(s, id, 'submit')).body.state, 'reviewing:first_review');
    const approved = await approveToEnd(s, id);
    assert.equal(approved.body.status, 'approved');

    // every share is held, nothing posted yet
    const shares = [22_414n, 30_053n, 22_414n, 25_119n];
    for (const [i, u] of B1.entries()) assert.deepEqual(await household(s, u), { principal: 50_000n, principalHeld: shares[i], interest: 0n, interestHeld: 0n });
    const payable = await s.ledger.getAccount(fundAccountIds.payable(id));
    assert.equal(payable.credits_pending, 100_000n);

    const preview = await s.call('GET', `/v1/fund/applications/${id}/preview`);
    assert.equal(preview.status, 200);
    assert.deepEqual(preview.body.short, [], 'its own holds count as available to it');
    assert.deepEqual(preview.body.lines.map((l: any) => l.fromPrincipalFen), shares.map(String));

    const sent = await s.call('POST', `/v1/fund/applications/${id}/payout`, {});
    assert.equal(sent.body.application.status, 'paying');
    const sentAgain = await s.call('POST', `/v1/fund/applications/${id}/payout`, {});
    assert.equal(sentAgain.body.payout.id, sent.body.payout.id, 'one payout per application');
    const bankBefore = await s.ledger.getAccount(fundAccountIds.bank(CITY));
    const paid = await s.call('POST', `/v1/fund/applications/${id}/payout/result`, { result: 'success', bankSerialNo: 'BK20261122001' });
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    assert.equal(paid.body.application.status, 'paid');
    const paidAgain = await s.call('POST', `/v1/fund/applications/${id}/payout/result`, { result: 'success', bankSerialNo: 'BK20261122001' });
    assert.equal(paidAgain.status, 200, 'the same result again is a no-op');
    const contradict = await s.call('POST', `/v1/fund/applications/${id}/payout/result`, { result: 'failed', message: 'x' });
    assert.equal(contradict.body.code, 'FUND_PAYOUT_ALREADY_SETTLED');

    for (const [i, u] of B1.entries()) assert.deepEqual(await household(s, u), { principal: 50_000n - shares[i], principalHeld: 0n, interest: 0n, interestHeld: 0n });
    const bankAfter = await s.ledger.getAccount(fundAccountIds.bank(CITY));
    assert.equal((bankAfter.debits_posted - bankAfter.credits_posted) - (bankBefore.debits_posted - bankBefore.credits_posted), -100_000n);
    const p = await s.ledger.getAccount(fundAccountIds.payable(id));
    assert.deepEqual([p.credits_posted, p.debits_posted, p.credits_pending], [100_000n, 100_000n, 0n]);

    const trail = (await s.call('GET', `/v1/fund/applications/${id}`)).body.actions.map((a: any) => `${a.action}:${a.from}>${a.to}`);
    assert.deepEqual(trail, [
      'create:new>voting', 'close_vote:voting>reviewing:first_review',
      'approve:reviewing:first_review>reviewing:review', 'return:previous:reviewing:review>reviewing:first_review',
      'approve:reviewing:first_review>reviewing:review', 'approve:reviewing:review>reviewing:recheck',
      'return:applicant:reviewing:recheck>returned', 'submit:returned>reviewing:first_review',
      'approve:reviewing:first_review>reviewing:review', 'approve:reviewing:review>reviewing:recheck',
      'approve:reviewing:recheck>reviewing:final_approval', 'approve:reviewing:final_approval>approved',
      'payout:approved>paying', 'payout_success:paying>paid',
    ]);
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});

test('the vote fails on participation, or on approval, and says which condition failed', async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    // participation: only the two smallest of building 1 vote (2 of 4 owners < ⅔)
    const a = await create(s);
    await voteAll(s, a, [['E1_u1101', 'agree'], ['E1_u1201', 'agree']]);
    const ra = await s.call('POST', `/v1/fund/applications/${a}/vote/close`, {});
    assert.equal(ra.body.status, 'vote_failed');
    assert.deepEqual(ra.body.voteResult.failed, ['participation_area', 'participation_owners']);
    // approval: everyone votes, half agree (2 of 4 owners is not more than half)
    const b = await create(s);
    await voteAll(s, b, [['E1_u1101', 'agree'], ['E1_u1102', 'disagree'], ['E1_u1201', 'agree'], ['E1_u1202', 'abstain']]);
    const rb = await s.call('POST', `/v1/fund/applications/${b}/vote/close`, {});
    assert.equal(rb.body.status, 'vote_failed');
    assert.deepEqual(rb.body.voteResult.failed, ['approval_area', 'approval_owners']);
    const after = await act(s, b, 'approve');
    assert.equal(after.status, 409);
    // closing again answers the same
    const rb2 = await s.call('POST', `/v1/fund/applications/${b}/vote/close`, {});
    assert.equal(rb2.body.status, 'vote_failed');
  } finally {
    await s.close();
  }
});

test('an emergency skips the vote, is paid and then published', async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    const stair = ['E1_u1201', 'E1_u1202'];
    await deposit(s, stair.map((u) => [u, 80_000n]));
    const id = await create(s, { scope: 'stair', buildingId: 'E1_B1', stair: '2', emergency: true, emergencyCategory: 'lift', title: '2 单元电梯抢修', items: undefined, budgetFen: '37981' });
    const d = await s.call('GET', `/v1/fund/applications/${id}`);
    assert.equal(d.body.application.state, 'reviewing:first_review');
    assert.deepEqual(d.body.units.map((u: any) => u.unitId), stair, 'stair scope = the units of stair 2');
    assert.equal(d.body.tally, null);
    const v = await s.call('POST', `/v1/fund/applications/${id}/votes`, { unitId: 'E1_u1201', choice: 'agree', votingCode: 'AAAA-AAAA-AAAA' });
    assert.equal(v.body.code, 'FUND_INVALID_STATE');
    assert.equal((await s.call('GET', '/v1/fund/applications/publications')).body.publications.length, 0, 'published afterwards, not before');
    await approveToEnd(s, id);
    await s.call('POST', `/v1/fund/applications/${id}/payout`, {});
    await s.call('POST', `/v1/fund/applications/${id}/payout/result`, { result: 'success', bankSerialNo: 'BK-E-1' });
    const pubs = (await s.call('GET', '/v1/fund/applications/publications?estateId=E1')).body.publications;
    assert.equal(pubs.length, 1);
    assert.equal(pubs[0].applicationId, id);
    assert.equal(pubs[0].body.category, 'lift');
    assert.equal(sum(pubs[0].body.shares.map((x: any) => BigInt(x.shareFen))), 37_981n);
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});

test('a short household blocks final approval with its name and amount, nothing written; interest_first lets interest pay', async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    await deposit(s, [['E1_u1101', 50_000n], ['E1_u1102', 20_000n], ['E1_u1201', 50_000n], ['E1_u1202', 50_000n]]);
    await deposit(s, [['E1_u1102', 10_053n]], 'interest');
    const id = await create(s, { emergency: true, emergencyCategory: 'roof_leak', items: undefined });
    const preview = await s.call('GET', `/v1/fund/applications/${id}/preview`);
    assert.deepEqual(preview.body.short, [{ unitId: 'E1_u1102', shareFen: '30053', availableFen: '20000', shortFen: '10053' }]);
    for (let i = 0; i < 3; i += 1) await act(s, id, 'approve');
    const transfersBefore = await count(s, 'ledger_transfers');
    const blocked = await act(s, id, 'approve');
    assert.equal(blocked.status, 409);
    assert.equal(blocked.body.code, 'FUND_BALANCE_SHORT');
    assert.match(blocked.body.message, /E1_u1102/);
    assert.deepEqual(blocked.body.details.short, [{ unitId: 'E1_u1102', shareFen: '30053', availableFen: '20000', shortFen: '10053' }]);
    assert.equal((await s.call('GET', `/v1/fund/applications/${id}`)).body.application.state, 'reviewing:final_approval');
    assert.equal(await count(s, 'ledger_transfers'), transfersBefore, 'no hold was written');
    assert.deepEqual(await household(s, 'E1_u1101'), { principal: 50_000n, principalHeld: 0n, interest: 0n, interestHeld: 0n });

    const rule = await s.call('PUT', `/v1/fund/applications/rules/${CITY}`, { drawRule: 'interest_first' });
    assert.equal(rule.status, 200);
    const ok = await act(s, id, 'approve');
    assert.equal(ok.body.status, 'approved', JSON.stringify(ok.body));
    assert.deepEqual(await household(s, 'E1_u1102'), { principal: 20_000n, principalHeld: 20_000n, interest: 10_053n, interestHeld: 10_053n });
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});

test('a failed payout voids the holds; rejecting an approved application releases them: balances back', async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    await deposit(s, B1.map((u) => [u, 40_000n]));
    const before = await Promise.all(B1.map((u) => household(s, u)));
    const failed = await create(s, { emergency: true, emergencyCategory: 'fire_system', items: undefined, budgetFen: '60000' });
    await approveToEnd(s, failed);
    const held = await household(s, 'E1_u1102');
    assert.ok(held.principalHeld > 0n);
    await s.call('POST', `/v1/fund/applications/${failed}/payout`, {});
    const r = await s.call('POST', `/v1/fund/applications/${failed}/payout/result`, { result: 'failed', message: '收款账户户名不符 / payee name mismatch' });
    assert.equal(r.body.application.status, 'payout_failed');
    assert.deepEqual(await Promise.all(B1.map((u) => household(s, u))), before);
    const retried = await s.call('POST', `/v1/fund/applications/${failed}/payout/result`, { result: 'failed', message: 'again' });
    assert.equal(retried.status, 200);
    assert.deepEqual(await Promise.all(B1.map((u) => household(s, u))), before);

    const rejected = await create(s, { emergency: true, emergencyCategory: 'facade', items: undefined, budgetFen: '80000' });
    await approveToEnd(s, rejected);
    assert.ok((await household(s, 'E1_u1101')).principalHeld > 0n);
    const property = await tokenFor(s, 'property', '物业甲', ['E1']);
    const denied = await act(s, rejected, 'reject', {}, property);
    assert.equal(denied.status, 403);
    const rj = await act(s, rejected, 'reject');
    assert.equal(rj.body.status, 'rejected');
    assert.deepEqual(await Promise.all(B1.map((u) => household(s, u))), before);
    const pay = await s.call('POST', `/v1/fund/applications/${rejected}/payout`, {});
    assert.equal(pay.body.code, 'FUND_INVALID_STATE');
    // a rejection in the chain (before approval) holds nothing and ends it
    const third = await create(s, { emergency: true, emergencyCategory: 'lift', items: undefined });
    assert.equal((await act(s, third, 'reject')).body.status, 'rejected');
    assert.equal((await act(s, third, 'approve')).body.code, 'FUND_INVALID_STATE');
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});

test('retries are idempotent: application by requestKey, actions by requestKey, votes by unit', async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    await deposit(s, B1.map((u) => [u, 50_000n]));
    const body = application({ requestKey: 'same-key', emergency: true, emergencyCategory: 'roof_leak', items: undefined });
    const [a, b] = await Promise.all([s.call('POST', '/v1/fund/applications', body), s.call('POST', '/v1/fund/applications', body)]);
    assert.equal(a.body.id, b.body.id);
    assert.equal(await count(s, 'fund_applications'), 1);
    const clash = await s.call('POST', '/v1/fund/applications', { ...body, budgetFen: '100001' });
    assert.equal(clash.status, 409);
    assert.equal(clash.body.code, 'FUND_REQUEST_KEY_REUSED');
    const id = a.body.id;
    for (let i = 0; i < 3; i += 1) await act(s, id, 'approve');
    const final = { requestKey: 'final-approve', action: 'approve' };
    const [f1, f2] = await Promise.all([s.call('POST', `/v1/fund/applications/${id}/actions`, final), s.call('POST', `/v1/fund/applications/${id}/actions`, final)]);
    assert.equal(f1.body.status, 'approved');
    assert.equal(f2.body.status, 'approved');
    const f3 = await s.call('POST', `/v1/fund/applications/${id}/actions`, final);
    assert.equal(f3.status, 200, 'a retried approval answers with the application, no second hold');
    const reused = await s.call('POST', `/v1/fund/applications/${id}/actions`, { requestKey: 'final-approve', action: 'reject', comment: 'x' });
    assert.equal(reused.body.code, 'FUND_REQUEST_KEY_REUSED', 'a key names one request');
    const actions = (await s.call('GET', `/v1/fund/applications/${id}`)).body.actions;
    assert.equal(actions.filter((x: any) => x.action === 'approve').length, 4);
    assert.equal((await household(s, 'E1_u1102')).principalHeld, 30_053n);
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});

test('access: property companies see their estates, owners vote only for their units, the center sees all', async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    await seedRegister(s, 'E2');
    const mine = await tokenFor(s, 'property', '物业甲', ['E1']);
    const other = await tokenFor(s, 'property', '物业乙', ['E2']);
    const owner = await tokenFor(s, 'owner', '业主张三', null, ['E1_u1101']);
    const id = await create(s, {}, mine);
    assert.equal((await s.call('GET', `/v1/fund/applications/${id}`, undefined, other)).body.code, 'FUND_FORBIDDEN');
    assert.equal((await s.call('GET', '/v1/fund/applications', undefined, other)).body.applications.length, 0);
    assert.equal((await s.call('GET', '/v1/fund/applications', undefined, mine)).body.applications.length, 1);
    assert.equal((await s.call('POST', '/v1/fund/applications', application({ estateId: 'E2', buildingId: 'E2_B1' }), mine)).body.code, 'FUND_FORBIDDEN');
    assert.equal((await s.call('GET', `/v1/fund/applications/${id}`, undefined, owner)).status, 200, 'an owner sees applications covering the unit');
    assert.equal((await s.call('POST', `/v1/fund/applications/${id}/votes`, { unitId: 'E1_u1102', choice: 'agree' }, owner)).body.code, 'FUND_FORBIDDEN');
    assert.equal((await s.call('POST', `/v1/fund/applications/${id}/votes`, { unitId: 'E1_u1101', choice: 'agree' }, owner)).body.code, 'FUND_VOTE_PROOF_REQUIRED', 'a center-issued owner token is no proof by itself');
    const v = await ballot(s, id, 'E1_u1101', 'agree', owner);
    assert.equal(v.status, 200);
    assert.equal((await s.call('POST', `/v1/fund/applications/${id}/votes`, { unitId: 'E1_u1101', choice: 'agree' }, mine)).body.code, 'FUND_FORBIDDEN', 'the property company does not vote');
    assert.equal((await s.call('POST', `/v1/fund/applications/${id}/vote/close`, {}, mine)).body.code, 'FUND_FORBIDDEN');
    assert.equal((await s.call('POST', '/v1/fund/interest', { city: CITY, period: '2020-Q1', amountFen: '1' }, mine)).body.code, 'FUND_FORBIDDEN');
    assert.equal((await s.call('GET', '/v1/fund/applications', undefined, 'nonsense')).status, 401);
  } finally {
    await s.close();
  }
});

test('bad requests are 4xx with a FUND_ code and change nothing', async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    const cases: Array<[Record<string, unknown>, string, RegExp?]> = [
      [{ budgetFen: '0' }, 'FUND_INVALID_REQUEST', /budgetFen/],
      [{ budgetFen: 12.5 }, 'FUND_INVALID_REQUEST', /budgetFen/],
      [{ requestKey: undefined }, 'FUND_INVALID_REQUEST', /requestKey/],
      [{ scope: 'city' }, 'FUND_INVALID_REQUEST', /scope/],
      [{ estateId: 'NOPE' }, 'FUND_ESTATE_NOT_FOUND'],
      [{ buildingId: 'E2_B9' }, 'FUND_BUILDING_NOT_FOUND'],
      [{ scope: 'stair', stair: '9' }, 'FUND_NO_UNITS_IN_SCOPE'],
      [{ scope: 'estate' }, 'FUND_INVALID_REQUEST', /buildingId/],
      [{ contractor: { name: 'x', accountNo: 'abc', bankName: 'y' } }, 'FUND_INVALID_REQUEST', /accountNo/],
      [{ items: [{ name: 'a', amountFen: '1' }] }, 'FUND_INVALID_REQUEST', /items/],
      [{ emergency: true }, 'FUND_INVALID_REQUEST', /emergencyCategory/],
      [{ emergency: true, emergencyCategory: 'garden' }, 'FUND_INVALID_REQUEST', /emergencyCategory/],
      [{ emergencyCategory: 'lift' }, 'FUND_INVALID_REQUEST', /emergencyCategory/],
      [{ contractor: undefined }, 'FUND_INVALID_REQUEST', /contractor/],
      [{ items: ['roof'] }, 'FUND_INVALID_REQUEST', /items\[0\]/],
    ];
    for (const [over, code, message] of cases) {
      const r = await s.call('POST', '/v1/fund/applications', application(over));
      assert.equal(r.body.code, code, `${JSON.stringify(over)} → ${JSON.stringify(r.body)}`);
      assert.ok(r.status >= 400 && r.status < 500);
      assert.ok(r.body.requestId);
      if (message) assert.match(r.body.message, message);
    }
    assert.equal(await count(s, 'fund_applications'), 0);
    assert.equal(await count(s, 'fund_application_actions'), 0);
    const id = await create(s);
    const bad: Array<[string, unknown, string]> = [
      [`/v1/fund/applications/${id}/votes`, { unitId: 'E1_u2101', choice: 'agree', votingCode: 'AAAA-AAAA-AAAA' }, 'FUND_UNIT_NOT_IN_SCOPE'],
      [`/v1/fund/applications/${id}/votes`, { unitId: 'E1_u1101', choice: 'agree' }, 'FUND_VOTE_PROOF_REQUIRED'],
      [`/v1/fund/applications/${id}/votes`, { unitId: 'E1_u1101', choice: 'agree', votingCode: 'AAAA-AAAA-AAAA' }, 'FUND_VOTING_CODE_INVALID'],
      [`/v1/fund/applications/${id}/votes`, { unitId: 'E1_u1101', choice: 'maybe' }, 'FUND_INVALID_REQUEST'],
      [`/v1/fund/applications/${id}/actions`, { action: 'approve' }, 'FUND_INVALID_REQUEST'],
      [`/v1/fund/applications/${id}/actions`, { requestKey: 'x1', action: 'approve' }, 'FUND_INVALID_STATE'],
      [`/v1/fund/applications/${id}/actions`, { requestKey: 'x2', action: 'return', comment: 'c', to: 'nowhere' }, 'FUND_INVALID_REQUEST'],
      [`/v1/fund/applications/${id}/payout`, {}, 'FUND_INVALID_STATE'],
      [`/v1/fund/applications/${id}/payout/result`, { result: 'success', bankSerialNo: 'b' }, 'FUND_INVALID_STATE'],
      ['/v1/fund/applications/NOPE/actions', { requestKey: 'x3', action: 'approve' }, 'FUND_APPLICATION_NOT_FOUND'],
    ];
    for (const [url, body, code] of bad) {
      const r = await s.call('POST', url, body);
      assert.equal(r.body.code, code, `${url} ${JSON.stringify(body)} → ${JSON.stringify(r.body)}`);
    }
    assert.equal(await count(s, 'fund_votes'), 0);
    assert.equal(await count(s, 'fund_application_actions'), 1);
    assert.equal((await s.call('PUT', `/v1/fund/applications/rules/${CITY}`, { drawRule: 'all' })).body.code, 'FUND_INVALID_REQUEST');
  } finally {
    await s.close();
  }
});

test('owner counting: one per unit by default (co-owners count once); "register" counts the owners the register lists', async () => {
  for (const [ownerCount, passed] of [['per_unit', false], ['register', true]] as const) {
    const s = await startFund(undefined, { ownerCount });
    try {
      await seedRegister(s);
      const { sql } = await import('../src/platform/db.ts');
      await sql`UPDATE register_units SET owners = '[{"name":"甲"},{"name":"乙"},{"name":"丙"}]'::jsonb WHERE id = 'E1_u1102'`.execute(s.t.db.kysely);
      const id = await create(s);
      await voteAll(s, id, [['E1_u1101', 'agree'], ['E1_u1102', 'agree'], ['E1_u1201', 'disagree'], ['E1_u1202', 'disagree']]);
      const r = await s.call('POST', `/v1/fund/applications/${id}/vote/close`, {});
      // area: 20 950 of 39 930 agree (> ½) either way; owners: 2 of 4 (per unit) vs 4 of 6 (register)
      assert.equal(r.body.voteResult.passed, passed, `${ownerCount}: ${JSON.stringify(r.body.voteResult)}`);
      assert.deepEqual(r.body.voteResult.failed, passed ? [] : ['approval_owners']);
    } finally {
      await s.close();
    }
  }
});

test('concurrent final approvals drawing on the same households: the ledger lets only what the balances cover', { skip: PG_ONLY }, async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    await deposit(s, B1.map((u) => [u, 40_000n]));
    // each application alone fits every household's 40 000; both together do not (E1_u1102: 2 × 30 053)
    const ids = [await create(s, { emergency: true, emergencyCategory: 'lift', items: undefined }), await create(s, { emergency: true, emergencyCategory: 'lift', items: undefined })];
    for (const id of ids) for (let i = 0; i < 3; i += 1) await act(s, id, 'approve');
    const results = await Promise.all(ids.map((id) => act(s, id, 'approve')));
    const statuses = results.map((r) => r.body.status ?? r.body.code).sort();
    assert.deepEqual(statuses, ['FUND_BALANCE_SHORT', 'approved']);
    for (const u of B1) {
      const h = await household(s, u);
      assert.ok(h.principalHeld <= h.principal, `${u} never held beyond its balance`);
    }
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});

test('wired into the platform: the routes answer behind the admin token', async () => {
  const { openTestDb } = await import('./helpers.ts');
  const { createPlatform } = await import('../src/server.ts');
  const { loadConfig } = await import('../src/platform/config.ts');
  const t = await openTestDb();
  const platform = await createPlatform(loadConfig({ CUSTOS_DATA_DIR: 'memory', CUSTOS_ADMIN_TOKEN: 'wired-admin-token-0123456789', CUSTOS_MASTER_KEY: '0'.repeat(64), LOG_LEVEL: 'silent' }), { db: t.db });
  try {
    const ok = await platform.app.inject({ method: 'GET', url: '/v1/fund/applications', headers: { authorization: 'Bearer wired-admin-token-0123456789' } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(JSON.parse(ok.body), { applications: [] });
    const interest = await platform.app.inject({ method: 'GET', url: '/v1/fund/interest', headers: { authorization: 'Bearer wired-admin-token-0123456789' } });
    assert.equal(interest.statusCode, 200);
    const anon = await platform.app.inject({ method: 'GET', url: '/v1/fund/applications' });
    assert.equal(anon.statusCode, 401);
  } finally {
    await platform.close();
    await t.close();
  }
});

test('property: for random estates and budgets the holds sum exactly to the budget and no household is held beyond its balance', async () => {
  const fc = (await import('fast-check')).default;
  const s = await startFund();
  let n = 0;
  try {
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ areaM2e2: fc.bigInt({ min: 1n, max: 30_000n }), balance: fc.bigInt({ min: 0n, max: 200_000n }) }), { minLength: 1, maxLength: 12 }),
      fc.bigInt({ min: 1n, max: 300_000n }),
      async (spec, budget) => {
        n += 1;
        const estate = `P${n}`;
        const units = spec.map((u, i) => ({ id: `${estate}_u${i}`, building: `${estate}_B`, stair: '1', room: String(100 + i), areaM2e2: u.areaM2e2 }));
        await seedRegister(s, estate, units);
        const funded = spec.map((u, i) => [units[i].id, u.balance] as [string, bigint]).filter(([, b]) => b > 0n);
        if (funded.length > 0) await deposit(s, funded);
        const id = await create(s, { estateId: estate, scope: 'estate', buildingId: undefined, budgetFen: budget.toString(), items: undefined, emergency: true, emergencyCategory: 'facade' });
        for (let i = 0; i < 3; i += 1) await act(s, id, 'approve');
        const preview = (await s.call('GET', `/v1/fund/applications/${id}/preview`)).body;
        const r = await act(s, id, 'approve');
        if (preview.short.length > 0) {
          assert.equal(r.body.code, 'FUND_BALANCE_SHORT');
          assert.deepEqual(r.body.details.short.map((x: any) => x.unitId), preview.short.map((x: any) => x.unitId));
          return;
        }
        assert.equal(r.body.status, 'approved');
        let held = 0n;
        for (const [i, u] of units.entries()) {
          const h = await household(s, u.id).catch(() => ({ principal: 0n, principalHeld: 0n }));
          assert.ok(h.principalHeld <= h.principal && h.principal === spec[i].balance);
          held += h.principalHeld;
        }
        assert.equal(held, budget);
        assert.equal((await s.ledger.getAccount(fundAccountIds.payable(id))).credits_pending, budget);
      },
    ), { numRuns: 12 });
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});

test('a configured two-node chain; an application keeps the chain it was created with', async () => {
  const s = await startFund();
  try {
    await seedRegister(s);
    await deposit(s, B1.map((u) => [u, 50_000n]));
    const before = await create(s, { emergency: true, emergencyCategory: 'lift', items: undefined });
    const { createFundUse } = await import('../src/fund/use/index.ts');
    const short = createFundUse({ db: s.t.db, ledger: s.ledger, pii: s.pii, clock: s.clock, chain: [
      { key: 'committee', label: '业委会审核 / committee', roles: ['committee', 'center'] },
      { key: 'authority', label: '主管部门审批 / authority', roles: ['center'] },
    ] });
    const center = { role: 'center' as const, subject: 'center', estateIds: null, unitIds: null };
    const committee = { role: 'committee' as const, subject: '业委会', estateIds: ['E1'], unitIds: null };
    const created = await short.create(committee, application({ emergency: true, emergencyCategory: 'lift', items: undefined, budgetFen: '1000' }));
    assert.equal(short.statusName(created), 'reviewing:committee');
    const one = await short.act(committee, created.id, { requestKey: 'c1', action: 'approve' });
    assert.equal(short.statusName(one), 'reviewing:authority');
    await assert.rejects(short.act(committee, created.id, { requestKey: 'c2', action: 'approve' }), (e: any) => e.code === 'FUND_FORBIDDEN');
    const done = await short.act(center, created.id, { requestKey: 'c3', action: 'approve' });
    assert.equal(done.status, 'approved');
    // the older application still walks the four default nodes, even through the new service
    let a = await short.act(center, before, { requestKey: 'o1', action: 'approve' });
    assert.equal(short.statusName(a), 'reviewing:review');
    for (let i = 2; i <= 4; i += 1) a = await short.act(center, before, { requestKey: `o${i}`, action: 'approve' });
    assert.equal(a.status, 'approved');
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});

test('a payout waits while the supervision account has an open reconciliation difference (日终对账), nothing written', async () => {
  const blocked = new Set<string>(['fund:C1:bank']);
  const asked: string[] = [];
  const s = await startFund(undefined, { accountBlocked: async (id) => { asked.push(id); return blocked.has(id); } });
  try {
    await seedRegister(s);
    await deposit(s, B1.map((u) => [u, 80_000n] as [string, bigint]));
    const id = await create(s, { emergency: true, emergencyCategory: 'lift', items: undefined, budgetFen: '40000' });
    await approveToEnd(s, id);
    const transfersBefore = await count(s, 'ledger_transfers');
    const refused = await s.call('POST', `/v1/fund/applications/${id}/payout`, {});
    assert.equal(refused.status, 409);
    assert.equal(refused.body.code, 'FUND_ACCOUNT_BLOCKED');
    assert.match(refused.body.message, /fund:C1:bank/);
    assert.deepEqual(asked, ['fund:C1:bank']);
    assert.equal((await s.call('GET', `/v1/fund/applications/${id}`)).body.application.state, 'approved', 'nothing changed');
    assert.equal(await count(s, 'ledger_transfers'), transfersBefore);
    blocked.clear(); // the operator resolved the difference
    const sent = await s.call('POST', `/v1/fund/applications/${id}/payout`, {});
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const done = await s.call('POST', `/v1/fund/applications/${id}/payout/result`, { result: 'success', bankSerialNo: 'BK-BLOCK-1' });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal((await s.ledger.verify()).balanced, true);
  } finally {
    await s.close();
  }
});
