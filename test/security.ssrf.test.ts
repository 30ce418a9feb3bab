// Issue 12, hole 1: server-side request forgery through `notifyUrl`. The outbound
// client refuses every non-public address in every notation, at connect time (a name
// that resolves to one is refused, so DNS rebinding cannot pass); notifyUrl is checked
// when an order, refund, transfer or merchant is created; the allow-list is explicit;
// and the sandbox's payer endpoints no longer obey a request the platform was tricked
// into sending (the demonstrated theft: a 1-fen order whose notifyUrl paid a ¥500 one).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { sql } from 'kysely';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import {
  startStack, merchant, notifySink, waitFor, order, sandboxPayerAction, type Stack, type MerchantClient, type NotifySink,
} from './payment.harness.ts';
import { classifyAddress, createOutbound, OutboundRefused, type Resolver } from '../src/platform/outbound.ts';
import { loadConfig, ConfigError } from '../src/platform/config.ts';

// --- the classifier, property-based ------------------------------------------------------------

const v4 = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
const inCidr = (cidr: string) => {
  const [base, bits] = ipaddr.parseCIDR(cidr);
  const b = base.toByteArray();
  const start = ((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3];
  const size = 2 ** (32 - bits);
  return fc.integer({ min: 0, max: size - 1 }).map((i) => v4(start + i));
};
const FORBIDDEN_V4 = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.0.0.0/24', '192.0.2.0/24',
  '192.168.0.0/16', '198.18.0.0/15', '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4', '255.255.255.255/32'];
const forbiddenV4 = fc.oneof(...FORBIDDEN_V4.map(inCidr));
const hex4 = (a: string) => ipaddr.parse(a).toByteArray().reduce((acc, x) => acc * 256 + x, 0).toString(16).padStart(8, '0');
const hi = (a: string) => hex4(a).slice(0, 4);
const lo = (a: string) => hex4(a).slice(4);

describe('classifier', () => {
  test('every address of a non-public IPv4 range is refused', () => {
    fc.assert(fc.property(forbiddenV4, (a) => classifyAddress(a).public === false), { numRuns: 3000 });
  });

  test('IPv6 forms that carry a non-public IPv4 address are refused: mapped, compatible, 6to4, NAT64, Teredo, SIIT', () => {
    fc.assert(fc.property(forbiddenV4, (a) => {
      const forms = [`::ffff:${a}`, `::ffff:${hi(a)}:${lo(a)}`, `::${hi(a)}:${lo(a)}`, `2002:${hi(a)}:${lo(a)}::1`, `64:ff9b::${hi(a)}:${lo(a)}`,
        `::ffff:0:${hi(a)}:${lo(a)}`,
        // Teredo: the client address is stored inverted.
        `2001:0:808:808:0:0:${(0xffff ^ parseInt(hi(a), 16)).toString(16)}:${(0xffff ^ parseInt(lo(a), 16)).toString(16)}`];
      return forms.every((f) => classifyAddress(f).public === false);
    }), { numRuns: 2000 });
  });

  test('IPv6 loopback, unspecified, link-local, unique-local, site-local, multicast, documentation, discard are refused', () => {
    const inV6 = (cidr: string) => fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((parts) => {
      const [base, bits] = ipaddr.parseCIDR(cidr);
      const b = base.toByteArray();
      const rnd = parts.flatMap((p) => [p >> 8, p & 255]);
      const bytes = b.map((x, i) => (i * 8 + 8 <= bits ? x : i * 8 >= bits ? rnd[i] : (x & (0xff << (8 - (bits % 8)))) | (rnd[i] & (0xff >> (bits % 8)))));
      return ipaddr.fromByteArray(bytes).toString();
    });
    const ranges = ['fe80::/10', 'fc00::/7', 'fec0::/10', 'ff00::/8', '2001:db8::/32', '100::/64', '::/96', '64:ff9b:1::/48'];
    fc.assert(fc.property(fc.oneof(...ranges.map(inV6)), (a) => classifyAddress(a).public === false), { numRuns: 3000 });
    for (const a of ['::1', '::', '::ffff:0.0.0.0']) assert.equal(classifyAddress(a).public, false, a);
  });

  test('a public address is allowed only when ipaddr.js calls it unicast (or it embeds a public IPv4)', () => {
    fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (a) => {
      const verdict = classifyAddress(a);
      if (!verdict.public) return true;
      const parsed = ipaddr.parse(a);
      const range = parsed.range();
      if (parsed.kind() === 'ipv4') return range === 'unicast';
      if (['ipv4Mapped', 'rfc6145', 'rfc6052', '6to4', 'teredo'].includes(range)) return true;
      return range === 'unicast' && !parsed.toByteArray().slice(0, 12).every((x) => x === 0);
    }), { numRuns: 5000 });
    for (const a of ['8.8.8.8', '114.114.114.114', '2400:3200::1', '::ffff:8.8.8.8', '2002:808:808::1']) assert.equal(classifyAddress(a).public, true, a);
  });

  test('every notation of a loopback or metadata address is refused by the URL check', () => {
    const outbound = createOutbound();
    const urls = [
      'http://127.0.0.1:8080/v1/admin/x', 'http://169.254.169.254/latest/meta-data/', 'http://2130706433:8080/', 'http://0x7f.0.0.1:8080/',
      'http://0177.0.0.1:8080/', 'http://127.1:8080/', 'http://127.0.1/', 'http://0x7f000001/', 'http://017700000001/', 'http://localhost:8080/',
      'http://LOCALHOST./', 'http://a.b.localhost/', 'http://[::1]/', 'http://[::ffff:127.0.0.1]:8080/', 'http://[::ffff:7f00:1]/', 'http://[0:0:0:0:0:ffff:127.0.0.1]/',
      'http://[::127.0.0.1]/', 'http://[2002:7f00:1::1]/', 'http://[64:ff9b::7f00:1]/', 'http://[fe80::1]/', 'http://[fc00::1]/', 'http://[::]/', 'http://0/',
      'http://0.0.0.0/', 'http://10.1.2.3/', 'http://172.31.255.255/', 'http://192.168.0.1/', 'http://100.64.0.1/', 'http://224.0.0.1/', 'http://255.255.255.255/',
      'http://192.0.2.1/', 'http://198.51.100.7/', 'http://203.0.113.9/', 'http://240.0.0.1/', 'http://0xa9fea9fe/', 'http://2852039166/', 'http://①②⑦.0.0.1/',
      'https://127.0.0.1/', 'ftp://8.8.8.8/', 'file:///etc/passwd', 'gopher://8.8.8.8/', 'not a url',
    ];
    for (const url of urls) assert.equal(outbound.checkUrl(url).ok, false, url);
    for (const url of ['https://merchant.example.com/notify', 'http://8.8.8.8:8080/n', 'http://[2400:3200::1]/n']) assert.equal(outbound.checkUrl(url).ok, true, url);
  });

  test('a forbidden IPv4 in any numeric notation is refused (decimal, hex, octal, short forms)', () => {
    const outbound = createOutbound();
    fc.assert(fc.property(forbiddenV4, fc.integer({ min: 0, max: 4 }), (a, how) => {
      const o = a.split('.').map(Number);
      const n = o.reduce((acc, x) => acc * 256 + x, 0);
      const host = [String(n), `0x${n.toString(16)}`, o.map((x) => `0${x.toString(8)}`).join('.'), o.map((x) => `0x${x.toString(16)}`).join('.'),
        `${o[0]}.${(o[1] << 16) + (o[2] << 8) + o[3]}`][how];
      return outbound.checkUrl(`http://${host}:8080/n`).ok === false;
    }), { numRuns: 2000 });
  });

  test('CUSTOS_OUTBOUND_ALLOW: IPs and CIDRs, a bad entry is a configuration error, empty by default', () => {
    assert.deepEqual(loadConfig({ CUSTOS_DATA_DIR: 'memory' }).outboundAllow, []);
    assert.deepEqual(loadConfig({ CUSTOS_DATA_DIR: 'memory', CUSTOS_OUTBOUND_ALLOW: '127.0.0.1, ::1,10.0.0.0/8' }).outboundAllow, ['127.0.0.1', '::1', '10.0.0.0/8']);
    for (const bad of ['localhost', '127.0.0.1/33', '10.0.0.0/8,x', '0x7f.0.0.1']) {
      assert.throws(() => loadConfig({ CUSTOS_DATA_DIR: 'memory', CUSTOS_OUTBOUND_ALLOW: bad }), ConfigError, bad);
    }
    const allowLoop = createOutbound({ allow: ['127.0.0.0/8'] });
    assert.equal(allowLoop.checkUrl('http://127.0.0.5/').ok, true);
    assert.equal(allowLoop.checkUrl('http://[::ffff:127.0.0.1]/').ok, true, 'an IPv4-mapped address is its IPv4 address for the allow-list');
    assert.equal(allowLoop.checkUrl('http://localhost/').ok, true);
    assert.equal(allowLoop.checkUrl('http://10.0.0.1/').ok, false);
    assert.equal(allowLoop.checkUrl('http://[::1]/').ok, false);
    assert.equal(createOutbound({ allow: ['::1'] }).checkUrl('http://127.0.0.1/').ok, false);
  });
});

// --- the client against real sockets --------------------------------------------------------

describe('outbound client', () => {
  let server: Server;
  let port: number;
  const hits: string[] = [];
  before(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/big') {
        res.write(Buffer.alloc(256 * 1024, 0x61));
        res.end(Buffer.alloc(256 * 1024, 0x61));
      } else if (req.url === '/redirect') {
        res.writeHead(302, { location: `http://127.0.0.1:${port}/target` }).end();
      } else if (req.url === '/hang') {
        // never answers
      } else res.end('success');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  test('nothing private by default; the allow-list lets exactly its addresses through', async () => {
    await assert.rejects(createOutbound().request({ method: 'POST', url: `http://127.0.0.1:${port}/a`, body: 'x' }), OutboundRefused);
    await assert.rejects(createOutbound({ allow: ['10.0.0.0/8'] }).request({ method: 'GET', url: `http://127.0.0.1:${port}/b` }), OutboundRefused);
    assert.equal(hits.length, 0, 'no connection was made');
    const ok = await createOutbound({ allow: ['127.0.0.1'] }).request({ method: 'POST', url: `http://127.0.0.1:${port}/c`, body: 'x' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), 'success');
    assert.deepEqual(hits, ['/c']);
  });

  test('a host name is checked where the socket connects: a name that resolves to a private address is refused (DNS rebinding)', async () => {
    let calls = 0;
    // The first answer is public (what a check before connecting would have seen), every later one loopback.
    const rebinding: Resolver = async () => (calls++ === 0 ? [{ address: '93.184.216.34', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
    const outbound = createOutbound({ resolve: rebinding });
    assert.equal(outbound.checkUrl(`http://rebind.test:${port}/n`).ok, true, 'a name passes the static check');
    calls = 1; // the connect-time lookup gets the private answer
    await assert.rejects(outbound.request({ method: 'POST', url: `http://rebind.test:${port}/n`, body: 'x' }), (e: Error) => e instanceof OutboundRefused && /127\.0\.0\.1 is loopback/.test(e.message));
    // one private answer among public ones is enough to refuse
    const mixed = createOutbound({ resolve: async () => [{ address: '8.8.8.8', family: 4 }, { address: '10.0.0.1', family: 4 }] });
    await assert.rejects(mixed.request({ method: 'GET', url: `http://mixed.test:${port}/n` }), OutboundRefused);
    // the real resolver: localhost is loopback
    await assert.rejects(createOutbound().request({ method: 'GET', url: `http://localhost:${port}/n` }), OutboundRefused);
    assert.ok(!hits.includes('/n'), 'no connection was made');
    // and when allowed, the resolved address is the one connected to
    const allowed = createOutbound({ allow: ['127.0.0.1'], resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
    assert.equal((await allowed.request({ method: 'GET', url: `http://rebind.test:${port}/ok` })).status, 200);
  });

  test('no redirects followed; the answer is cut at maxResponseBytes; a silent server times out', async () => {
    const outbound = createOutbound({ allow: ['127.0.0.1'] });
    const redirected = await outbound.request({ method: 'POST', url: `http://127.0.0.1:${port}/redirect`, body: 'x' });
    assert.equal(redirected.status, 302);
    assert.ok(!hits.includes('/target'), 'the redirect was not followed');
    const big = await outbound.request({ method: 'GET', url: `http://127.0.0.1:${port}/big`, maxResponseBytes: 1000 });
    assert.equal(big.body.length, 1000);
    assert.equal(big.truncated, true);
    await assert.rejects(outbound.request({ method: 'GET', url: `http://127.0.0.1:${port}/hang`, timeoutMs: 200 }), (e: Error) => e.name === 'TimeoutError');
  });
});

// --- through the platform ---------------------------------------------------------------------------

const notificationOf = async (s: Stack, refId: string) => (await sql<{ id: string; state: number; attempts: number; last_error: string | null }>`
  SELECT id, state, attempts, last_error FROM pay_notifications WHERE ref_id = ${refId} ORDER BY id`.execute(s.t.db.kysely)).rows;
const attemptsOf = async (s: Stack, refId: string) => (await sql<{ error: string | null; http_status: number | null }>`
  SELECT a.error, a.http_status FROM pay_notify_attempts a JOIN pay_notifications n ON n.id = a.notification_id WHERE n.ref_id = ${refId} ORDER BY a.id`.execute(s.t.db.kysely)).rows;
const postings = async (s: Stack, payOrderId: string) => (await sql<{ id: string }>`SELECT id FROM ledger_transfers WHERE id LIKE ${`pay:${payOrderId}%`}`.execute(s.t.db.kysely)).rows;
const orderState = async (s: Stack, payOrderId: string) => Number((await sql<{ state: number }>`SELECT state FROM pay_orders WHERE pay_order_id = ${payOrderId}`.execute(s.t.db.kysely)).rows[0].state);
const count = async (s: Stack, table: 'pay_orders' | 'pay_refunds' | 'pay_transfers' | 'pay_apps') => Number((await sql<{ n: number }>`SELECT count(*)::int4 AS n FROM ${sql.table(table)}`.execute(s.t.db.kysely)).rows[0].n);

describe('the platform with the production default (nothing private allowed)', () => {
  let stack: Stack;
  let m: MerchantClient;
  let sink: NotifySink;
  const dns = new Map<string, string>();
  before(async () => {
    sink = await notifySink();
    stack = await startStack({ outboundAllow: '', outboundResolve: async (name) => [{ address: dns.get(name) ?? '93.184.216.34', family: 4 }] });
    m = await merchant(stack, null, '出站安全物业');
  });
  after(async () => {
    await stack.close();
    await sink.close();
  });

  test('a private, loopback or metadata notifyUrl is refused at creation (400 NOTIFY_URL_FORBIDDEN, nothing written) for orders, refunds, transfers and merchants', async () => {
    const sandboxPort = new URL(stack.sandboxUrl).port;
    const urls = [`http://127.0.0.1:${sandboxPort}/v1/sim/orders/P1/pay`, `http://127.0.0.1:${new URL(stack.url).port}/v1/admin/merchants`,
      'http://169.254.169.254/latest/meta-data/', `http://2130706433:${sandboxPort}/`, `http://0x7f.0.0.1:${sandboxPort}/`, `http://0177.0.0.1:${sandboxPort}/`,
      `http://127.1:${sandboxPort}/`, `http://localhost:${sandboxPort}/`, `http://[::1]:${sandboxPort}/`, `http://[::ffff:127.0.0.1]:${sandboxPort}/`,
      'http://10.0.0.8/n', 'http://192.168.1.1/n', 'http://100.64.1.1/n', 'http://[fd00::1]/n', 'http://[fe80::1]/n', 'http://0.0.0.0/n'];
    const before = { orders: await count(stack, 'pay_orders'), refunds: await count(stack, 'pay_refunds'), transfers: await count(stack, 'pay_transfers'), apps: await count(stack, 'pay_apps') };
    for (const [i, notifyUrl] of urls.entries()) {
      const o = await m.call('/api/pay/unifiedOrder', order(`ssrf-${i}`, { notifyUrl }));
      assert.equal(o.status, 400, notifyUrl);
      assert.equal(o.body.errCode, 'NOTIFY_URL_FORBIDDEN', notifyUrl);
      assert.match(o.body.msg, /notifyUrl/);
      const r = await m.call('/api/refund/refundOrder', { mchOrderNo: 'none', mchRefundNo: `ssrf-r-${i}`, refundAmount: 1, currency: 'cny', refundReason: 'x', notifyUrl });
      assert.equal(r.body.errCode, 'NOTIFY_URL_FORBIDDEN', notifyUrl);
      const t = await m.call('/api/transferOrder', { mchOrderNo: `ssrf-t-${i}`, entryType: 'BANK_CARD', amount: 1, currency: 'cny', accountNo: '6222', transferDesc: 'x', notifyUrl });
      assert.equal(t.body.errCode, 'NOTIFY_URL_FORBIDDEN', notifyUrl);
      const admin = await fetch(`${stack.url}/v1/admin/merchants`, {
        method: 'POST', headers: { authorization: 'Bearer test-admin-token-0123456789', 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', notifyUrl }),
      });
      assert.equal(admin.status, 400, notifyUrl);
      assert.equal(((await admin.json()) as { code: string }).code, 'NOTIFY_URL_FORBIDDEN');
    }
    assert.deepEqual({ orders: await count(stack, 'pay_orders'), refunds: await count(stack, 'pay_refunds'), transfers: await count(stack, 'pay_transfers'), apps: await count(stack, 'pay_apps') }, before);
    const fine = await m.call('/api/pay/unifiedOrder', order('ssrf-public', { notifyUrl: 'https://merchant.example.com/notify' }));
    assert.equal(fine.status, 200, JSON.stringify(fine.body));
  });

  test('delivery: a name resolving to a private address is refused at connect time and the attempt recorded as failed with the reason', async () => {
    const sinkPort = new URL(sink.url).port;
    dns.set('notify.rebind.test', '127.0.0.1');
    const created = await m.call('/api/pay/unifiedOrder', order('ssrf-rebind', { notifyUrl: `http://notify.rebind.test:${sinkPort}/notify` }));
    assert.equal(created.status, 200, 'a host name passes creation');
    const payOrderId = String(created.body.data?.payOrderId);
    await stack.sandbox.pay(payOrderId);
    const [attempt] = await waitFor('a refused attempt', async () => {
      const rows = await attemptsOf(stack, payOrderId);
      return rows.length > 0 ? rows : null;
    });
    assert.equal(attempt.http_status, null);
    assert.match(String(attempt.error), /^refused: notify\.rebind\.test resolves to 127\.0\.0\.1 is loopback/);
    const [n] = await notificationOf(stack, payOrderId);
    assert.match(String(n.last_error), /refused/);
    assert.equal(sink.received.length, 0, 'the loopback sink got nothing');
  });

  test('delivery: a stored loopback URL (an app made before the check, or localhost) is refused too', async () => {
    const sinkPort = new URL(sink.url).port;
    dns.set('localhost', '127.0.0.1'); // this stack's resolver plays DNS (the client test above uses the real one)
    for (const [i, url] of [`http://127.0.0.1:${sinkPort}/notify`, `http://localhost:${sinkPort}/notify`, `http://2130706433:${sinkPort}/notify`].entries()) {
      const old = await merchant(stack, null, `旧商户${i}`);
      await sql`UPDATE pay_apps SET notify_url = ${url} WHERE app_id = ${old.appId}`.execute(stack.t.db.kysely);
      const created = await old.call('/api/pay/unifiedOrder', order(`ssrf-old-${i}`));
      const payOrderId = String(created.body.data?.payOrderId);
      await stack.sandbox.pay(payOrderId);
      const [attempt] = await waitFor('a refused attempt', async () => {
        const rows = await attemptsOf(stack, payOrderId);
        return rows.length > 0 ? rows : null;
      });
      assert.match(String(attempt.error), /^refused: .*loopback/, url);
    }
    assert.equal(sink.received.length, 0);
  });
});

describe('the demonstrated theft: a 1-fen order whose notifyUrl is the sandbox payer endpoint of a ¥500 order', () => {
  // The allow-list lets loopback through here (as a careless development setup would),
  // so the platform does POST to the sandbox: the sandbox itself must refuse.
  let stack: Stack;
  let attacker: MerchantClient;
  before(async () => {
    stack = await startStack({ outboundAllow: '127.0.0.1' });
    attacker = await merchant(stack, null, '攻击者物业');
  });
  after(() => stack.close());

  for (const target of ['sim', 'page'] as const) {
    test(`the ¥500 order stays unpaid (${target === 'sim' ? '/v1/sim/orders/:id/pay' : 'the payer page form /pay/:tradeNo/pay'})`, async () => {
      const victim = await attacker.call('/api/pay/unifiedOrder', order(`victim-${target}`, { amount: 50000 }));
      assert.equal(victim.status, 200);
      const victimId = String(victim.body.data?.payOrderId);
      const tradeNo = String(victim.body.data?.payData).split('/pay/')[1];
      const url = target === 'sim' ? `${stack.sandboxUrl}/v1/sim/orders/${victimId}/pay` : `${stack.sandboxUrl}/pay/${tradeNo}/pay`;
      const bait = await attacker.call('/api/pay/unifiedOrder', order(`bait-${target}`, { amount: 1, notifyUrl: url }));
      assert.equal(bait.status, 200, JSON.stringify(bait.body));
      const baitId = String(bait.body.data?.payOrderId);
      await stack.sandbox.pay(baitId);
      await waitFor('the bait order paid', async () => (await orderState(stack, baitId)) === 2);
      const [attempt] = await waitFor('the platform posted to the sandbox', async () => {
        const rows = await attemptsOf(stack, baitId);
        return rows.length > 0 ? rows : null;
      });
      assert.equal(attempt.http_status, target === 'sim' ? 401 : 403, 'the sandbox refused the unsigned payer action');
      await stack.sandbox.flush();
      await stack.platform.payment.poll(0);
      assert.equal(await orderState(stack, victimId), 1, 'the ¥500 order is still waiting for payment');
      assert.deepEqual(await postings(stack, victimId), [], 'no ledger posting for it');
      const view = await fetch(`${stack.sandboxUrl}/pay/${tradeNo}`);
      assert.match(await view.text(), /待支付/, 'the sandbox still says NOTPAY');
    });
  }

  test('a signed payer action (as custos sandbox pay sends) still pays; a signature for another order or action does not', async () => {
    const o = await attacker.call('/api/pay/unifiedOrder', order('signed-pay', { amount: 300 }));
    const payOrderId = String(o.body.data?.payOrderId);
    const wrongKey = await sandboxPayerAction(stack, payOrderId, 'pay', 'custos-sandbox-dev-key');
    assert.equal(wrongKey.status, 401, 'the README\'s old default key is not the sandbox\'s key');
    const { signSimAction } = await import('../src/channel/sandbox/protocol.ts');
    const { SANDBOX_KEY } = await import('./payment.harness.ts');
    const other = signSimAction(SANDBOX_KEY, 'P-some-other-order', 'pay');
    const replay = await fetch(`${stack.sandboxUrl}/v1/sim/orders/${payOrderId}/pay`, { method: 'POST', body: other.body, headers: other.headers });
    assert.equal(replay.status, 401, 'a signature for another order is refused');
    const failSig = signSimAction(SANDBOX_KEY, payOrderId, 'fail');
    const wrongAction = await fetch(`${stack.sandboxUrl}/v1/sim/orders/${payOrderId}/pay`, { method: 'POST', body: failSig.body, headers: failSig.headers });
    assert.equal(wrongAction.status, 401, 'a signature for another action is refused');
    assert.equal(await orderState(stack, payOrderId), 1);
    const paid = await sandboxPayerAction(stack, payOrderId, 'pay');
    assert.equal(paid.status, 200);
    assert.equal(paid.data.status, 'SUCCESS');
    await waitFor('paid', async () => (await orderState(stack, payOrderId)) === 2);
  });
});
