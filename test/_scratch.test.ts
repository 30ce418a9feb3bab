import { test } from 'node:test';
import { startStack, merchant, order, waitFor } from './payment.harness.ts';

test('scratch', async () => {
  const stack = await startStack();
  const m = await merchant(stack, null, 'x');
  const created = await m.call('/api/pay/unifiedOrder', order('f1', { amount: 10000 }));
  const payOrderId = String(created.body.data?.payOrderId);
  await stack.sandbox.pay(payOrderId);
  await waitFor('paid', async () => (await m.call('/api/pay/query', { payOrderId })).body.data?.state === 2);
  const errs: unknown[] = [];
  const res = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => stack.platform.payment.transfers.create({
    mchNo: m.mchNo, appId: m.appId, mchOrderNo: `o-${i}`, ifCode: null, entryType: 'BANK_CARD', amount: 100n, currency: 'cny',
    accountNo: '1', accountName: null, bankName: null, clientIp: null, transferDesc: 'x', notifyUrl: null, channelExtra: null, extParam: null,
  })));
  const summary: Record<string, number> = {};
  for (const r of res) {
    const k = r.status === 'fulfilled' ? 'ok' : `${(r.reason as any).code} ${(r.reason as any).message}`.slice(0, 300);
    summary[k] = (summary[k] ?? 0) + 1;
    if (r.status === 'rejected' && (r.reason as any).code !== 'BALANCE_INSUFFICIENT' && errs.length < 2) errs.push(r.reason);
  }
  console.log(summary);
  for (const e of errs) console.log(e);
  await stack.close();
});
