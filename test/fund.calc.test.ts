// The maintenance fund's pure calculations: apportionment by area, interest by
// day-weighted balance, the Civil Code Art. 278 vote and the approval chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  apportion, previewApportionment, allocateInterest, dayWeightedBalance, parsePeriod, tally, meets, VOTE_RULES,
  transition, listTransitions, validateChain, DEFAULT_CHAIN, CHAIN_ACTIONS, CalcError,
  type AreaUnit, type Ballot, type ChainState, type BalanceHistory,
} from '../src/fund/calc/index.ts';

const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);
const abs = (x: bigint) => (x < 0n ? -x : x);

const unitsArb = fc.uniqueArray(
  fc.record({ unitId: fc.stringMatching(/^u_[a-z0-9]{1,6}$/), areaM2e2: fc.bigInt({ min: 1n, max: 50_000_00n }) }),
  { minLength: 1, maxLength: 60, selector: (u) => u.unitId },
);
const costArb = fc.bigInt({ min: 0n, max: 10n ** 12n });

// --- apportionment --------------------------------------------------------------------

test('apportionment: shares sum to the cost exactly, none negative, each within one fen of its exact proportion', () => {
  fc.assert(fc.property(costArb, unitsArb, (cost, units) => {
    const shares = apportion(cost, units);
    assert.equal(shares.length, units.length);
    assert.equal(sum(shares.map((s) => s.shareFen)), cost);
    const totalArea = sum(units.map((u) => u.areaM2e2));
    for (const s of shares) {
      assert.ok(s.shareFen >= 0n);
      // |share − cost·a/A| < 1  ⇔  |share·A − cost·a| < A
      assert.ok(abs(s.shareFen * totalArea - cost * s.areaM2e2) < totalArea, `${s.unitId} off by a fen or more`);
    }
  }), { numRuns: 300 });
});

test('apportionment: deterministic and independent of input order; larger area never pays less', () => {
  const withShuffle = unitsArb.chain((units) => fc.tuple(fc.constant(units), fc.shuffledSubarray(units, { minLength: units.length, maxLength: units.length })));
  fc.assert(fc.property(costArb, withShuffle, (cost, [units, shuffled]) => {
    assert.deepEqual(apportion(cost, shuffled), apportion(cost, units));
    assert.deepEqual(apportion(cost, units), apportion(cost, units));
    const shares = apportion(cost, units);
    for (const a of shares) for (const b of shares) if (a.areaM2e2 > b.areaM2e2) assert.ok(a.shareFen >= b.shareFen);
  }), { numRuns: 200 });
});

test('apportionment: ties go to the smaller unit id', () => {
  const shares = apportion(2n, [{ unitId: 'u_c', areaM2e2: 100n }, { unitId: 'u_a', areaM2e2: 100n }, { unitId: 'u_b', areaM2e2: 100n }]);
  assert.deepEqual(shares.map((s) => [s.unitId, s.shareFen]), [['u_a', 1n], ['u_b', 1n], ['u_c', 0n]]);
});

test('apportionment refuses bad input with a typed error', () => {
  const code = (fn: () => unknown) => { try { fn(); } catch (e) { assert.ok(e instanceof CalcError); return e.code; } return 'no error'; };
  assert.equal(code(() => apportion(1n, [])), 'no_units');
  assert.equal(code(() => apportion(-1n, [{ unitId: 'u', areaM2e2: 1n }])), 'amount_negative');
  assert.equal(code(() => apportion(1n, [{ unitId: 'u', areaM2e2: 0n }])), 'area_not_positive');
  assert.equal(code(() => apportion(1n, [{ unitId: 'u', areaM2e2: 1n }, { unitId: 'u', areaM2e2: 2n }])), 'duplicate_unit');
});

test('apportionment preview: holds plus shortfall equal each share; short households are exactly those whose money is not enough', () => {
  const availArb = fc.bigInt({ min: 0n, max: 10n ** 7n });
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: 10n ** 8n }), unitsArb, fc.array(fc.tuple(availArb, availArb), { minLength: 60, maxLength: 60 }), fc.constantFrom('principal_only', 'interest_first') as fc.Arbitrary<'principal_only' | 'interest_first'>, (cost, units, avail, rule) => {
    const available = units.map((u, i) => ({ unitId: u.unitId, principalFen: avail[i][0], interestFen: avail[i][1] }));
    const p = previewApportionment(cost, units, available, rule);
    assert.equal(sum(p.lines.map((l) => l.shareFen)), cost);
    for (const l of p.lines) {
      assert.equal(l.fromInterestFen + l.fromPrincipalFen + l.shortFen, l.shareFen);
      assert.ok(l.fromPrincipalFen >= 0n && l.fromInterestFen >= 0n && l.shortFen >= 0n);
      assert.ok(l.fromPrincipalFen <= l.availablePrincipalFen && l.fromInterestFen <= l.availableInterestFen);
      const usable = l.availablePrincipalFen + (rule === 'interest_first' ? l.availableInterestFen : 0n);
      assert.equal(l.shortFen > 0n, usable < l.shareFen);
      if (rule === 'principal_only') assert.equal(l.fromInterestFen, 0n);
      // interest first: principal is only touched when interest is used up
      if (rule === 'interest_first' && l.fromPrincipalFen > 0n) assert.equal(l.fromInterestFen, l.availableInterestFen);
    }
    assert.deepEqual(p.short.map((s) => s.unitId), p.lines.filter((l) => l.shortFen > 0n).map((l) => l.unitId));
    assert.equal(p.shortTotalFen, sum(p.lines.map((l) => l.shortFen)));
  }), { numRuns: 200 });
});

test('apportionment preview example: a 1 000.00 yuan roof repair over three units', () => {
  const units: AreaUnit[] = [{ unitId: 'u_1', areaM2e2: 8_950n }, { unitId: 'u_2', areaM2e2: 12_000n }, { unitId: 'u_3', areaM2e2: 8_950n }];
  const p = previewApportionment(100_000n, units, [
    { unitId: 'u_1', principalFen: 50_000n, interestFen: 0n },
    { unitId: 'u_2', principalFen: 30_000n, interestFen: 20_000n },
    { unitId: 'u_3', principalFen: 10_000n, interestFen: 0n },
  ], 'principal_only');
  // 100000 × 8950/29900 = 29933.11…, 12000/29900 → 40133.77…: floors 29933+40133+29933 = 99999, the fen goes to u_2 (.77)
  assert.deepEqual(p.lines.map((l) => l.shareFen), [29_933n, 40_134n, 29_933n]);
  assert.deepEqual(p.short, [
    { unitId: 'u_2', shareFen: 40_134n, availableFen: 30_000n, shortFen: 10_134n },
    { unitId: 'u_3', shareFen: 29_933n, availableFen: 10_000n, shortFen: 19_933n },
  ]);
  const withInterest = previewApportionment(100_000n, units, [
    { unitId: 'u_1', principalFen: 50_000n, interestFen: 0n },
    { unitId: 'u_2', principalFen: 30_000n, interestFen: 20_000n },
    { unitId: 'u_3', principalFen: 10_000n, interestFen: 0n },
  ], 'interest_first');
  assert.deepEqual(withInterest.short.map((s) => s.unitId), ['u_3']);
  assert.deepEqual([withInterest.lines[1].fromInterestFen, withInterest.lines[1].fromPrincipalFen], [20_000n, 20_134n]);
});

// --- interest -------------------------------------------------------------------------

const weightsArb = fc.uniqueArray(
  fc.record({ unitId: fc.stringMatching(/^u_[a-z0-9]{1,6}$/), weight: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 10n ** 14n })) }),
  { minLength: 1, maxLength: 60, selector: (w) => w.unitId },
).filter((ws) => ws.some((w) => w.weight > 0n));

test('interest allocation: sums exactly, within one fen of proportional, zero balances get zero, floor rule holds', () => {
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: 10n ** 10n }), weightsArb, (interest, weights) => {
    const shares = allocateInterest(interest, weights);
    assert.equal(sum(shares.map((s) => s.shareFen)), interest);
    const W = sum(weights.map((w) => w.weight));
    for (const s of shares) {
      assert.ok(s.shareFen >= 0n);
      if (s.weight === 0n) assert.equal(s.shareFen, 0n);
      const floor = (interest * s.weight) / W;
      assert.ok(s.shareFen === floor || s.shareFen === floor + 1n, 'floor, or floor plus one residue fen');
      assert.ok(abs(s.shareFen * W - interest * s.weight) < W);
    }
    const rotated = [...weights.slice(1), weights[0]].reverse();
    assert.deepEqual(allocateInterest(interest, rotated), shares, 'independent of input order');
  }), { numRuns: 300 });
});

test('interest allocation refuses an all-zero period (nothing to allocate by)', () => {
  assert.throws(() => allocateInterest(100n, [{ unitId: 'u_a', weight: 0n }]), (e: unknown) => e instanceof CalcError && e.code === 'no_weight');
});

test('day-weighted balance equals the day-by-day sum of end-of-day balances', () => {
  const histArb = fc.integer({ min: 1, max: 92 }).chain((days) => fc.record({
    days: fc.constant(days),
    openingFen: fc.bigInt({ min: 0n, max: 10n ** 9n }),
    changes: fc.array(fc.record({ day: fc.integer({ min: 0, max: days - 1 }), balanceFen: fc.bigInt({ min: 0n, max: 10n ** 9n }) }), { maxLength: 20 })
      .map((cs) => [...cs].sort((a, b) => a.day - b.day)),
  }));
  fc.assert(fc.property(histArb, ({ days, openingFen, changes }) => {
    const h: BalanceHistory = { unitId: 'u_x', openingFen, changes };
    let naive = 0n;
    for (let d = 0; d < days; d += 1) {
      let bal = openingFen;
      for (const c of changes) if (c.day <= d) bal = c.balanceFen;
      naive += bal;
    }
    assert.equal(dayWeightedBalance(h, days), naive);
  }), { numRuns: 300 });
});

test('day-weighted balance: a deposit on the last day of a quarter counts one day', () => {
  assert.equal(dayWeightedBalance({ unitId: 'u', openingFen: 0n, changes: [{ day: 89, balanceFen: 1_000n }] }, 90), 1_000n);
  assert.equal(dayWeightedBalance({ unitId: 'u', openingFen: 500n, changes: [] }, 90), 45_000n);
  assert.throws(() => dayWeightedBalance({ unitId: 'u', openingFen: 0n, changes: [{ day: 90, balanceFen: 1n }] }, 90), CalcError);
});

test('periods: quarters, months and years in China-time days', () => {
  assert.deepEqual(parsePeriod('2026-Q1'), { label: '2026-Q1', fromDate: '2026-01-01', toDateExclusive: '2026-04-01', days: 90 });
  assert.equal(parsePeriod('2024-Q1').days, 91);
  assert.deepEqual(parsePeriod('2026-Q4'), { label: '2026-Q4', fromDate: '2026-10-01', toDateExclusive: '2027-01-01', days: 92 });
  assert.equal(parsePeriod('2026-02').days, 28);
  assert.equal(parsePeriod('2024').days, 366);
  for (const bad of ['2026-Q5', '2026Q1', '26-Q1', '2026-13', '']) assert.throws(() => parsePeriod(bad), CalcError);
});

// --- vote (Civil Code Art. 278) -------------------------------------------------------

const ballots = (spec: Array<[bigint, Ballot['choice']]>): Ballot[] => spec.map(([area, choice], i) => ({ unitId: `u_${String(i).padStart(3, '0')}`, areaM2e2: area, owners: 1n, choice }));

test('vote: use passes with ⅔ participation and more than half agreeing by area and by owners', () => {
  // 6 units of 100 ㎡: 4 vote (⅔ exactly: ≥ passes), 3 agree (3/4 > ½)
  const t = tally(VOTE_RULES.use, ballots([[100n, 'agree'], [100n, 'agree'], [100n, 'agree'], [100n, 'disagree'], [100n, null], [100n, null]]));
  assert.equal(t.passed, true);
  assert.deepEqual(t.failed, []);
  assert.equal(t.participatingAreaM2e2, 400n);
});

test('vote: fails on participation (area below ⅔ even though most owners voted)', () => {
  // owners: 4 of 6 vote (⅔ ok); area: 4×50 of (4×50 + 2×300) = 200/800 < ⅔
  const t = tally(VOTE_RULES.use, ballots([[50n, 'agree'], [50n, 'agree'], [50n, 'agree'], [50n, 'agree'], [300n, null], [300n, null]]));
  assert.equal(t.passed, false);
  assert.deepEqual(t.failed, ['participation_area']);
});

test('vote: fails on approval — exactly half is not more than half (use), ¾ is enough to raise', () => {
  const half = tally(VOTE_RULES.use, ballots([[100n, 'agree'], [100n, 'disagree'], [100n, 'agree'], [100n, 'abstain']]));
  assert.deepEqual(half.failed, ['approval_area', 'approval_owners']);
  const threeQuarters = ballots([[100n, 'agree'], [100n, 'agree'], [100n, 'agree'], [100n, 'disagree']]);
  assert.equal(tally(VOTE_RULES.raise, threeQuarters).passed, true);
  assert.equal(tally(VOTE_RULES.use, threeQuarters).passed, true);
  const twoThirds = ballots([[100n, 'agree'], [100n, 'agree'], [100n, 'disagree']]);
  assert.equal(tally(VOTE_RULES.use, twoThirds).passed, true);
  assert.deepEqual(tally(VOTE_RULES.raise, twoThirds).failed, ['approval_area', 'approval_owners']);
});

test('vote: area and owner conditions are independent (big unit agrees, small units disagree)', () => {
  const t = tally(VOTE_RULES.use, ballots([[1000n, 'agree'], [10n, 'disagree'], [10n, 'disagree']]));
  assert.deepEqual(t.failed, ['approval_owners']);
});

test('vote: the tally matches an independent rational check on random ballots (both rules)', () => {
  const ballotArb = fc.array(fc.record({ areaM2e2: fc.bigInt({ min: 1n, max: 100_000n }), owners: fc.bigInt({ min: 1n, max: 3n }), choice: fc.constantFrom('agree', 'disagree', 'abstain', null) }), { minLength: 1, maxLength: 40 });
  fc.assert(fc.property(ballotArb, fc.constantFrom('use', 'raise') as fc.Arbitrary<'use' | 'raise'>, (raw, ruleName) => {
    const bs: Ballot[] = raw.map((b, i) => ({ unitId: `u_${i}`, ...b, choice: b.choice as Ballot['choice'] }));
    const t = tally(VOTE_RULES[ruleName], bs);
    const s = (pred: (b: Ballot) => boolean, k: 'areaM2e2' | 'owners') => sum(bs.filter(pred).map((b) => b[k]));
    const all = () => true;
    const voted = (b: Ballot) => b.choice !== null;
    const agree = (b: Ballot) => b.choice === 'agree';
    // with numbers: participation ≥ 2/3 ⇔ 3p ≥ 2T; use: 2a > p; raise: 4a ≥ 3p
    const ok = (k: 'areaM2e2' | 'owners') => 3n * s(voted, k) >= 2n * s(all, k)
      && s(voted, k) > 0n && (ruleName === 'use' ? 2n * s(agree, k) > s(voted, k) : 4n * s(agree, k) >= 3n * s(voted, k));
    assert.equal(t.passed, ok('areaM2e2') && ok('owners'));
    assert.equal(t.participatingAreaM2e2, s(voted, 'areaM2e2'));
  }), { numRuns: 400 });
});

test('vote: nobody voting fails participation, never divides by zero', () => {
  const t = tally(VOTE_RULES.use, ballots([[100n, null]]));
  assert.deepEqual(t.failed, ['participation_area', 'participation_owners', 'approval_area', 'approval_owners']);
  assert.equal(meets(0n, 0n, VOTE_RULES.use.approval), false);
});

// --- approval chain --------------------------------------------------------------------

test('approval chain: the full transition table of the default chain', () => {
  assert.deepEqual(listTransitions(DEFAULT_CHAIN), [
    { from: 'applicant', action: 'submit', to: 'first_review' },
    { from: 'first_review', action: 'approve', to: 'review' },
    { from: 'first_review', action: 'return:previous', to: 'applicant' },
    { from: 'first_review', action: 'return:applicant', to: 'applicant' },
    { from: 'first_review', action: 'reject', to: 'rejected' },
    { from: 'review', action: 'approve', to: 'recheck' },
    { from: 'review', action: 'return:previous', to: 'first_review' },
    { from: 'review', action: 'return:applicant', to: 'applicant' },
    { from: 'review', action: 'reject', to: 'rejected' },
    { from: 'recheck', action: 'approve', to: 'final_approval' },
    { from: 'recheck', action: 'return:previous', to: 'review' },
    { from: 'recheck', action: 'return:applicant', to: 'applicant' },
    { from: 'recheck', action: 'reject', to: 'rejected' },
    { from: 'final_approval', action: 'approve', to: 'approved' },
    { from: 'final_approval', action: 'return:previous', to: 'recheck' },
    { from: 'final_approval', action: 'return:applicant', to: 'applicant' },
    { from: 'final_approval', action: 'reject', to: 'rejected' },
  ]);
});

test('approval chain: invalid transitions and wrong roles are typed errors; terminal states accept nothing', () => {
  const err = (s: ChainState, a: (typeof CHAIN_ACTIONS)[number], role = 'center') => {
    try { transition(DEFAULT_CHAIN, s, a, role); } catch (e) { assert.ok(e instanceof CalcError); return e.code; }
    return 'ok';
  };
  for (const a of CHAIN_ACTIONS) {
    assert.equal(err({ at: 'approved' }, a), 'invalid_transition');
    assert.equal(err({ at: 'rejected' }, a), 'invalid_transition');
  }
  assert.equal(err({ at: 'applicant' }, { kind: 'approve' }), 'invalid_transition');
  assert.equal(err({ at: 'node', node: 1 }, { kind: 'submit' }), 'invalid_transition');
  assert.equal(err({ at: 'node', node: 1 }, { kind: 'approve' }, 'committee'), 'role_not_allowed');
  assert.equal(err({ at: 'node', node: 0 }, { kind: 'approve' }, 'committee'), 'ok');
  assert.equal(err({ at: 'node', node: 0 }, { kind: 'approve' }, 'property'), 'role_not_allowed');
});

test('approval chain: any action sequence stays in the machine; reaching approved needs every node approved in order', () => {
  const nodesArb = fc.integer({ min: 1, max: 6 }).map((n) => Array.from({ length: n }, (_, i) => ({ key: `n${i}`, label: `n${i}`, roles: ['center'] })));
  fc.assert(fc.property(nodesArb, fc.array(fc.constantFrom(...CHAIN_ACTIONS), { maxLength: 60 }), (chain, actions) => {
    validateChain(chain);
    let s = { at: 'applicant' } as ChainState;
    let highest = -1;
    for (const a of actions) {
      let next: ChainState;
      try { next = transition(chain, s, a, 'center'); } catch (e) { assert.ok(e instanceof CalcError); continue; }
      if (s.at === 'node' && next.at === 'node') assert.ok(Math.abs(next.node - s.node) === 1, 'moves one node at a time');
      if (next.at === 'approved') assert.equal(s.at === 'node' && s.node, chain.length - 1);
      if (next.at === 'node') highest = Math.max(highest, next.node);
      s = next;
    }
    if (s.at === 'approved') assert.equal(highest, chain.length - 1);
  }), { numRuns: 300 });
});

test('approval chain configuration is validated', () => {
  assert.throws(() => validateChain([]), CalcError);
  assert.throws(() => validateChain([{ key: 'a', label: 'a', roles: ['center'] }, { key: 'a', label: 'b', roles: ['center'] }]), CalcError);
  assert.throws(() => validateChain([{ key: 'a', label: 'a', roles: [] }]), CalcError);
});
