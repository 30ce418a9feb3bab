// Shared set-up for the maintenance-fund tests: the whole stack (platform + sandbox
// channel), a city with deposit standards, a register imported from CSV, and a small
// JSON client for the fund's API.
import { startStack, ADMIN_TOKEN, type Stack } from './payment.harness.ts';

export { ADMIN_TOKEN };

export interface Api {
  (method: string, path: string, body?: unknown, token?: string | null): Promise<{ status: number; body: any }>;
}

export function apiOf(stack: Stack): Api {
  return async (method, path, body, token = ADMIN_TOKEN) => {
    const res = await fetch(stack.url + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON (xlsx, pdf, html)
    }
    return { status: res.status, body: parsed };
  };
}

export const HEADER = '小区,地址,区县,物业公司,幢,建筑类型,层数,单元,室号,建筑面积,用途,房价,产权证号,业主,身份证号,电话,已售';

/** A CSV row; fields in HEADER order. */
export const csvRow = (r: Partial<Record<'estate' | 'address' | 'building' | 'type' | 'floors' | 'stair' | 'room' | 'area' | 'use' | 'price' | 'cert' | 'owner' | 'idNo' | 'phone' | 'sold', string>>) =>
  [r.estate ?? '阳光花园', r.address ?? '杭州市西湖区文三路100号', '西湖区', '阳光物业', r.building ?? '1', r.type ?? '高层电梯', r.floors ?? '18', r.stair ?? '1',
    r.room ?? '101', r.area ?? '98.50', r.use ?? '住宅', r.price ?? '', r.cert ?? '', r.owner ?? '', r.idNo ?? '', r.phone ?? '', r.sold ?? '否'].join(',');

export async function setUpCity(api: Api, city = 'hz'): Promise<void> {
  const c = await api('PUT', `/v1/fund/cities/${city}`, { name: '杭州市', topUpRatioBp: 3000 });
  if (c.status !== 200) throw new Error(`city: ${JSON.stringify(c.body)}`);
  for (const [type, body] of [['high_rise_lift', { method: 'area', fenPerM2: 9000 }], ['multi_storey', { method: 'area', fenPerM2: 5000 }], ['villa', { method: 'price', rate: '0.02' }]] as const) {
    const s = await api('PUT', `/v1/fund/cities/${city}/standards/${type}`, body);
    if (s.status !== 200) throw new Error(`standard: ${JSON.stringify(s.body)}`);
  }
}

export async function importCsv(api: Api, rows: string[], city = 'hz') {
  return api('POST', '/v1/fund/imports', { city, format: 'csv', contentBase64: Buffer.from([HEADER, ...rows].join('\n') + '\n').toString('base64') });
}

export async function fundStack(): Promise<{ stack: Stack; api: Api }> {
  const stack = await startStack();
  const api = apiOf(stack);
  await setUpCity(api);
  return { stack, api };
}
