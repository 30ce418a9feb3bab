// The arithmetic and calendar rules of clearing and settlement (清结算), property-based
// where they are calculations: allocation by largest remainder, fees, refunded fees,
// and T+1 on China's business-day calendar.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { allocate, applyRate } from '../src/platform/money.ts';
import { computeFee, refundedFee, validateFeeRule, parseFeeRule, feeRuleJson, clawbackShare, FeeRuleInvalid, NO_FEE, type FeeRule } from '../src/settlement/fee.ts';
import { createCalendar } from '../src/settlement/calendar.ts';

const fen = fc.bigInt({ min: 0n, max: 10n ** 13n });
const rateArb = fc.tuple(fc.integer({ min: 0, max: 1_000_000 })).map(([ppm]) => `0.${ppm.toString().padStart(6, '0')}`);

test('allocate: shares sum exactly to the whole, none negative, each within one fen of its proportion', () => {
  fc.assert(fc.property(fen, fc.array(fc.bigInt({ min: 0n, max: 10n ** 9n }), { minLength: 1, maxLength: 40 }).filter((w) => w.some((x) => x > 0n)), (total, weights) => {
    const shares = allocate(total, weights);
    const sum = weights.reduce((a, b) => a + b, 0n);
    assert.equal(shares.reduce((a, b) => a + b, 0n), total);
    shares.forEach((s, i) => {
      assert.ok(s >= 0n);
      const exactTimesSum = total * weights[i];
      assert.ok(s * sum <= exactTimesSum + sum && s * sum >= exactTimesSum - sum, 'within one fen');
      if (weights[i] === 0n) assert.equal(s, 0n);
    });
  }), { numRuns: 500 });
  assert.deepEqual(allocate(100n, [1n, 1n, 1n]), [34n, 33n, 33n]);
  assert.deepEqual(allocate(10001n, [3n, 97n]), [300n, 9701n]);
  assert.throws(() => allocate(1n, [0n, 0n]), /not all be zero/);
  assert.throws(() => allocate(1n, [-1n, 2n]), /negative/);
});

test('applyRate rounds once, as stated; the 3% platform fee on repair orders', () => {
  assert.equal(applyRate(10001n, '0.03'), 300n); // 300.03 → 300
  assert.equal(applyRate(10050n, '0.03'), 302n); // 301.5 → 302 (half up)
  assert.equal(applyRate(10050n, '0.03', 'down'), 301n);
  assert.equal(applyRate(10001n, '0.03', 'up'), 301n);
  fc.assert(fc.property(fen, rateArb, (amount, rate) => {
    const down = applyRate(amount, rate, 'down');
    const up = applyRate(amount, rate, 'up');
    const half = applyRate(amount, rate, 'half_up');
    assert.ok(down <= half && half <= up && up - down <= 1n);
  }), { numRuns: 500 });
});

const ruleArb: fc.Arbitrary<FeeRule> = fc.record({
  rate: rateArb,
  fixedFen: fc.bigInt({ min: 0n, max: 500n }),
  tiers: fc.constant([]),
  minFen: fc.option(fc.bigInt({ min: 0n, max: 100n }), { nil: null }),
  maxFen: fc.option(fc.bigInt({ min: 100n, max: 100_000n }), { nil: null }),
  rounding: fc.constantFrom('half_up', 'down', 'up'),
  refundMode: fc.constantFrom('full', 'proportional', 'none'),
});

test('fees: fee + net = gross, 0 ≤ fee ≤ gross, min and max respected', () => {
  fc.assert(fc.property(ruleArb, fen, (rule, gross) => {
    validateFeeRule(rule);
    const fee = computeFee(rule, gross);
    const net = gross - fee;
    assert.equal(fee + net, gross);
    assert.ok(fee >= 0n && fee <= gross && net >= 0n);
    if (rule.maxFen !== null) assert.ok(fee <= rule.maxFen);
    if (rule.minFen !== null && gross >= rule.minFen) assert.ok(fee >= rule.minFen);
  }), { numRuns: 1000 });
  const tiered = validateFeeRule({ ...NO_FEE, tiers: [{ upToFen: 100_00n, rate: '0.01', fixedFen: 0n }, { upToFen: null, rate: '0.005', fixedFen: 10n }] });
  assert.equal(computeFee(tiered, 100_00n), 100n);
  assert.equal(computeFee(tiered, 200_00n), 110n);
  assert.throws(() => validateFeeRule({ ...NO_FEE, rate: '1.5' }), FeeRuleInvalid);
  assert.throws(() => validateFeeRule({ ...NO_FEE, minFen: 10n, maxFen: 5n }), FeeRuleInvalid);
  assert.throws(() => validateFeeRule({ ...NO_FEE, tiers: [{ upToFen: null, rate: '0.1', fixedFen: 0n }, { upToFen: 5n, rate: '0.1', fixedFen: 0n }] }), FeeRuleInvalid);
});

test('refunded fees: proportional returns add up to exactly the fee when fully refunded, never more', () => {
  fc.assert(fc.property(ruleArb, fc.bigInt({ min: 1n, max: 10n ** 10n }), fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 8 }), (rule, paid, parts) => {
    const fee = computeFee(rule, paid);
    const refunds = allocate(paid, parts.map(BigInt)).filter((r) => r > 0n);
    let before = 0n;
    let returned = 0n;
    for (const r of refunds) {
      const back = refundedFee(rule, fee, paid, before, r);
      assert.ok(back >= 0n);
      returned += back;
      before += r;
      assert.ok(returned <= fee);
    }
    if (rule.refundMode === 'none') assert.equal(returned, 0n);
    else assert.equal(returned, fee, 'a full refund returns the whole fee');
  }), { numRuns: 500 });
});

test('T+1 is the next working day: weekends, the 2026 National Day week and its working Saturday', () => {
  const cal = createCalendar();
  const at = (beijing: string) => new Date(`${beijing}+08:00`);
  assert.equal(cal.availableOn(at('2026-11-20T15:00:00'), 'T1'), '2026-11-23'); // Friday → Monday
  assert.equal(cal.availableOn(at('2026-11-21T10:00:00'), 'T1'), '2026-11-23'); // Saturday → Monday
  assert.equal(cal.availableOn(at('2026-11-23T23:59:59'), 'T1'), '2026-11-24'); // Beijing time decides the day
  assert.equal(cal.availableOn(new Date('2026-11-23T16:30:00Z'), 'T1'), '2026-11-25'); // 00:30 on the 24th in Beijing
  // National Day 2026: 10-01 … 10-07 off, Saturday 10-10 is a working day (调休)
  assert.equal(cal.isBusinessDay('2026-10-01'), false);
  assert.equal(cal.isBusinessDay('2026-10-07'), false);
  assert.equal(cal.isBusinessDay('2026-10-10'), true);
  assert.equal(cal.availableOn(at('2026-09-30T12:00:00'), 'T1'), '2026-10-08');
  assert.equal(cal.availableOn(at('2026-10-03T12:00:00'), 'T1'), '2026-10-08');
  assert.equal(cal.availableOn(at('2026-10-09T12:00:00'), 'T1'), '2026-10-10');
  assert.equal(cal.availableOn(at('2026-10-09T12:00:00'), 'D1'), '2026-10-10');
  assert.equal(cal.availableOn(at('2026-10-03T12:00:00'), 'T0'), '2026-10-03');
  assert.equal(cal.availableOn(at('2026-10-03T12:00:00'), 'manual'), null);
  assert.equal(cal.availableOn(at('2026-11-18T12:00:00'), 'weekly'), '2026-11-23');
});

test('an override table carries schedules the package does not have yet (2027 Spring Festival)', () => {
  // Illustrative override rows in the shape the State Council's notice gives them; the
  // real 2027 rows are entered by an operator when the notice is published.
  const spring2027 = new Map<string, 'workday' | 'holiday'>([
    ...['2027-02-05', '2027-02-06', '2027-02-07', '2027-02-08', '2027-02-09', '2027-02-10', '2027-02-11', '2027-02-12', '2027-02-13']
      .map((d): [string, 'holiday'] => [d, 'holiday']),
    ['2027-01-31', 'workday'], ['2027-02-20', 'workday'],
  ]);
  const cal = createCalendar(spring2027);
  const at = (beijing: string) => new Date(`${beijing}+08:00`);
  assert.equal(cal.isBusinessDay('2027-02-08'), false, 'a Monday inside the holiday');
  assert.equal(cal.isBusinessDay('2027-01-31'), true, 'a Sunday made a working day');
  assert.equal(cal.availableOn(at('2027-01-30T10:00:00'), 'T1'), '2027-01-31');
  assert.equal(cal.availableOn(at('2027-02-04T10:00:00'), 'T1'), '2027-02-15');
  assert.equal(cal.availableOn(at('2027-02-19T10:00:00'), 'T1'), '2027-02-20');
  assert.equal(cal.addBusinessDays('2027-02-04', 2), '2027-02-16');
  assert.throws(() => createCalendar(new Map([['2027-02-30', 'holiday']])), /invalid date/);
  fc.assert(fc.property(fc.integer({ min: 0, max: 800 }), (offset) => {
    const day = new Date(Date.UTC(2026, 0, 1) + offset * 86_400_000).toISOString().slice(0, 10);
    const next = cal.addBusinessDays(day, 1);
    assert.ok(next > day && cal.isBusinessDay(next));
    for (let d = new Date(`${day}T00:00:00Z`); ; ) {
      d.setUTCDate(d.getUTCDate() + 1);
      const iso = d.toISOString().slice(0, 10);
      if (iso === next) break;
      assert.equal(cal.isBusinessDay(iso), false, `${iso} lies between ${day} and its next business day`);
    }
  }), { numRuns: 300 });
});

test('repair orders: platform fee + the line shares = the order, for every amount; clawbacks return exactly each share at the full refund', () => {
  fc.assert(fc.property(
    fc.array(fc.bigInt({ min: 0n, max: 10n ** 9n }), { minLength: 1, maxLength: 8 }).filter((ls) => ls.some((l) => l > 0n)),
    rateArb, fc.constantFrom('half_up', 'down', 'up'), fc.array(fc.integer({ min: 1, max: 100 }), { minLength: 1, maxLength: 6 }),
    (lines, rate, rounding, refundParts) => {
      const gross = lines.reduce((a, b) => a + b, 0n);
      const fee = computeFee({ ...NO_FEE, rate, rounding }, gross);
      const shares = allocate(gross - fee, lines);
      assert.equal(fee + shares.reduce((a, b) => a + b, 0n), gross);
      const refunds = allocate(gross, refundParts.map(BigInt)).filter((r) => r > 0n);
      shares.forEach((share) => {
        let before = 0n;
        let back = 0n;
        for (const r of refunds) {
          const c = clawbackShare(share, gross, before, r);
          assert.ok(c >= 0n);
          back += c;
          before += r;
          assert.ok(back <= share, 'never more than the share');
        }
        assert.equal(back, share);
      });
    }), { numRuns: 500 });
  // the 3% platform fee on a 300.00 yuan repair, labor 200.00 and material 100.00
  const fee = computeFee({ ...NO_FEE, rate: '0.03' }, 30000n);
  assert.equal(fee, 900n);
  assert.deepEqual(allocate(30000n - fee, [20000n, 10000n]), [19400n, 9700n]);
  assert.throws(() => clawbackShare(10n, 100n, 90n, 11n), /outside/);
});

test('fee rules from JSON: accepted shapes, and rejections that say what to fix', () => {
  const rule = parseFeeRule({ rate: '0.006', fixedFen: '10', minFen: 1, maxFen: '5000', rounding: 'down', refundMode: 'none', tiers: [{ upToFen: '100000', rate: '0.01' }, { upToFen: null, rate: '0.005' }] });
  assert.equal(rule.fixedFen, 10n);
  assert.equal(rule.tiers[1].upToFen, null);
  assert.deepEqual(parseFeeRule(JSON.parse(feeRuleJson(rule))), rule, 'round-trips through its stored form');
  for (const [input, message] of [
    [{ rate: '1.01' }, /rate/], [{ rate: 0.006 }, /decimal string/], [{ fixedFen: -1 }, /must not be negative/], [{ fixedFen: '1.5' }, /whole number/],
    [{ minFen: '10', maxFen: '5' }, /minFen must not exceed/], [{ rounding: 'bankers' }, /rounding/], [{ refundMode: 'half' }, /refundMode/],
    [{ tiers: [{ upToFen: '5', rate: '0.1' }, { upToFen: '5', rate: '0.1' }] }, /increasing/], [{ extra: 1 }, /unknown field/], [[], /object/], [null, /object/],
  ] as Array<[unknown, RegExp]>) {
    assert.throws(() => parseFeeRule(input), (e: Error) => e instanceof FeeRuleInvalid && message.test(e.message), JSON.stringify(input));
  }
});

test('the monthly cycle (utility remittance): the first business day of the next month', () => {
  const cal = createCalendar();
  const at = (beijing: string) => new Date(`${beijing}+08:00`);
  assert.equal(cal.availableOn(at('2026-10-29T10:00:00'), 'monthly'), '2026-11-02'); // 11-01 is a Sunday
  assert.equal(cal.availableOn(at('2026-09-15T10:00:00'), 'monthly'), '2026-10-08'); // October starts with National Day
  // chinese-days 1.5.7 knows nothing of 2027, not even New Year's Day: without an override
  // 2027-01-01 (a Friday) counts as a working day; the override table fixes it.
  assert.equal(cal.availableOn(at('2026-12-31T23:59:59'), 'monthly'), '2027-01-01');
  const fixed = createCalendar(new Map([['2027-01-01', 'holiday']]));
  assert.equal(fixed.availableOn(at('2026-12-31T23:59:59'), 'monthly'), '2027-01-04');
});
