// The property register (楼盘表): imports from CSV and Excel with row-level validation
// (a report of rejected rows, and nothing imported when any row is rejected), edits
// through the admin API with optimistic versions, per-city configuration, and the
// exact parsers behind them (property-based).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import ExcelJS from 'exceljs';
import { sql } from 'kysely';
import type { Stack } from './payment.harness.ts';
import { fundStack, importCsv, csvRow, HEADER, type Api } from './fund.deposit.harness.ts';
import { parseCsv, validateTable } from '../src/fund/register/import.ts';
import { formatAreaM2, parseAreaM2e2 } from '../src/fund/register/model.ts';

let stack: Stack;
let api: Api;

before(async () => {
  ({ stack, api } = await fundStack());
});
after(async () => {
  await stack.close();
});

const counts = async () => (await sql<{ e: bigint; b: bigint; u: bigint }>`SELECT (SELECT count(*) FROM register_estates)::int8 AS e,
  (SELECT count(*) FROM register_buildings)::int8 AS b, (SELECT count(*) FROM register_units)::int8 AS u`.execute(stack.t.db.kysely)).rows[0];

const GOOD = [
  csvRow({ building: '1', room: '101', area: '98.50', cert: '浙(2025)杭州市不动产权第0000101号', owner: '张三', idNo: '330106198001010011', phone: '13800000001', sold: '是' }),
  csvRow({ building: '1', room: '102', area: '120', cert: '浙(2025)杭州市不动产权第0000102号', owner: '李四、王五', idNo: '330106198001010022;33010619800101003X', sold: '是' }),
  csvRow({ building: '1', room: '201', area: '88.05' }),
  csvRow({ building: '2', type: '多层', floors: '6', room: '101', area: '75.3' }),
];

test('an import with bad rows is rejected row by row and imports nothing', async () => {
  const before = await counts();
  const res = await importCsv(api, [
    GOOD[0],
    csvRow({ room: '102', area: '0' }), // row 3: area not > 0
    csvRow({ room: '103', type: '摩天楼' }), // row 4: unknown building type
    csvRow({ room: '101', area: '60' }), // row 5: same unit as row 2
    csvRow({ room: '104', owner: '赵六', idNo: '12345', sold: '是' }), // row 6: bad id number
    csvRow({ estate: '', room: '105' }), // row 7: estate missing
    csvRow({ room: '106', sold: '是' }), // row 8: sold without owner
    csvRow({ room: '107', area: '98.505' }), // row 9: three decimals
  ]);
  assert.equal(res.status, 422, JSON.stringify(res.body));
  assert.equal(res.body.code, 'FUND_IMPORT_REJECTED');
  const rejected = res.body.details.rejected as Array<{ row: number; column: string; reason: string }>;
  const rows = [...new Set(rejected.map((r) => r.row))].sort((a, b) => a - b);
  assert.deepEqual(rows, [3, 4, 5, 6, 7, 8, 9]);
  assert.ok(rejected.find((r) => r.row === 3 && r.column === '建筑面积'));
  assert.ok(rejected.find((r) => r.row === 4 && r.column === '建筑类型'));
  assert.ok(rejected.find((r) => r.row === 5 && /第 2 行/.test(r.reason)));
  assert.ok(rejected.find((r) => r.row === 6 && r.column === '证件号'));
  for (const r of rejected) assert.match(r.reason, / \/ [A-Za-z]/, 'each reason has Chinese and English');
  assert.deepEqual(await counts(), before, 'nothing imported, not even the good row');
});

test('a file without a required column is rejected at row 1', async () => {
  const csv = '小区,地址,幢\n阳光花园,某路1号,1\n';
  const res = await api('POST', '/v1/fund/imports', { city: 'hz', format: 'csv', contentBase64: Buffer.from(csv).toString('base64') });
  assert.equal(res.status, 422);
  assert.ok(res.body.details.rejected.every((r: { row: number }) => r.row === 1));
  assert.ok(res.body.details.rejected.some((r: { column: string }) => r.column === '建筑面积'));
});

test('a good CSV import creates the estate, buildings and units; importing it again is rejected and adds nothing', async () => {
  const res = await importCsv(api, GOOD);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body.imported, { estates: 1, buildings: 2, units: 4 });
  const units = (await api('GET', '/v1/fund/units')).body.units as Array<Record<string, any>>;
  const u102 = units.find((u) => u.building === '1' && u.roomNo === '102');
  assert.equal(u102?.areaM2e2, '12000');
  assert.deepEqual(u102?.owners.map((o: { name: string }) => o.name), ['李四', '王五']);
  assert.equal(units.find((u) => u.roomNo === '201')?.areaM2e2, '8805');
  assert.equal(units.find((u) => u.building === '2')?.buildingType, 'multi_storey');
  const before = await counts();
  const again = await importCsv(api, GOOD);
  assert.equal(again.status, 422);
  const againRows = again.body.details.rejected as Array<{ row: number; column: string }>;
  assert.deepEqual([...new Set(againRows.filter((r) => r.column === '室号').map((r) => r.row))], [2, 3, 4, 5], 'every unit is already registered');
  assert.deepEqual(againRows.filter((r) => r.column === '产权证号').map((r) => r.row), [2, 3], 'and the certificates are taken');
  assert.deepEqual(await counts(), before);
});

test('an Excel import works the same, and a bad Excel row imports nothing', async () => {
  const workbook = async (rows: string[][]) => {
    const wb = new ExcelJS.Workbook();
    const ws = wb.addWorksheet('楼盘表');
    ws.addRow(HEADER.split(','));
    for (const r of rows) ws.addRow(r.map((c, i) => (i === 9 && /^\d+(\.\d+)?$/.test(c) ? Number(c) : c)));
    return Buffer.from(await wb.xlsx.writeBuffer());
  };
  const rows = [csvRow({ estate: '翠苑小区', address: '杭州市西湖区翠苑路1号', building: 'A', room: '301', area: '100.25' }).split(','),
    csvRow({ estate: '翠苑小区', address: '杭州市西湖区翠苑路1号', building: 'A', room: '302', area: '64' }).split(',')];
  const before = await counts();
  const bad = await api('POST', '/v1/fund/imports', { city: 'hz', format: 'xlsx', contentBase64: (await workbook([...rows, csvRow({ estate: '翠苑小区', address: '杭州市西湖区翠苑路1号', building: 'A', room: '303', floors: '999' }).split(',')])).toString('base64') });
  assert.equal(bad.status, 422);
  assert.deepEqual(bad.body.details.rejected.map((r: { row: number; column: string }) => [r.row, r.column]), [[4, '层数']]);
  assert.deepEqual(await counts(), before);
  const good = await api('POST', '/v1/fund/imports', { city: 'hz', format: 'xlsx', contentBase64: (await workbook(rows)).toString('base64') });
  assert.equal(good.status, 200, JSON.stringify(good.body));
  assert.deepEqual(good.body.imported, { estates: 1, buildings: 1, units: 2 });
  const units = (await api('GET', '/v1/fund/units')).body.units as Array<Record<string, any>>;
  assert.equal(units.find((u) => u.roomNo === '301')?.areaM2e2, '10025');
});

test('bad import requests are 4xx with stable codes and change nothing', async () => {
  const before = await counts();
  const cases: Array<[unknown, number, string]> = [
    [{ city: 'nowhere', format: 'csv', contentBase64: Buffer.from(HEADER).toString('base64') }, 400, 'FUND_CITY_UNKNOWN'],
    [{ city: 'hz', format: 'xlsx', contentBase64: Buffer.from('not a zip').toString('base64') }, 400, 'FUND_IMPORT_UNREADABLE'],
    [{ city: 'hz', format: 'csv', contentBase64: '' }, 400, 'FUND_IMPORT_EMPTY'],
    [{ city: 'hz', format: 'pdf', contentBase64: 'AA==' }, 400, 'FUND_PARAM_INVALID'],
    [{ city: 'hz', format: 'csv', contentBase64: Buffer.from(`${HEADER}\n"unclosed`).toString('base64') }, 400, 'FUND_IMPORT_UNREADABLE'],
  ];
  for (const [body, status, code] of cases) {
    const res = await api('POST', '/v1/fund/imports', body);
    assert.equal(res.status, status, JSON.stringify(res.body));
    assert.equal(res.body.code, code);
  }
  assert.equal((await api('POST', '/v1/fund/imports', { city: 'hz', format: 'csv', contentBase64: '' }, null)).status, 401);
  assert.deepEqual(await counts(), before);
});

test('units are edited with their version; a stale version is a conflict; owners change only by transfer', async () => {
  const units = (await api('GET', '/v1/fund/units')).body.units as Array<Record<string, any>>;
  const u = units.find((x) => x.roomNo === '201') as Record<string, any>;
  const ok = await api('PATCH', `/v1/fund/units/${u.id}`, { version: u.version, areaM2: '88.10', sold: true });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.areaM2e2, '8810');
  assert.equal(ok.body.version, u.version + 1);
  const stale = await api('PATCH', `/v1/fund/units/${u.id}`, { version: u.version, areaM2: '90' });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.code, 'FUND_VERSION_CONFLICT');
  for (const [body, code] of [[{ version: ok.body.version, areaM2: 88.1 }, 'FUND_PARAM_INVALID'], [{ areaM2: '1' }, 'FUND_PARAM_INVALID'],
    [{ version: ok.body.version, owners: [] }, 'FUND_PARAM_INVALID'], [{ version: ok.body.version, use: 'castle' }, 'FUND_PARAM_INVALID']] as const) {
    const res = await api('PATCH', `/v1/fund/units/${u.id}`, body);
    assert.equal(res.status, 400);
    assert.equal(res.body.code, code);
  }
  assert.equal((await api('PATCH', '/v1/fund/units/u_missing', { version: 1 })).body.code, 'FUND_UNIT_NOT_FOUND');
  const audit = await sql<{ action: string }>`SELECT action FROM fund_audit WHERE target = ${'unit:' + u.id}`.execute(stack.t.db.kysely);
  assert.deepEqual(audit.rows.map((r) => r.action), ['unit.edit']);
});

test('units are added through the admin API as JSON with the same checks, all or nothing', async () => {
  const unit = { estate: '阳光花园', address: '杭州市西湖区文三路100号', building: '1', building_type: 'high_rise_lift', floors: 18, stair: '1', room_no: '401', area_m2: '91.20', use: 'residential' };
  const before = await counts();
  const bad = await api('POST', '/v1/fund/units', { city: 'hz', units: [unit, { ...unit, room_no: '402', area_m2: '91.234' }] });
  assert.equal(bad.status, 422);
  assert.deepEqual(bad.body.details.rejected.map((r: { row: number }) => r.row), [3]);
  assert.deepEqual(await counts(), before);
  const ok = await api('POST', '/v1/fund/units', { city: 'hz', units: [unit] });
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  assert.deepEqual(ok.body.imported, { estates: 0, buildings: 0, units: 1 }, 'joins the existing estate and building');
  const created = (await api('GET', `/v1/fund/units/${ok.body.unitIds[0]}`)).body;
  assert.equal(created.areaM2e2, '9120');
  assert.equal((await api('POST', '/v1/fund/units', { city: 'hz', units: 'x' })).body.code, 'FUND_PARAM_INVALID');
});

test('per-city standards and threshold are validated', async () => {
  const bad: Array<[string, unknown]> = [
    ['/v1/fund/cities/hz/standards/high_rise_lift', { method: 'area', fenPerM2: -1 }],
    ['/v1/fund/cities/hz/standards/high_rise_lift', { method: 'area', fenPerM2: 1.5 }],
    ['/v1/fund/cities/hz/standards/villa', { method: 'price', rate: '0.5' }],
    ['/v1/fund/cities/hz/standards/villa', { method: 'price', rate: '0' }],
    ['/v1/fund/cities/hz/standards/castle', { method: 'area', fenPerM2: 100 }],
    ['/v1/fund/cities/hz', { name: '杭州市', topUpRatioBp: 0 }],
    ['/v1/fund/cities/bad city', { name: 'x' }],
  ];
  for (const [path, body] of bad) {
    const res = await api('PUT', path, body);
    assert.equal(res.status, 400, `${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.code, /^FUND_/);
  }
  const city = await api('GET', '/v1/fund/cities/hz');
  assert.equal(city.body.top_up_ratio_bp, 3000);
  assert.deepEqual(city.body.standards.map((s: { building_type: string; fen_per_m2: string | null; rate: string | null }) => [s.building_type, s.fen_per_m2, s.rate]),
    [['high_rise_lift', '9000', null], ['multi_storey', '5000', null], ['villa', null, '0.02']]);
});

test('areas parse exactly and print back (property)', () => {
  fc.assert(fc.property(fc.bigInt({ min: 1n, max: 10_000_000n }), (areaM2e2) => {
    assert.equal(parseAreaM2e2(formatAreaM2(areaM2e2)), areaM2e2);
  }));
  for (const bad of ['0', '0.00', '-1', '1.234', '1e3', '', ' ', '100000.01', 'abc']) assert.equal(parseAreaM2e2(bad), null, bad);
});

test('CSV fields survive quoting; validation is all-or-nothing (property)', () => {
  const field = fc.string({ maxLength: 12 }).filter((s) => !/[\r\n]/.test(s) || true);
  fc.assert(fc.property(fc.array(fc.array(field, { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 5 }), (table) => {
    const text = table.map((r) => r.map((c) => `"${c.replace(/"/g, '""')}"`).join(',')).join('\r\n') + '\r\n';
    assert.deepEqual(parseCsv(text), table);
  }));
  fc.assert(fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 30 }), (goodness) => {
    const rows = goodness.map((good, i) => csvRow({ room: String(1000 + i), area: good ? '50.5' : 'x' }).split(','));
    const result = validateTable([HEADER.split(','), ...rows]);
    assert.equal(result.ok, goodness.every(Boolean));
    if (!result.ok) assert.deepEqual(result.rejected.map((r) => r.row), goodness.flatMap((g, i) => (g ? [] : [i + 2])));
  }));
});

test('custos fund import: a rejected-rows report and exit 1, then a good file and exit 0 (embedded database)', async () => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const dir = mkdtempSync(path.join(tmpdir(), 'custos-fund-cli-'));
  const root = path.resolve(import.meta.dirname, '..');
  const custos = (args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/custos.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', CUSTOS_DATA_DIR: path.join(dir, 'data'), LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 120_000,
  });
  try {
    assert.equal(custos(['fund', 'city', '--city', '330100', '--name', '杭州市']).status, 0);
    writeFileSync(path.join(dir, 'bad.csv'), [HEADER, csvRow({ room: '101' }), csvRow({ room: '102', area: '-3' })].join('\n'));
    const bad = custos(['fund', 'import', '--file', path.join(dir, 'bad.csv'), '--city', '330100']);
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(bad.stdout, /第 3 行 \/ row 3 \[建筑面积\]/);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
    const badJson = custos(['fund', 'import', '--file', path.join(dir, 'bad.csv'), '--city', '330100', '--json']);
    assert.equal(badJson.status, 1);
    assert.equal(JSON.parse(badJson.stdout).details.rejected[0].row, 3);
    writeFileSync(path.join(dir, 'good.csv'), [HEADER, csvRow({ room: '101' })].join('\n'));
    const good = custos(['fund', 'import', '--file', path.join(dir, 'good.csv'), '--city', '330100', '--json']);
    assert.equal(good.status, 0, good.stderr);
    assert.deepEqual(JSON.parse(good.stdout).imported, { estates: 1, buildings: 1, units: 1 });
    const missing = custos(['fund', 'import', '--city', '330100']);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /--file is required/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
