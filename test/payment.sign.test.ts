// Jeepay's MD5 rule against the reference vectors, the injective canonical string of
// HMAC-SHA256 and SM3 (custos-sign-v2), and the properties of all three.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { canonicalString, canonicalStringV2, compareCaseInsensitive, percentEncode, sign, verify } from '../src/payment/sign.ts';

const common = { reqTime: '1700000000123', signType: 'MD5', version: '1.0' };
const SECRET = 'offline-test-key';

test('the four vectors of jeepay-api.md', () => {
  const vectors: Array<[Record<string, unknown>, string, string]> = [
    [{ mchNo: 'M1621873433953', appId: '60cc09bce4b0f1c0b83761c9', amount: 100 },
      'amount=100&appId=60cc09bce4b0f1c0b83761c9&mchNo=M1621873433953&reqTime=1700000000123&signType=MD5&version=1.0&',
      'CE76B1B36C5B683AD2F8FB0FCA95055B'],
    [{ amount: 0, state: 0 }, 'amount=0&reqTime=1700000000123&signType=MD5&state=0&version=1.0&', '6F5CE7D1150794CB08A853964CDF3723'],
    [{ amount: 1, absent: null, empty: '' }, 'amount=1&reqTime=1700000000123&signType=MD5&version=1.0&', '7DC985B98166C7A092595BA23A981F50'],
    [{ subject: '测试商品', amount: 1 }, 'amount=1&reqTime=1700000000123&signType=MD5&subject=测试商品&version=1.0&', 'F9F6BC7ED815F9B4D129B4C16D28E2C7'],
  ];
  for (const [params, canonical, expected] of vectors) {
    const all = { ...params, ...common };
    assert.equal(canonicalString(all), canonical);
    assert.equal(sign(all, SECRET, 'MD5'), expected);
    assert.equal(verify({ ...all, sign: expected.toLowerCase() }, SECRET, 'MD5'), true);
  }
});

test('whole fragments sort case-insensitively: a0=… before a=…, and a space, false and 0 are kept', () => {
  assert.equal(canonicalString({ a: 1, a0: 2, B: 3, b: 4 }), 'a0=2&a=1&B=3&b=4&');
  assert.equal(canonicalString({ x: ' ', y: false, z: 0, w: '' }), 'x= &y=false&z=0&');
  assert.ok(compareCaseInsensitive('ABC', 'abd') < 0);
  assert.equal(compareCaseInsensitive('abc', 'ABC'), 0);
});

test('HMAC-SHA256 and SM3 sign and verify; any change to a value breaks the signature', () => {
  fc.assert(fc.property(
    fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }).filter((k) => k !== 'sign'), fc.string({ minLength: 1, maxLength: 12 }), { minKeys: 1, maxKeys: 6 }),
    fc.constantFrom('MD5', 'HMAC-SHA256', 'SM3') as fc.Arbitrary<'MD5' | 'HMAC-SHA256' | 'SM3'>,
    (params, type) => {
      const s = sign(params, SECRET, type);
      assert.equal(verify({ ...params, sign: s }, SECRET, type), true);
      assert.equal(verify({ ...params, sign: s }, 'other-secret', type), false);
      const key = Object.keys(params)[0];
      assert.equal(verify({ ...params, [key]: params[key] + 'x', sign: s }, SECRET, type), false);
    },
  ));
  assert.equal(verify({ a: 1 }, SECRET, 'MD5'), false);
  assert.equal(verify({ a: 1, sign: '' }, SECRET, 'MD5'), false);
});

// Issue 12, point 10: the canonical string of HMAC-SHA256 and SM3 cannot be reshaped.
const reshaped = { mchNo: 'M1', amount: 100, reqTime: '1700000000123', subject: 's&version=1.0' };
const genuine = { mchNo: 'M1', amount: 100, reqTime: '1700000000123', subject: 's', version: '1.0' };

test('HMAC-SHA256 and SM3: moving a field into another value changes the signature (reshaping fails)', () => {
  for (const type of ['HMAC-SHA256', 'SM3'] as const) {
    const s = sign({ ...genuine, signType: type }, SECRET, type);
    assert.notEqual(sign({ ...reshaped, signType: type }, SECRET, type), s, type);
    assert.equal(verify({ ...reshaped, signType: type, sign: s }, SECRET, type), false, `${type}: a reshaped request must not verify`);
    // and the other way: a value that swallows `&key=` or `=` cannot forge either
    const t = sign({ a: 'x', b: 'y', signType: type }, SECRET, type);
    assert.equal(verify({ a: 'x&b=y', signType: type, sign: t }, SECRET, type), false);
    assert.equal(verify({ 'a=x&b': 'y', signType: type, sign: t }, SECRET, type), false);
  }
});

test('MD5 keeps Jeepay\'s rule, so the reshaping still works there (documented in docs/payment.md)', () => {
  const s = sign({ ...genuine, signType: 'MD5' }, SECRET, 'MD5');
  assert.equal(sign({ ...reshaped, signType: 'MD5' }, SECRET, 'MD5'), s);
  assert.equal(verify({ ...reshaped, signType: 'MD5', sign: s }, SECRET, 'MD5'), true);
});

test('custos-sign-v2: the documented example, the dropped values, and numbers signed like their text', () => {
  const params = { mchNo: 'M1', amount: 1234, subject: '物业费 a&b=c', empty: '', none: null, signType: 'HMAC-SHA256', Zeta: '~._-' };
  const expected = 'Zeta=~._-&amount=1234&mchNo=M1&signType=HMAC-SHA256&subject=%E7%89%A9%E4%B8%9A%E8%B4%B9%20a%26b%3Dc';
  assert.equal(canonicalStringV2(params), expected);
  assert.equal(canonicalStringV2({ ...params, amount: '1234' }), expected, 'amount=1234 whether it arrives as a number or a string');
  assert.equal(sign(params, SECRET, 'HMAC-SHA256'), createHmac('sha256', SECRET).update(expected, 'utf8').digest('hex').toUpperCase());
  assert.equal(sign(params, SECRET, 'SM3'), createHmac('sm3', SECRET).update(expected, 'utf8').digest('hex').toUpperCase());
  assert.equal(percentEncode("!*'() %/+"), '%21%2A%27%28%29%20%25%2F%2B');
});

test('custos-sign-v2 is injective: the string decodes back to exactly the signed parameters', () => {
  const decode = (text: string) => Object.fromEntries(text === '' ? [] : text.split('&').map((pair) => {
    const [k, v, ...rest] = pair.split('=');
    assert.equal(rest.length, 0, 'one = per pair');
    return [decodeURIComponent(k), decodeURIComponent(v)];
  }));
  fc.assert(fc.property(
    fc.dictionary(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }).filter((k) => k !== 'sign' && k !== '__proto__'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }), { maxKeys: 6 }),
    (params) => {
      assert.deepEqual(decode(canonicalStringV2(params) as string), { ...params });
    },
  ), { numRuns: 2000 });
});

test('a lone surrogate cannot be signed with HMAC/SM3 and never verifies (no exception on hostile input)', () => {
  assert.equal(canonicalStringV2({ a: 'x\uD800' }), null);
  assert.equal(verify({ a: 'x\uD800', sign: 'AB' }, SECRET, 'HMAC-SHA256'), false);
  assert.equal(verify({ a: 'x\uFFFD', sign: sign({ a: 'x\uFFFD' }, SECRET, 'SM3') }, SECRET, 'SM3'), true);
  assert.throws(() => sign({ a: '\uDC00' }, SECRET, 'SM3'), TypeError);
});

test('the worked examples of docs/payment.md', () => {
  const request = { mchNo: 'M1621873433953', appId: '60cc09bce4b0f1c0b83761c9', mchOrderNo: 'wy-202612-0301', wayCode: 'WX_NATIVE', amount: 12345, currency: 'cny', subject: '物业费', body: '1幢2单元301 2026年12月', notifyUrl: 'https://mch.example.com/jeepay/notify', reqTime: '1764748800123456', version: '1.0', signType: 'MD5' };
  const doc = readFileSync(new URL('../docs/payment.md', import.meta.url), 'utf8');
  const md5 = sign(request, SECRET, 'MD5');
  assert.equal(md5, '49F4BD4BD843700616280BE6346337A5');
  assert.ok(doc.includes(`${canonicalString(request)}key=${SECRET}`) && doc.includes(md5));
  const hmacRequest = { ...request, signType: 'HMAC-SHA256' };
  const hmac = sign(hmacRequest, SECRET, 'HMAC-SHA256');
  assert.ok(doc.includes(canonicalStringV2(hmacRequest) as string) && doc.includes(hmac));
  const answer = { payOrderId: 'P2026120315000012345678', mchOrderNo: 'wy-202612-0301', orderState: 1, payDataType: 'codeUrl', payData: 'weixin://wxpay/bizpayurl?pr=abc' };
  assert.ok(doc.includes(sign(answer, SECRET, 'MD5')));
  const note = doc.match(/^payOrderId=P2026120315000012345678&mchNo=.*$/m);
  assert.ok(note, 'the notification example is in the doc');
  assert.equal(verify(Object.fromEntries(new URLSearchParams(note[0])), SECRET, 'MD5'), true, 'the documented notification verifies');
});
