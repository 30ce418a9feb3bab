// Demo data for `npm start` on the embedded database: a demo property company with an
// app (its credentials kept in the data folder) and a fresh unpaid property-fee order
// on the H5 cashier, so there is something to pay at once.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Platform } from './server.ts';

export interface DemoInfo {
  mchNo: string;
  appId: string;
  appSecret: string;
  cashierUrl: string;
}

export async function seedDemo(platform: Platform, dataDir: string): Promise<DemoInfo> {
  const file = path.join(dataDir, 'demo-merchant.json');
  let merchant: { mchNo: string; appId: string; appSecret: string };
  try {
    merchant = JSON.parse(await readFile(file, 'utf8'));
  } catch {
    merchant = await platform.payment.merchants.createMerchant({ name: '演示物业服务有限公司 / Demo Property Co.' });
    await writeFile(file, JSON.stringify(merchant, null, 2) + '\n', { mode: 0o600 });
  }
  const month = new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 7);
  const order = await platform.payment.orders.unifiedOrder({
    mchNo: merchant.mchNo, appId: merchant.appId, mchOrderNo: `demo-${Date.now()}`, wayCode: 'QR_CASHIER', amount: 128_000n,
    currency: 'cny', subject: `${month} 物业费`, body: '阳光花园 3幢2单元501 · 建筑面积 98.50㎡ × 1.30元/㎡', clientIp: null,
    notifyUrl: null, returnUrl: null, expiredTime: 86_400, channelExtra: null, extParam: null, divisionMode: 0,
  });
  return { ...merchant, cashierUrl: order.pay_data as string };
}
