// Owners' proofs in the maintenance fund (issue 12, holes 3 and 7, and point 10):
// a property company cannot forge owners' votes from the register it reads; the owner's
// H5 sign-in needs the SMS code and locks out after repeated failures (per unit, per IP);
// one owner session per unit, each vote recorded under its own voter with its proof;
// only owners and the center start bill payments; id numbers and phones are sealed at
// rest with keyed-hash lookups; receipt check codes never reach the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { startStack, type Stack } from './payment.harness.ts';
import { apiOf, setUpCity, importCsv, csvRow, type Api } from './fund.deposit.harness.ts';
import { openTestDb } from './helpers.ts';
import { ManualClock } from '../src/platform/clock.ts';
import { sql } from '../src/platform/db.ts';
import { installErrorHandler } from '../src/platform/http/errors.ts';
import { createLimiter } from '../src/fund/proof/limiter.ts';
import { AppError } from '../src/platform/errors.ts';

const ESTATE = '翠湖苑';
const OWNERS = [
  { room: '101', cert: '浙(2025)杭州市不动产权第1101号', owner: '张小三', idNo: '330106198001010011', phone: '13900000001' },
  { room: '102', cert: '浙(2025)杭州市不动产权第1102号', owner: '李四', idNo: '330106198001010022', phone: '13900000002' },
  { room: '103', cert: '浙(2025)杭州市不动产权第1103号', owner: '王五', idNo: '33010619800101003X', phone: '' },
  { room: '104', cert: '浙(2025)杭州市不动产权第1104号', owner: '赵六', idNo: '', phone: '13900000004' },
  { room: '105', cert: '浙(2025)杭州市不动产权第1105号', owner: '钱七', idNo: '', phone: '13900000005' },
  { room: '106', cert: '浙(2025)杭州市不动产权第1106号', owner: '孙八', idNo: '', phone: '13900000006' },
];

let stack: Stack;
let api: Api;
let clock: ManualClock;
let estateId = '';
let property = '';
let committee = '';
const unitOf = new Map<string, string>(); // room → unit id
let applicationId = '';

before(async () => {
  clock = new ManualClock(BigInt(Date.now()) * 1_000_000n);
  stack = await startStack({ clock, background: false });
  api = apiOf(stack);
  await setUpCity(api);
  const imported = await importCsv(api, OWNERS.map((o) => csvRow({ estate: ESTATE, room: o.room, cert: o.cert, owner: o.owner, idNo: o.idNo, phone: o.phone, sold: '是' })));
  assert.equal(imported.status, 200, JSON.stringify(imported.body));
  const units = (await api('GET', '/v1/fund/units')).body.units as Array<{ id: string; roomNo: string; estateId: string }>;
  for (const u of units) unitOf.set(u.roomNo, u.id);
  estateId = units[0].estateId;
  property = (await api('POST', '/v1/fund/principals', { role: 'property', subject: '阳光物业', estateIds: [estateId] })).body.token;
  committee = (await api('POST', '/v1/fund/principals', { role: 'committee', subject: '翠湖苑业委会', estateIds: [estateId] })).body.token;
  const created = await api('POST', '/v1/fund/applications', {
    requestKey: 'proof-app-1', estateId, scope: 'estate', title: '屋面防水 / roof', description: '渗漏 / leaks', budgetFen: '60000',
    contractor: { name: '某某建筑公司', accountNo: '6222020200112233', bankName: '工商银行' }, items: [{ name: '防水', amountFen: '60000' }],
  }, property);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  applicationId = created.body.id;
});
after(async () => {
  await stack.close();
});

/** A fresh 15-minute window for every test (the limits are per unit and per IP; all requests come from 127.0.0.1). */
const nextWindow = () => clock.advanceSeconds(16 * 60);

interface Page { status: number; text: string; cookie: string | null; retryAfter: string | null; location: string | null }
async function form(path: string, fields: Record<string, string>, cookie?: string): Promise<Page> {
  const res = await fetch(stack.url + path, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) },
    body: new URLSearchParams(fields).toString(),
  });
  const setCookie = res.headers.get('set-cookie');
  return { status: res.status, text: await res.text(), cookie: setCookie ? setCookie.split(';')[0] : null, retryAfter: res.headers.get('retry-after'), location: res.headers.get('location') };
}

const signInStep1 = (room: string, ownerName: string, cert = OWNERS.find((o) => o.room === room)!.cert, cookie?: string) =>
  form('/h5/fund/login', { unitId: unitOf.get(room)!, certNo: cert, ownerName }, cookie);

/** The honest owner: the register's proof, then the code the SMS brought (read from the outbox). Returns the cookie and its token. */
async function signIn(room: string, ownerName: string, cookie?: string): Promise<{ cookie: string; token: string }> {
  const step1 = await signInStep1(room, ownerName, undefined, cookie);
  assert.equal(step1.status, 200, step1.text);
  const challengeId = /name="challengeId" value="(sc_[0-9a-f]+)"/.exec(step1.text)?.[1] as string;
  const sms = (await api('GET', `/v1/fund/sms-outbox?ref=${unitOf.get(room)}`)).body.messages[0];
  const smsCode = /验证码 (\d{6})/.exec(sms.body)?.[1] as string;
  const done = await form('/h5/fund/login/sms', { unitId: unitOf.get(room)!, challengeId, smsCode }, cookie);
  assert.equal(done.status, 303, done.text);
  assert.ok(done.cookie);
  return { cookie: done.cookie, token: decodeURIComponent(done.cookie.split('=')[1]) };
}

test('hole 3: a property company cannot forge owners\' votes — no certificate numbers or full names, the register\'s proof is not enough', async () => {
  nextWindow();
  for (const token of [property, committee]) {
    const listed = await api('GET', `/v1/fund/units?estateId=${estateId}`, undefined, token);
    assert.equal(listed.status, 200);
    for (const u of listed.body.units) {
      assert.equal(u.certNo, null, 'no certificate number');
      for (const o of u.owners) {
        assert.ok(!OWNERS.some((x) => x.owner === o.name), `full name ${o.name} leaked`);
        assert.equal(o.idNo, null);
        assert.equal(o.phone, null);
      }
    }
    const names = listed.body.units.flatMap((u: any) => u.owners.map((o: any) => o.name)).sort();
    assert.deepEqual(names, ['孙*', '张*三', '李*', '王*', '赵*', '钱*']);
    const one = await api('GET', `/v1/fund/units/${unitOf.get('101')}`, undefined, token);
    assert.equal(one.body.certNo, null);
    assert.equal(one.body.owners[0].name, '张*三');
    assert.doesNotMatch(JSON.stringify((await api('GET', `/v1/fund/applications/${applicationId}`, undefined, token)).body), /张小三|不动产权第/);
  }
  // The center still sees them.
  const center = await api('GET', `/v1/fund/units/${unitOf.get('101')}`);
  assert.equal(center.body.certNo, OWNERS[0].cert);
  assert.deepEqual(center.body.owners[0], { name: '张小三', idNo: OWNERS[0].idNo, phone: OWNERS[0].phone });

  // Even with the register's proof (say a leaked copy), signing in needs the code sent to the owner's phone.
  for (const o of OWNERS.slice(0, 2)) {
    const step1 = await signInStep1(o.room, o.owner);
    assert.equal(step1.status, 200);
    assert.equal(step1.cookie, null, 'the register\'s proof alone gives no session');
    const challengeId = /name="challengeId" value="(sc_[0-9a-f]+)"/.exec(step1.text)?.[1] as string;
    const guess = await form('/h5/fund/login/sms', { unitId: unitOf.get(o.room)!, challengeId, smsCode: '000000' });
    if (guess.status === 303) continue; // one chance in a million
    assert.equal(guess.status, 403);
    assert.equal(guess.cookie, null);
  }
  // Voting for all: the property company may not vote; the committee needs each owner's voting code.
  for (const o of OWNERS) {
    const unitId = unitOf.get(o.room)!;
    const byProperty = await api('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId, choice: 'agree' }, property);
    assert.equal(byProperty.body.code, 'FUND_FORBIDDEN');
    const byCommittee = await api('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId, choice: 'agree' }, committee);
    assert.equal(byCommittee.body.code, 'FUND_VOTE_PROOF_REQUIRED');
    const guessed = await api('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId, choice: 'agree', votingCode: 'ABCD-EFGH-JKMN' }, committee);
    assert.equal(guessed.body.code, 'FUND_VOTING_CODE_INVALID');
    const anonymous = await api('POST', '/v1/fund/ballots', { applicationId, unitId, choice: 'agree' }, null);
    assert.equal(anonymous.body.code, 'FUND_VOTE_PROOF_REQUIRED');
  }
  const votes = await sql<{ n: number }>`SELECT count(*)::int AS n FROM fund_votes`.execute(stack.t.db.kysely);
  assert.equal(votes.rows[0].n, 0, 'not one vote was recorded');
});

test('hole 3, the honest path: SMS-proven owners and voting codes, one session per unit, each voter recorded with its proof', async () => {
  nextWindow();
  const zhang = await signIn('101', '张小三');
  const agree = await api('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId: unitOf.get('101'), choice: 'agree' }, zhang.token);
  assert.equal(agree.status, 200, JSON.stringify(agree.body));
  assert.equal(agree.body.proof, 'sms');
  // Signing in to another unit from the same browser replaces the session: it never collects units.
  const li = await signIn('102', '李四', zhang.cookie);
  assert.notEqual(li.token, zhang.token);
  const cross = await api('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId: unitOf.get('101'), choice: 'disagree' }, li.token);
  assert.equal(cross.body.code, 'FUND_FORBIDDEN', 'the second session holds only its own unit');
  assert.equal((await api('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId: unitOf.get('102'), choice: 'disagree' }, li.token)).status, 200);

  // 王五 has no phone on record: no SMS sign-in; he votes with the code the center mailed.
  const noPhone = await signInStep1('103', '王五');
  assert.equal(noPhone.status, 409);
  assert.match(noPhone.text, /表决码/);
  const issued = await api('POST', `/v1/fund/applications/${applicationId}/voting-codes`, {});
  assert.equal(issued.status, 201, JSON.stringify(issued.body));
  assert.equal(issued.body.codes.length, OWNERS.length);
  const codeOf = new Map<string, string>(issued.body.codes.map((c: any) => [c.unitId, c.code]));
  assert.equal((await api('POST', `/v1/fund/applications/${applicationId}/voting-codes`, {}, property)).body.code, 'FUND_FORBIDDEN');
  for (const [body, code] of [[{ unitIds: 'x' }, 'FUND_INVALID_REQUEST'], [{ unitIds: [] }, 'FUND_INVALID_REQUEST'], [{ unitIds: ['u_nope'] }, 'FUND_UNIT_NOT_IN_SCOPE']] as const) {
    const r = await api('POST', `/v1/fund/applications/${applicationId}/voting-codes`, body);
    assert.equal(r.body.code, code, JSON.stringify(r.body));
  }
  assert.equal((await api('POST', '/v1/fund/applications/NOPE/voting-codes', {})).status, 404);
  assert.equal((await api('POST', '/v1/fund/ballots', { applicationId: '../x', unitId: 'u', choice: 'agree', votingCode: 'x' }, null)).body.code, 'FUND_PARAM_INVALID');
  assert.equal((await api('POST', '/v1/fund/ballots', { applicationId, unitId: unitOf.get('103'), choice: 'maybe', votingCode: 'x' }, null)).body.code, 'FUND_INVALID_REQUEST');
  const stored = await sql<{ code_hash: string }>`SELECT code_hash FROM fund_voting_codes`.execute(stack.t.db.kysely);
  assert.ok(stored.rows.every((r) => ![...codeOf.values()].some((c) => r.code_hash.includes(c.replace(/-/g, '')))), 'only hashes are stored');
  const wang = await api('POST', '/v1/fund/ballots', { applicationId, unitId: unitOf.get('103'), choice: 'agree', votingCode: codeOf.get(unitOf.get('103')!)!.toLowerCase() }, null);
  assert.equal(wang.status, 200, JSON.stringify(wang.body));
  assert.equal(wang.body.proof, 'voting_code');
  const reuse = await api('POST', '/v1/fund/ballots', { applicationId, unitId: unitOf.get('103'), choice: 'disagree', votingCode: codeOf.get(unitOf.get('103')!) }, null);
  assert.equal(reuse.body.code, 'FUND_VOTING_CODE_USED', 'single use');
  // The committee enters 赵六's paper ballot, which carries his code.
  const paper = await api('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId: unitOf.get('104'), choice: 'abstain', votingCode: codeOf.get(unitOf.get('104')!) }, committee);
  assert.equal(paper.status, 200, JSON.stringify(paper.body));
  // A voting code allows five wrong tries, then it is locked even for the right code.
  for (let i = 0; i < 5; i += 1) {
    const wrong = await api('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId: unitOf.get('105'), choice: 'agree', votingCode: 'ABCD-EFGH-JKMN' }, committee);
    assert.equal(wrong.body.code, 'FUND_VOTING_CODE_INVALID');
  }
  const locked = await api('POST', `/v1/fund/applications/${applicationId}/votes`, { unitId: unitOf.get('105'), choice: 'agree', votingCode: codeOf.get(unitOf.get('105')!) }, committee);
  assert.equal(locked.body.code, 'FUND_VOTING_CODE_LOCKED');

  const detail = await api('GET', `/v1/fund/applications/${applicationId}`);
  const byUnit = new Map<string, any>(detail.body.votes.map((v: any) => [v.unitId, v]));
  assert.equal(byUnit.size, 4);
  const v101 = byUnit.get(unitOf.get('101')!);
  const v102 = byUnit.get(unitOf.get('102')!);
  assert.match(v101.voter, new RegExp(`^owner:张\\*\\*#1:${unitOf.get('101')}$`));
  assert.match(v102.voter, new RegExp(`^owner:李\\*#1:${unitOf.get('102')}$`), 'each vote under its own voter (not the first owner\'s name)');
  assert.deepEqual([v101.proof, v102.proof], ['sms', 'sms']);
  assert.match(v101.sessionId, /^os_[0-9a-f]{24}$/);
  assert.notEqual(v101.sessionId, v102.sessionId);
  assert.equal(byUnit.get(unitOf.get('103')!).proof, 'voting_code');
  assert.equal(byUnit.get(unitOf.get('104')!).proof, 'voting_code');
  assert.equal(byUnit.get(unitOf.get('104')!).voterRole, 'committee');
  const audit = await sql<{ detail: any }>`SELECT detail FROM fund_audit WHERE action = 'vote.record' AND target = ${`application:${applicationId}`} ORDER BY id`.execute(stack.t.db.kysely);
  assert.deepEqual(audit.rows.map((r) => r.detail.proof), ['sms', 'sms', 'voting_code', 'voting_code']);
  assert.equal(audit.rows[0].detail.sessionId, v101.sessionId);
});

test('hole 7: 50 wrong guesses of the owner\'s name lock the unit out; the right name is refused until the window ends', async () => {
  nextWindow();
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 50; i += 1) {
    const r = await signInStep1('105', `钱${i}`);
    statuses.push(r.status);
    if (r.status === 429) {
      retryAfter = r.retryAfter;
      assert.match(r.text, /尝试次数过多/);
    }
  }
  assert.deepEqual(statuses.slice(0, 5), [403, 403, 403, 403, 403]);
  assert.ok(statuses.slice(5).every((s) => s === 429), `then locked: ${statuses.join(',')}`);
  assert.ok(Number(retryAfter) > 0 && Number(retryAfter) <= 900, `Retry-After ${retryAfter}`);
  const right = await signInStep1('105', '钱七');
  assert.equal(right.status, 429, 'the right name is refused while locked');
  clock.advanceSeconds(14 * 60);
  assert.equal((await signInStep1('105', '钱七')).status, 429, 'still locked before the window ends');
  clock.advanceSeconds(61);
  const after = await signInStep1('105', '钱七');
  assert.equal(after.status, 200, 'the window has ended: the owner may try again');
  // Wrong SMS codes count too.
  nextWindow();
  const step1 = await signInStep1('106', '孙八');
  const challengeId = /name="challengeId" value="(sc_[0-9a-f]+)"/.exec(step1.text)?.[1] as string;
  const codes: number[] = [];
  for (let i = 0; i < 8; i += 1) codes.push((await form('/h5/fund/login/sms', { unitId: unitOf.get('106')!, challengeId, smsCode: String(100000 + i) })).status);
  assert.ok(codes.includes(429), `SMS code guesses lock out: ${codes.join(',')}`);
});

test('hole 7: per-IP failures lock every unit out for that address', async () => {
  nextWindow();
  const statuses: number[] = [];
  for (const room of ['101', '102', '103', '104', '105']) {
    for (let i = 0; i < 4; i += 1) statuses.push((await signInStep1(room, `猜${i}`)).status);
  }
  assert.ok(statuses.every((s) => s === 403), statuses.join(','));
  const locked = await signInStep1('106', '孙八');
  assert.equal(locked.status, 429, 'the 21st attempt from the address is refused');
  assert.ok(locked.retryAfter);
});

test('the failure limiter counts before it verifies: a parallel burst verifies at most the limit (both databases)', async () => {
  const t = await openTestDb();
  try {
    const c = new ManualClock();
    const limiter = createLimiter({ db: t.db, clock: c });
    const outcomes = await Promise.allSettled(Array.from({ length: 50 }, () => limiter.attempt([{ key: 'unit:x', rule: 'unit' }])));
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 5);
    for (const o of outcomes) if (o.status === 'rejected') assert.equal((o.reason as AppError).code, 'FUND_SIGNIN_LOCKED');
    c.advanceSeconds(899);
    await assert.rejects(limiter.attempt([{ key: 'unit:x', rule: 'unit' }]), /too many failed attempts/);
    c.advanceSeconds(2);
    await limiter.attempt([{ key: 'unit:x', rule: 'unit' }]);
    await limiter.forgive([{ key: 'unit:x', rule: 'unit' }]);
    for (let i = 0; i < 5; i += 1) await limiter.attempt([{ key: 'unit:x', rule: 'unit' }]);
  } finally {
    await t.close();
  }
});

test('point 10: property and committee tokens cannot start a bill payment; the owner and the center can', async () => {
  nextWindow();
  const generated = await api('POST', '/v1/fund/bills/generate', { unitIds: [unitOf.get('101'), unitOf.get('102')] });
  assert.equal(generated.status, 200, JSON.stringify(generated.body));
  const bills = (await api('GET', `/v1/fund/bills?estateId=${estateId}`)).body.bills as Array<{ id: string; unitId: string }>;
  const billOf = (room: string) => bills.find((b) => b.unitId === unitOf.get(room))!.id;
  assert.equal(generated.body.created, 2);
  for (const token of [property, committee]) {
    const r = await api('POST', `/v1/fund/bills/${billOf('101')}/pay`, {}, token);
    assert.equal(r.status, 403, JSON.stringify(r.body));
    assert.equal(r.body.code, 'FUND_FORBIDDEN');
  }
  const links = await sql<{ n: number }>`SELECT count(*)::int AS n FROM fund_pay_links`.execute(stack.t.db.kysely);
  assert.equal(links.rows[0].n, 0, 'no pay order was created');
  const zhang = await signIn('101', '张小三');
  const own = await api('POST', `/v1/fund/bills/${billOf('101')}/pay`, {}, zhang.token);
  assert.equal(own.status, 200, JSON.stringify(own.body));
  assert.match(own.body.cashierUrl, /\/cashier\/P\d+/);
  assert.equal((await api('POST', `/v1/fund/bills/${billOf('102')}/pay`, {}, zhang.token)).status, 403, 'not another owner\'s bill');
  assert.equal((await api('POST', `/v1/fund/bills/${billOf('102')}/pay`, {})).status, 200, 'the center may');
});

test('point 10: id numbers and phones are sealed at rest (clear rows sealed at start), lookups by keyed hash still work', async () => {
  const db = stack.t.db.kysely;
  const transfer = await api('POST', `/v1/fund/units/${unitOf.get('106')}/ownership-transfers`, {
    version: (await api('GET', `/v1/fund/units/${unitOf.get('106')}`)).body.version, newCertNo: '浙(2026)杭州市不动产权第2106号',
    newOwners: [{ name: '周九', idNo: '330106199001010099', phone: '13900000009' }],
  });
  assert.equal(transfer.status, 200, JSON.stringify(transfer.body));
  // A row from before the change, with id number and phone in clear: sealed at start.
  const legacy = unitOf.get('105')!;
  await sql`UPDATE register_units SET owners = '[{"name":"钱七","idNo":"330106198001010055","phone":"13900000005"}]'::jsonb WHERE id = ${legacy}`.execute(db);
  assert.equal(await stack.platform.fund.start(), 1);
  const dump = async () => (await sql<{ t: string }>`SELECT coalesce(string_agg(owners::text, ' '), '') AS t FROM register_units`.execute(db)).rows[0].t
    + (await sql<{ t: string }>`SELECT coalesce(string_agg(old_owners::text || new_owners::text, ' '), '') AS t FROM fund_ownership_transfers`.execute(db)).rows[0].t
    + (await sql<{ t: string }>`SELECT coalesce(string_agg(body || phone_masked || phone_hash, ' '), '') AS t FROM fund_sms_outbox`.execute(db)).rows[0].t.replace(/验证码 \d{6}/g, '');
  const text = await dump();
  for (const secret of ['330106198001010011', '330106198001010022', '33010619800101003X', '330106198001010055', '330106199001010099', '13900000001', '13900000002', '13900000004', '13900000005', '13900000006', '13900000009']) {
    assert.ok(!text.includes(secret), `${secret} is in clear in the tables`);
  }
  assert.match(text, /idNoEnc/);
  const byId = await api('GET', '/v1/fund/units?ownerIdNo=33010619800101003x');
  assert.deepEqual(byId.body.units.map((u: any) => u.id), [unitOf.get('103')], 'lookup by id number (X in any case)');
  assert.deepEqual((await api('GET', '/v1/fund/units?ownerPhone=13900000005')).body.units.map((u: any) => u.id), [legacy], 'the sealed legacy row is found');
  assert.deepEqual((await api('GET', '/v1/fund/units?ownerPhone=13900000009')).body.units.map((u: any) => u.owners[0]), [{ name: '周九', idNo: '330106199001010099', phone: '13900000009' }]);
  assert.equal((await api('GET', '/v1/fund/units?ownerPhone=13900000009', undefined, property)).body.code, 'FUND_FORBIDDEN');
  const transfers = await api('GET', `/v1/fund/units/${unitOf.get('106')}/ownership-transfers`);
  assert.equal(transfers.body.transfers[0].old_owners[0].phone, '13900000006');
  assert.equal(await stack.platform.fund.start(), 0, 'nothing left to seal');
});

test('point 10: receipt check codes are redacted from the request log', async () => {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk, _enc, done) { lines.push(chunk.toString()); done(); } });
  const app = Fastify({ logger: { level: 'info', stream: sink } });
  installErrorHandler(app);
  for (const register of stack.platform.fund.routes) await register(app);
  await app.ready();
  try {
    for (const url of ['/v1/fund/receipts/WX202600000001?amountFen=100&code=SECRETCODE0001', '/v1/fund/receipts/WX202600000001/pdf?code=SECRETCODE0002',
      '/h5/fund/verify?no=WX202600000001&amount=100&code=SECRETCODE0003', '/h5/fund/receipts/WX202600000001/pdf?code=SECRETCODE0004']) {
      const r = await app.inject({ method: 'GET', url });
      assert.ok(r.statusCode >= 400 && r.statusCode < 500, `${url} → ${r.statusCode}`);
    }
  } finally {
    await app.close();
  }
  const log = lines.join('');
  assert.match(log, /incoming request/);
  assert.match(log, /code=\[REDACTED\]/);
  assert.doesNotMatch(log, /SECRETCODE/);
});

test('codes expire and work once: the SMS code after 5 minutes, a voting code after 60 days; parallel ballots with one code record one vote', async () => {
  nextWindow();
  const unitId = unitOf.get('101')!;
  const challenge = async () => {
    const step1 = await signInStep1('101', '张小三');
    assert.equal(step1.status, 200, step1.text);
    const sms = (await api('GET', `/v1/fund/sms-outbox?ref=${unitId}`)).body.messages[0];
    return { challengeId: /name="challengeId" value="(sc_[0-9a-f]+)"/.exec(step1.text)?.[1] as string, smsCode: /验证码 (\d{6})/.exec(sms.body)?.[1] as string };
  };
  const late = await challenge();
  clock.advanceSeconds(301);
  const expired = await form('/h5/fund/login/sms', { unitId, ...late });
  assert.equal(expired.status, 403);
  assert.match(expired.text, /已失效/);
  assert.equal(expired.cookie, null);
  const fresh = await challenge();
  const older = await form('/h5/fund/login/sms', { unitId, ...late });
  assert.equal(older.status, 403, 'a new code retires the earlier one');
  assert.equal((await form('/h5/fund/login/sms', { unitId, ...fresh })).status, 303);
  assert.equal((await form('/h5/fund/login/sms', { unitId, ...fresh })).status, 403, 'used once');

  nextWindow();
  const issued = await api('POST', `/v1/fund/applications/${applicationId}/voting-codes`, { unitIds: [unitOf.get('106'), unitOf.get('102')] });
  const codeOf = new Map<string, string>(issued.body.codes.map((c: any) => [c.unitId, c.code]));
  const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => api('POST', '/v1/fund/ballots', { applicationId, unitId: unitOf.get('106'), choice: i % 2 ? 'agree' : 'disagree', votingCode: codeOf.get(unitOf.get('106')!) }, null)));
  assert.equal(burst.filter((r) => r.status === 200).length, 1, burst.map((r) => r.body.code ?? r.status).join(','));
  assert.ok(burst.filter((r) => r.status !== 200).every((r) => r.body.code === 'FUND_VOTING_CODE_USED'));
  clock.advanceSeconds(61 * 86400);
  const stale = await api('POST', '/v1/fund/ballots', { applicationId, unitId: unitOf.get('102'), choice: 'agree', votingCode: codeOf.get(unitOf.get('102')!) }, null);
  assert.equal(stale.body.code, 'FUND_VOTING_CODE_EXPIRED');
});
