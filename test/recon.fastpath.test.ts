// The staging fast path (parse.worker.ts → WechatBillScanner → stageScanned → COPY) must
// stage exactly what the record path (parseWechatBill → stageLine) stages, and reject
// exactly what it rejects: property-based over random bills, with awkward fields (tab,
// backslash, carriage return, CJK text across the worker's 1 MiB read boundary) and
// amounts past the number fast path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseWechatBill, BillRejected, type ChannelRecord } from '../src/recon/parse/wechat.ts';
import { fastYuan, parseYuan } from '../src/recon/parse/amount.ts';
import { stageLine } from '../src/recon/stage-format.ts';
import { workerFileReader } from '../src/recon/reader.ts';
import { copyText, sql } from '../src/platform/db.ts';
import { openTestDb } from './helpers.ts';
import { stageText } from '../src/recon/recon.repo.ts';
import { utf8ByteBlocks } from '../src/recon/parse/text.ts';

const HEADER = '交易时间,公众账号ID,商户号,设备号,微信订单号,商户订单号,交易状态,应结订单金额,微信退款单号,商户退款单号,退款金额,商品名称,手续费,费率备注';
const SUMMARY = '总交易单数,应结订单总金额,退款总金额,手续费总金额';

interface Row { time: string; device: string; channelNo: string; payOrderId: string; refund: boolean; amount: bigint; amountStyle: number; refundNo: string; refundOrderId: string; subject: string; fee: bigint }

const FIELD_CHARS = ['a', 'Z', '7', '-', '_', '\\', '\t', '中', '𠀀', ' ', '\r', '"'];
const fieldArb = fc.array(fc.constantFrom(...FIELD_CHARS), { minLength: 1, maxLength: 12 }).map((cs) => cs.join(''));
const rowArb: fc.Arbitrary<Row> = fc.record({
  time: fc.constantFrom('2026-11-21 00:00:01', '2026-11-21 23:59:59'),
  device: fieldArb,
  channelNo: fieldArb,
  payOrderId: fieldArb,
  refund: fc.boolean(),
  // Up to 1e17 fen: past the 15-digit number path, so the bigint fallback is exercised.
  amount: fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 6n }), fc.bigInt({ min: 0n, max: 10n ** 17n })),
  amountStyle: fc.integer({ min: 0, max: 3 }),
  refundNo: fieldArb,
  refundOrderId: fieldArb,
  subject: fieldArb,
  fee: fc.bigInt({ min: 0n, max: 10n ** 12n }),
});

/** Yuan text in one of the forms a bill may use: canonical, trailing zeros, leading zeros, padded. */
function yuan(value: bigint, scale: 2 | 5, style: number): string {
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const unit = 10n ** BigInt(scale);
  let text = `${abs / unit}.${(abs % unit).toString().padStart(scale, '0')}`;
  if (style === 1) text += '000';
  if (style === 2 && text.length < 14) text = '0' + text;
  text = (negative ? '-' : '') + text;
  return style === 3 ? ` ${text} ` : text;
}

function billOf(rows: Row[]): string {
  let settled = 0n;
  let refunded = 0n;
  let fees = 0n;
  const lines = [HEADER];
  for (const r of rows) {
    const fee = r.refund ? -r.fee : r.fee;
    if (r.refund) refunded += r.amount;
    else settled += r.amount;
    fees += fee;
    const amount = yuan(r.amount, 2, r.amountStyle);
    const fields = [r.time, 'wx1', '190', r.device, r.channelNo, r.payOrderId, r.refund ? 'REFUND' : 'SUCCESS', r.refund ? '0.00' : amount,
      r.refund ? r.refundNo : '0', r.refund ? r.refundOrderId : '0', r.refund ? amount : '0.00', r.subject, yuan(fee, 5, r.amountStyle === 3 ? 0 : r.amountStyle), ''];
    lines.push(fields.map((f) => '`' + f).join(','));
  }
  lines.push(SUMMARY);
  lines.push(['`' + rows.length, yuan(settled, 2, 0), yuan(refunded, 2, 0), yuan(fees, 5, 0)].map((f, i) => (i === 0 ? f : '`' + f)).join(','));
  return lines.join('\r\n') + '\r\n';
}

/** What the record path stages, or its rejection code. */
async function recordPath(text: string): Promise<{ staged: string; rows: number } | { code: string }> {
  const records: ChannelRecord[] = [];
  try {
    await parseWechatBill(text.split('\n'), (r) => { records.push(r); });
  } catch (error) {
    if (error instanceof BillRejected) return { code: error.code };
    throw error;
  }
  return { staged: records.map((r, i) => stageLine(i + 1, r)).join('\n'), rows: records.length };
}

/** What the worker stages from the same bytes on disk, or its rejection code. */
async function workerPath(dir: string, bytes: Buffer | string): Promise<{ staged: string; rows: number } | { code: string }> {
  const path = join(dir, `bill-${Math.random().toString(36).slice(2)}.csv`);
  await writeFile(path, bytes);
  const chunks: string[] = [];
  let rows = 0;
  try {
    await workerFileReader(path, 'wechat')(() => { throw new Error('the worker path yields chunks, not records'); }, async (text, n) => {
      const lines = text.toString('utf8');
      assert.equal(lines.split('\n').length, n, 'a chunk holds as many lines as it says');
      chunks.push(lines);
      rows += n;
    });
  } catch (error) {
    if (error instanceof BillRejected) return { code: error.code };
    throw error;
  } finally {
    await rm(path, { force: true });
  }
  return { staged: chunks.join('\n'), rows };
}

test('fastYuan agrees with parseYuan wherever it answers, and answers for canonical amounts', () => {
  const textArb = fc.oneof(
    fc.array(fc.constantFrom('-', '0', '1', '9', '.', ' ', 'e', ','), { maxLength: 22 }).map((cs) => cs.join('')),
    fc.tuple(fc.bigInt({ min: -(10n ** 18n), max: 10n ** 18n }), fc.integer({ min: 0, max: 3 })).map(([v, s]) => yuan(v, 5, s)),
  );
  fc.assert(fc.property(textArb, fc.constantFrom(2 as const, 5 as const), (text, scale) => {
    const fast = fastYuan(text, scale);
    if (fast === null) return;
    assert.ok(Number.isSafeInteger(fast), `${text} → ${fast} is exact`);
    assert.equal(BigInt(fast), parseYuan(text, scale), `fastYuan(${JSON.stringify(text)})`);
  }), { numRuns: 3000 });
  fc.assert(fc.property(fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }), (fen) => {
    assert.equal(fastYuan(yuan(fen, 2, 0), 2), Number(fen));
  }));
  for (const bad of ['', '-', '.5', '1.', '1e3', ' 1.00', '1.001', '1234567890123456.00']) {
    assert.equal(fastYuan(bad, 2), null, `${JSON.stringify(bad)} goes to parseYuan`);
  }
});

test('the worker stages exactly what the record path stages, and rejects what it rejects (property test)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'custos-fastpath-'));
  try {
    // A mutation: none, drop a detail line, break an amount, add a field, cut the summary.
    const mutationArb = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.nat());
    await fc.assert(fc.asyncProperty(fc.array(rowArb, { maxLength: 30 }), mutationArb, async (rows, [kind, at]) => {
      const lines = billOf(rows).split('\r\n');
      const detail = 1 + (rows.length === 0 ? 0 : at % rows.length);
      if (kind === 1 && rows.length > 0) lines.splice(detail, 1);
      if (kind === 2 && rows.length > 0) lines[detail] = lines[detail].replace(/,`(-?\d+\.\d+)/, ',`$1x');
      if (kind === 3 && rows.length > 0) lines[detail] += ',`extra';
      if (kind === 4) lines.splice(lines.length - 2);
      const text = lines.join('\r\n');
      const expected = await recordPath(text);
      const actual = await workerPath(dir, text);
      assert.deepEqual(actual, expected);
    }), { numRuns: 60 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the worker decodes a character cut by its 1 MiB read boundary, across many chunks, and rejects invalid UTF-8', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'custos-fastpath-'));
  try {
    const row = (i: number, pad: string): Row => ({
      time: '2026-11-21 10:00:00', device: pad, channelNo: `42${i}`, payOrderId: `P${i}`, refund: i % 7 === 0, amount: BigInt(i * 37),
      amountStyle: 0, refundNo: `50${i}`, refundOrderId: `R${i}`, subject: '物业费中'.repeat(20), fee: BigInt(i),
    });
    const count = 20_000; // more than two of the worker's 8,000-row chunks
    let text = '';
    // Pad the first row until the byte at 1 MiB is the middle of a three-byte character.
    for (let pad = 0; pad < 3 * 1024; pad += 1) {
      text = billOf(Array.from({ length: count }, (_, i) => row(i + 1, i === 0 ? 'x'.repeat(pad) : '')));
      const bytes = Buffer.from(text, 'utf8');
      if ((bytes[1 << 20] & 0xc0) === 0x80) break;
    }
    const bytes = Buffer.from(text, 'utf8');
    assert.equal(bytes[1 << 20] & 0xc0, 0x80, 'the read boundary cuts a character');
    const expected = await recordPath(text);
    assert.ok('rows' in expected && expected.rows === count);
    assert.deepEqual(await workerPath(dir, bytes), expected);

    const broken = Buffer.from(bytes);
    broken[(1 << 20) + 500] = 0xff;
    assert.deepEqual(await workerPath(dir, broken), { code: 'BILL_ENCODING_INVALID' });
    assert.deepEqual(await workerPath(dir, Buffer.concat([bytes.subarray(0, 200), Buffer.from([0xe4, 0xb8])])), { code: 'BILL_ENCODING_INVALID' });
    assert.deepEqual(await workerPath(dir, ''), { code: 'BILL_TRUNCATED' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('copyText: COPY text format round trip (escapes, counts) inside the caller\'s transaction; a bad row copies nothing', async () => {
  const t = await openTestDb();
  try {
    const { db } = t;
    await sql`create table copy_probe (id bigint primary key, note text)`.execute(db.kysely);
    const notes = ['plain', 'back\\\\slash', '中文', 'tab\\there'];
    const data = notes.map((n, i) => `${i + 1}\t${n}`).join('\n');
    const n = await db.kysely.transaction().execute((tx) => copyText(tx, 'copy_probe (id, note)', data));
    assert.equal(n, 4);
    const rows = await sql<{ id: string; note: string }>`select id::text, note from copy_probe order by id`.execute(db.kysely);
    assert.deepEqual(rows.rows.map((r) => r.note), ['plain', 'back\\slash', '中文', 'tab\there']);
    await assert.rejects(db.kysely.transaction().execute(async (tx) => {
      await copyText(tx, 'copy_probe (id, note)', '10\tok\n11\tok\tone too many');
    }));
    await assert.rejects(db.kysely.transaction().execute(async (tx) => {
      await copyText(tx, 'copy_probe (id, note)', '20\tfine');
      throw new Error('roll back');
    }), /roll back/);
    const after = await sql<{ n: number }>`select count(*)::int as n from copy_probe`.execute(db.kysely);
    assert.equal(after.rows[0].n, 4, 'the failed and the rolled-back copies left nothing');
    await assert.rejects(copyText(db.kysely, 'copy_probe; drop table x (id)', '1\tx'), /not a COPY target/);
  } finally {
    await t.close();
  }
});

test('stageText: COPY and the SQL split stage the same rows from the same chunk (escapes, CJK, row numbers)', async () => {
  const t = await openTestDb();
  try {
    const { db } = t;
    const records: ChannelRecord[] = [
      { kind: 'payment', payOrderId: 'P\\1', channelOrderNo: '42\t1', refundOrderId: null, channelRefundNo: null, amountFen: 123n, feeE5: 1000n, status: 'SUCCESS', time: '2026-11-21 10:00:00' },
      { kind: 'refund', payOrderId: 'P2', channelOrderNo: '42', refundOrderId: 'R\\\\2', channelRefundNo: '物业费\r\n', amountFen: 10n ** 17n, feeE5: -5n, status: 'REFUND', time: '2026-11-21 10:00:01' },
    ];
    const chunk = Buffer.from(records.map((r, i) => stageLine(i + 7, r)).join('\n'), 'utf8');
    const staged = async (batchId: string) => (await sql<Record<string, unknown>>`SELECT row_no, kind, ref_id, pay_order_id, channel_no, status, trade_time, amount_fen, fee_e5
      FROM recon_channel_rows WHERE batch_id = ${batchId} ORDER BY row_no`.execute(db.kysely)).rows;
    await db.kysely.transaction().execute(async (tx) => {
      assert.equal(await stageText(tx, 'RB-COPY', chunk, 'copy'), 2);
      assert.equal(await stageText(tx, 'RB-INSERT', chunk, 'insert'), 2);
    });
    const viaCopy = await staged('RB-COPY');
    assert.deepEqual(await staged('RB-INSERT'), viaCopy);
    assert.deepEqual(viaCopy.map((r) => [r.row_no, r.ref_id, r.channel_no, r.amount_fen]), [[7, 'P\\1', '42 1', 123n], [8, 'R\\\\2', '物业费  ', 10n ** 17n]]);
  } finally {
    await t.close();
  }
});

test('utf8ByteBlocks: whole lines as bytes whatever the pieces; invalid UTF-8 and an endless line are refused with where', async () => {
  const blocksOf = async (pieces: Buffer[]) => {
    const out: string[] = [];
    for await (const b of utf8ByteBlocks((async function* () { yield* pieces; })())) out.push(b);
    return out;
  };
  await fc.assert(fc.asyncProperty(fc.array(fc.constantFrom('a', '中', '𠀀', '\n', ','), { maxLength: 60 }), fc.array(fc.nat(), { maxLength: 5 }), async (chars, cuts) => {
    const bytes = Buffer.from(chars.join(''), 'utf8');
    const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
    const pieces = [0, ...at].map((from, i) => bytes.subarray(from, [...at, bytes.length][i]));
    const blocks = await blocksOf(pieces);
    for (const b of blocks) assert.ok(b.endsWith('\n'), 'every block ends a line');
    const text = chars.join('');
    assert.equal(Buffer.from(blocks.join(''), 'latin1').toString('utf8'), text === '' || text.endsWith('\n') ? text : text + '\n');
  }));
  await assert.rejects(blocksOf([Buffer.from('ok\n'), Buffer.from([0x61, 0xff, 0x0a])]), (e: BillRejected) => e.code === 'BILL_ENCODING_INVALID' && /byte 3\b/.test(e.message));
  await assert.rejects(blocksOf([Buffer.alloc((1 << 20) + 1, 0x61)]), (e: BillRejected) => e.code === 'BILL_ROW_INVALID' && /byte 0\b/.test(e.message));
});
