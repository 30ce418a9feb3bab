// The owners' mobile H5 pages end to end: search the house (address or certificate
// number), prove it, see the bill, pay through the payment center's cashier and the
// sandbox channel, come back to a paid bill and a credited household account, download
// the numbered receipt PDF and verify it by number, amount and check code. Plus the PDF
// writer's structure (exact xref offsets) and the check code's sensitivity.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { waitFor, type Stack } from './payment.harness.ts';
import { fundStack, importCsv, csvRow, type Api } from './fund.deposit.harness.ts';
import { writePdf, ucs2Hex } from '../src/fund/receipt/pdf.ts';
import { checkCode, codesEqual, type ReceiptFacts } from '../src/fund/receipt/receipt.ts';

let stack: Stack;
let api: Api;
let unitId = '';
let otherUnitId = '';
const CERT = '浙(2025)杭州市不动产权第0555号';

before(async () => {
  ({ stack, api } = await fundStack());
  const res = await importCsv(api, [
    csvRow({ estate: '金色家园', address: '杭州市拱墅区湖墅南路88号', building: '3', stair: '2', room: '501', area: '98.50', cert: CERT, owner: '陈静', idNo: '330106198501010011', phone: '13800000011', sold: '是' }),
    csvRow({ estate: '金色家园', address: '杭州市拱墅区湖墅南路88号', building: '3', stair: '2', room: '502', area: '100.00', cert: '浙(2025)杭州市不动产权第0556号', owner: '周强', sold: '是' }),
  ]);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const units = (await api('GET', '/v1/fund/units')).body.units as Array<{ id: string; roomNo: string; estateId: string }>;
  unitId = units.find((u) => u.roomNo === '501')!.id;
  otherUnitId = units.find((u) => u.roomNo === '502')!.id;
  assert.equal((await api('POST', '/v1/fund/bills/generate', { estateId: units[0].estateId })).body.created, 2);
});
after(async () => {
  await stack.close();
});

interface Page { status: number; text: string; location: string | null; cookie: string | null }
async function browse(path: string, options: { cookie?: string; form?: Record<string, string> } = {}): Promise<Page> {
  const url = path.startsWith('http') ? path : stack.url + path;
  const res = await fetch(url, {
    method: options.form ? 'POST' : 'GET', redirect: 'manual',
    headers: { ...(options.cookie ? { cookie: options.cookie } : {}), ...(options.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    body: options.form ? new URLSearchParams(options.form).toString() : undefined,
  });
  const setCookie = res.headers.get('set-cookie');
  return { status: res.status, text: await res.text(), location: res.headers.get('location'), cookie: setCookie ? setCookie.split(';')[0] : null };
}

test("the owner's path: search → prove → bill → pay via the sandbox → paid, credited, receipt downloadable and verifiable", async () => {
  const home = await browse('/h5/fund');
  assert.equal(home.status, 200);
  assert.match(home.text, /name="viewport"/);
  assert.match(home.text, /lang="zh-CN"/);
  assert.match(home.text, /查询房屋/);

  const found = await browse(`/h5/fund/search?q=${encodeURIComponent('金色家园3幢2单元501')}`);
  assert.equal(found.status, 200);
  assert.match(found.text, new RegExp(`/h5/fund/units/${unitId}`));
  assert.doesNotMatch(found.text, /陈静/, 'the owner name is masked');
  assert.match(found.text, /陈\*/);
  const byCert = await browse(`/h5/fund/search?q=${encodeURIComponent(CERT)}`);
  assert.match(byCert.text, new RegExp(`/h5/fund/units/${unitId}`));
  assert.doesNotMatch(byCert.text, new RegExp(otherUnitId));

  const gate = await browse(`/h5/fund/units/${unitId}`);
  assert.match(gate.text, /验证业主身份/);
  assert.doesNotMatch(gate.text, /去支付/, 'no bills before the owner proves the house');
  const wrong = await browse('/h5/fund/login', { form: { unitId, certNo: CERT, ownerName: '周强' } });
  assert.equal(wrong.status, 403);
  assert.equal(wrong.cookie, null);
  const step1 = await browse('/h5/fund/login', { form: { unitId, certNo: CERT, ownerName: '陈静' } });
  assert.equal(step1.status, 200, step1.text);
  assert.equal(step1.cookie, null, 'no session before the SMS code');
  assert.match(step1.text, /138\*\*\*\*0011/);
  const challengeId = /name="challengeId" value="(sc_[0-9a-f]+)"/.exec(step1.text)?.[1] as string;
  const sms = (await api('GET', `/v1/fund/sms-outbox?ref=${unitId}`)).body.messages[0];
  assert.equal(sms.phone, '138****0011');
  const smsCode = /验证码 (\d{6})/.exec(sms.body)?.[1] as string;
  const login = await browse('/h5/fund/login/sms', { form: { unitId, challengeId, smsCode } });
  assert.equal(login.status, 303);
  assert.equal(login.location, `/h5/fund/units/${unitId}`);
  assert.ok(login.cookie);
  const cookie = login.cookie as string;

  const mine = await browse(`/h5/fund/units/${unitId}`, { cookie });
  assert.match(mine.text, /首期交存/);
  assert.match(mine.text, /¥8865\.00/);
  const billId = /action="\/h5\/fund\/bills\/(b_[0-9a-f]+)\/pay"/.exec(mine.text)?.[1] as string;
  assert.ok(billId);

  const pay = await browse(`/h5/fund/bills/${billId}/pay`, { cookie, form: {} });
  assert.equal(pay.status, 303);
  assert.match(pay.location as string, /\/cashier\/P\d+/);
  const cashier = await browse(pay.location as string);
  assert.match(cashier.text, /8865\.00/);
  const payOrderId = /\/cashier\/(P\d+)/.exec(pay.location as string)?.[1] as string;
  const chosen = await browse(`/cashier/${payOrderId}/pay`, { form: { wayCode: 'WX_H5' } });
  assert.equal(chosen.status, 303, chosen.text);
  await stack.sandbox.pay(payOrderId);

  const back = await waitFor('bill paid on the H5 page', async () => {
    const p = await browse(`/h5/fund/units/${unitId}`, { cookie });
    return /已缴/.test(p.text) ? p : null;
  });
  assert.match(back.text, /id="principal">¥8865\.00/);
  const receiptLink = /href="(\/h5\/fund\/receipts\/(WX\d+)\/pdf\?code=([0-9A-F-]+))"/.exec(back.text);
  assert.ok(receiptLink, 'a receipt link');
  const [, link, receiptNo, code] = receiptLink;

  const pdfRes = await fetch(stack.url + link);
  assert.equal(pdfRes.status, 200);
  assert.equal(pdfRes.headers.get('content-type'), 'application/pdf');
  const pdf = Buffer.from(await pdfRes.arrayBuffer());
  assertPdfStructure(pdf);
  const text = pdf.toString('latin1');
  assert.ok(text.includes('/STSong-Light') && text.includes('/UniGB-UCS2-H'));
  assert.ok(text.includes(ucs2Hex(`票据号 No.: ${receiptNo}`)), 'the receipt number is on the page');
  assert.ok(text.includes(ucs2Hex(`校验码 Check code: ${code}`)));
  assert.ok(text.includes(ucs2Hex('金额 Amount: ¥8865.00 元')));

  const verified = await api('GET', `/v1/fund/receipts/${receiptNo}?amountFen=886500&code=${code}`, undefined, null);
  assert.equal(verified.status, 200);
  assert.equal(verified.body.valid, true);
  assert.equal(verified.body.amountFen, '886500');
  assert.deepEqual(verified.body.owners, ['陈*']);
  for (const q of [`amountFen=886501&code=${code}`, `amountFen=886500&code=${code.replace(/^./, code[0] === 'A' ? 'B' : 'A')}`]) {
    const bad = await api('GET', `/v1/fund/receipts/${receiptNo}?${q}`, undefined, null);
    assert.equal(bad.status, 404);
    assert.equal(bad.body.code, 'FUND_RECEIPT_INVALID');
  }
  const page = await browse(`/h5/fund/verify?no=${receiptNo}&amount=886500&code=${code}`);
  assert.match(page.text, /id="valid"/);
  const forged = await browse(`/h5/fund/verify?no=${receiptNo}&amount=100&code=${code}`);
  assert.equal(forged.status, 404);
  assert.match(forged.text, /id="invalid"/);
  assert.equal((await browse(`/h5/fund/receipts/${receiptNo}/pdf?code=0000-0000-0000-0000`)).status, 404);

  // the owner's token is scoped to this house: another house's bill cannot be paid with it
  const other = (await api('GET', `/v1/fund/bills?unitId=${otherUnitId}`)).body.bills[0];
  const refused = await browse(`/h5/fund/bills/${other.id}/pay`, { cookie, form: {} });
  assert.equal(refused.status, 403);
  assert.match((await browse(`/h5/fund/units/${otherUnitId}`, { cookie })).text, /验证业主身份/);
  const anonymous = await browse(`/h5/fund/bills/${other.id}/pay`, { form: {} });
  assert.equal(anonymous.status, 401);
  // paying a paid bill again is refused with a clear message
  const again = await browse(`/h5/fund/bills/${billId}/pay`, { cookie, form: {} });
  assert.equal(again.status, 409);
  assert.match(again.text, /已缴清/);
  assert.equal((await stack.platform.ledger.verify()).balanced, true);
});

test('bad H5 input: short search, unknown house, unknown unit on login', async () => {
  assert.equal((await browse('/h5/fund/search?q=a')).status, 400);
  assert.equal((await browse('/h5/fund/units/u_doesnotexist')).status, 404);
  assert.equal((await browse('/h5/fund/login', { form: { unitId: 'u_nope', certNo: 'x', ownerName: 'y' } })).status, 404);
  const nothing = await browse(`/h5/fund/search?q=${encodeURIComponent('不存在的小区')}`);
  assert.match(nothing.text, /没有找到房屋/);
});

/** Every xref entry points at "N 0 obj"; startxref points at "xref". */
function assertPdfStructure(pdf: Buffer) {
  const text = pdf.toString('latin1');
  assert.ok(text.startsWith('%PDF-1.4\n'));
  assert.ok(text.endsWith('%%EOF\n'));
  const startxref = Number(/startxref\n(\d+)\n%%EOF\n$/.exec(text)?.[1]);
  assert.equal(text.slice(startxref, startxref + 4), 'xref');
  const [, first, count] = /^xref\n(\d+) (\d+)\n/.exec(text.slice(startxref)) as RegExpExecArray;
  assert.equal(first, '0');
  const entries = text.slice(startxref).split('\n').slice(2, 2 + Number(count));
  entries.slice(1).forEach((e, i) => {
    assert.match(e, /^\d{10} 00000 n $/);
    const offset = Number(e.slice(0, 10));
    assert.equal(text.slice(offset, offset + `${i + 1} 0 obj`.length), `${i + 1} 0 obj`, `object ${i + 1} at its offset`);
  });
  const length = Number(/\/Length (\d+) >>\nstream\n/.exec(text)?.[1]);
  const start = text.indexOf('stream\n') + 'stream\n'.length;
  assert.equal(text.slice(start + length, start + length + 'endstream'.length), 'endstream', 'the stream length is exact');
}

test('the PDF writer keeps exact offsets for any text (property)', () => {
  fc.assert(fc.property(fc.array(fc.string({ maxLength: 40, unit: 'grapheme' }), { minLength: 1, maxLength: 20 }), (lines) => {
    const pdf = writePdf({ texts: lines.map((text, i) => ({ x: 50, y: 800 - i * 20, size: 12, text })), rules: [{ x1: 0, y1: 0, x2: 10, y2: 10 }], title: lines[0] });
    assertPdfStructure(pdf);
    for (const line of lines) assert.ok(pdf.toString('latin1').includes(`<${ucs2Hex(line)}>`));
  }));
});

test('the check code changes with every fact of the receipt (property)', () => {
  const key = Buffer.alloc(32, 7);
  const base: ReceiptFacts = { receiptNo: 'WX202600000001', billId: 'b_0123456789abcdef', unitId: 'u_1', amountFen: 886500n, paidAt: new Date('2026-11-22T01:02:03Z'), paidVia: 'payment', paidRef: 'P1', kind: 'first_deposit' };
  const code = checkCode(key, base);
  assert.match(code, /^[0-9A-F]{4}(-[0-9A-F]{4}){3}$/);
  assert.ok(codesEqual(code, code.toLowerCase().replace(/-/g, '')));
  fc.assert(fc.property(fc.bigInt({ min: 1n, max: 10n ** 12n }).filter((a) => a !== base.amountFen), (amountFen) => {
    assert.notEqual(checkCode(key, { ...base, amountFen }), code);
  }));
  assert.notEqual(checkCode(key, { ...base, receiptNo: 'WX202600000002' }), code);
  assert.notEqual(checkCode(key, { ...base, unitId: 'u_2' }), code);
  assert.notEqual(checkCode(Buffer.alloc(32, 8), base), code, 'another key, another code');
});
