// Jeepay's MD5 rule against the reference vectors, and the properties of the others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalString, compareCaseInsensitive, sign, verify } from '../src/payment/sign.ts';

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
