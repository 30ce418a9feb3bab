// Alert delivery on its own: the DingTalk robot format, a webhook that fails is retried
// until it answers, a slow webhook times out without holding the monitors, and each
// alert is stored once per monitor and subject.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { openTestDb, type TestDb } from './helpers.ts';
import { createAlerts } from '../src/risk/alerts.ts';
import * as repo from '../src/risk/risk.repo.ts';

let t: TestDb;
let server: Server;
let url = '';
let failNext = 0;
let hang = false;
const received: Array<Record<string, any>> = [];

before(async () => {
  t = await openTestDb();
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (hang) return; // never answers
      if (failNext > 0) {
        failNext -= 1;
        res.statusCode = 502;
        res.end('bad gateway');
        return;
      }
      received.push(JSON.parse(body));
      res.end('{"errcode":0}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/robot/send?access_token=x`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await t.close();
});

const breach = (subject: string) => ({ monitor: 'stuck_work' as const, subject, summary: `refund ${subject} overdue`, details: { id: subject } });

test('DingTalk format: markdown with title and text carrying the runbook line', async () => {
  const alerts = createAlerts({ db: t.db, webhookUrl: url, webhookFormat: 'dingtalk', webhookTimeoutMs: 5000 });
  const created = await alerts.raise([breach('refund:R1')]);
  assert.equal(created.length, 1);
  assert.equal(received.length, 1);
  assert.equal(received[0].msgtype, 'markdown');
  assert.match(received[0].markdown.title, /stuck_work/);
  assert.match(received[0].markdown.text, /处置 \/ runbook: .*pg-boss/);
  assert.equal((await alerts.raise([breach('refund:R1')])).length, 0, 'the same monitor and subject: no new alert');
  assert.equal(received.length, 1, 'and no second post');
});

test('a failing webhook leaves the alert unposted; a later retry delivers it once', async () => {
  const alerts = createAlerts({ db: t.db, webhookUrl: url, webhookFormat: 'wecom', webhookTimeoutMs: 5000 });
  failNext = 1;
  const before = received.length;
  const [row] = await alerts.raise([breach('refund:R2')]);
  assert.equal(received.length, before);
  const unposted = await repo.unpostedAlerts(t.db.kysely, 10);
  assert.deepEqual(unposted.map((a) => a.subject), ['refund:R2']);
  assert.equal(await alerts.post(unposted[0]), true);
  assert.equal(received.length, before + 1);
  assert.equal(received.at(-1)!.markdown.content.includes(`alert id: ${row.id}`), true);
  assert.deepEqual(await repo.unpostedAlerts(t.db.kysely, 10), []);
});

test('a webhook that never answers times out; the alert is still stored', async () => {
  const alerts = createAlerts({ db: t.db, webhookUrl: url, webhookFormat: 'wecom', webhookTimeoutMs: 300 });
  hang = true;
  try {
    const [row] = await alerts.raise([breach('refund:R3')]);
    assert.equal(row.posted_at, null);
    assert.ok((await repo.unpostedAlerts(t.db.kysely, 10)).some((a) => a.subject === 'refund:R3'));
  } finally {
    hang = false;
  }
});
