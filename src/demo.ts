// Demo data for `npm start` on the embedded database: a demo property company with an
// app (its credentials kept in the data folder) and a fresh unpaid property-fee order
// on the H5 cashier, so there is something to pay at once.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Platform } from './server.ts';
import { parseCsv, validateTable } from './fund/register/import.ts';
import { findEstatesByNames } from './fund/register/register.repo.ts';

export interface DemoInfo {
  mchNo: string;
  appId: string;
  appSecret: string;
  cashierUrl: string;
  /** The maintenance fund's owner H5 page and how to sign in to a demo house. */
  fundH5Url: string;
  fundLogin: string;
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
  const fund = await seedFundDemo(platform);
  return { ...merchant, cashierUrl: order.pay_data as string, ...fund };
}

const FUND_CITY = '330100';
const FUND_ESTATE = '阳光花园（演示）';
const FUND_REGISTER = `小区,地址,区县,物业公司,幢,建筑类型,层数,单元,室号,建筑面积,用途,产权证号,业主,电话,已售
${[
    ['1', '高层电梯', '18', '1', '101', '98.50', '浙(2026)杭州市不动产权第0000101号', '陈静', '13800000001', '是'],
    ['1', '高层电梯', '18', '1', '102', '120.00', '浙(2026)杭州市不动产权第0000102号', '周强', '13800000002', '是'],
    ['1', '高层电梯', '18', '2', '201', '88.05', '', '', '', '否'],
    ['2', '多层', '6', '1', '101', '75.30', '浙(2026)杭州市不动产权第0000201号', '王芳', '13800000003', '是'],
    ['2', '多层', '6', '1', '102', '80.00', '', '', '', '否'],
  ].map((r) => [FUND_ESTATE, '杭州市西湖区文三路100号', '西湖区', '演示物业服务有限公司', r[0], r[1], r[2], r[3], r[4], r[5], '住宅', r[6], r[7], r[8], r[9]].join(',')).join('\n')}
`;

/** A demo estate with first-deposit bills that can be paid from the owners' H5 page. */
async function seedFundDemo(platform: Platform): Promise<{ fundH5Url: string; fundLogin: string }> {
  const { register, deposits } = platform.fund;
  await register.setCity({ city: FUND_CITY, name: '杭州市（演示）', topUpRatioBp: 3000 }, 'demo');
  await register.setStandard({ city: FUND_CITY, buildingType: 'high_rise_lift', method: 'area', fenPerM2: 9000n }, 'demo');
  await register.setStandard({ city: FUND_CITY, buildingType: 'multi_storey', method: 'area', fenPerM2: 5000n }, 'demo');
  let [estate] = await findEstatesByNames(platform.db.kysely, FUND_CITY, [FUND_ESTATE]);
  if (!estate) {
    const parsed = validateTable(parseCsv(FUND_REGISTER));
    if (!parsed.ok) throw new Error(`demo register invalid: ${JSON.stringify(parsed.rejected)}`);
    await register.importRows(FUND_CITY, parsed.rows, 'demo');
    [estate] = await findEstatesByNames(platform.db.kysely, FUND_CITY, [FUND_ESTATE]);
  }
  await deposits.generateFirstBills({ estateId: estate.id }, 'demo');
  const base = `${platform.fund.publicUrl}/h5/fund`;
  return {
    fundH5Url: `${base}/search?q=${encodeURIComponent('阳光花园（演示）1幢1单元101')}`,
    fundLogin: '产权证号 浙(2026)杭州市不动产权第0000101号，业主 陈静',
  };
}
