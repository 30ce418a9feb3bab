// custos — the one command line entry: serve, migrate, ledger verify, bench.
// Errors end with a non-zero exit and one clear line on stderr.
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from './platform/config.ts';
import { openDatabase } from './platform/db.ts';
import { migrate } from './platform/migrate.ts';
import { systemClock } from './platform/clock.ts';
import { createLedger } from './ledger/index.ts';
import { AppError } from './platform/errors.ts';
import { assertNoServer, claimDataDir, DataDirBusy, runningServer } from './platform/instance.ts';
import { adminTokenBanner } from './platform/admin-token.ts';

const USAGE = `custos — 资金监管支付清结算平台 / Custos

用法 / usage:
  custos serve                      启动平台 / run the platform (HTTP on PORT, default 8080)
  custos migrate                    执行数据库迁移 / apply database migrations
  custos ledger verify [--json]     总账校验 / check the ledger's invariants (exit 1 if unbalanced)
  custos merchant create --name NAME [--notify-url URL] [--json]
                                    开通商户 / create a merchant and its app (prints mchNo, appId, appSecret)
  custos notify resend ID           重发商户通知 / resend a notification to a merchant
  custos settle run --date YYYY-MM-DD [--no-pay] [--json]
                                    结算 / build the settlement batch of a date and send its payouts
  custos sandbox                    只运行沙箱渠道 / run the sandbox channel alone (CUSTOS_SANDBOX_PORT)
  custos sandbox pay|fail|cancel PAY_ORDER_ID
                                    模拟付款人 / act as the payer in the sandbox
  custos fund import --file PATH --city CODE [--json]
                                    导入楼盘表 xlsx/csv（有错行则全部不导入，退出码 1）/ import a property register
  custos fund city --city CODE --name NAME [--top-up-bp 3000]
                                    城市维修资金参数 / a city's configuration (top-up threshold in basis points)
  custos fund standard --city CODE --type BUILDING_TYPE (--fen-per-m2 N | --rate R)
                                    交存标准 / a deposit standard (area × fen/㎡ or price × rate)
  custos fund bills --estate ID     生成首期缴款通知书 / generate first-deposit bills for an estate
  custos fund counter --bill ID --bank-ref REF --amount-fen N [--transfer]
                                    录入柜台/转账缴款（按流水号幂等）/ enter a bank counter payment
  custos fund report daily|estate|building|unit [ID|--date YYYY-MM-DD] --out FILE.xlsx
                                    导出报表 / write a report as Excel
  custos fund interest --city CODE --period YYYY-Qn --amount-yuan X [--json]
                                    维修资金结息并按积数分摊 / record a period's interest and allocate it to households
  custos recon run --channel wechat|alipay|unionpay|sandbox --date YYYY-MM-DD [--file PATH] [--json]
                                    对账 / reconcile a channel's bill date (progress on stderr, summary table)
  custos recon mistakes [--batch ID] [--state open] [--json]
                                    对账差错 / reconciliation mistakes
  custos recon resolve ID --side channel|platform --reason "…"
                                    处理差错 / resolve a mistake (audited; money-moving sides post to the ledger)
  custos bench ledger|api|settle|recon [--quick] [--db postgres|pglite|both]
  custos help

Configuration is read from the environment: see docs/configuration.md.`;

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof DataDirBusy) {
      process.stderr.write(`custos: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(`custos: ${(error as Error).message}\n`);
    return 1;
  }
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve();
    case 'migrate':
      return migrateCommand();
    case 'ledger':
      return ledgerCommand(rest);
    case 'bench':
      return benchCommand(rest);
    case 'merchant':
      return merchantCommand(rest);
    case 'notify':
      return notifyCommand(rest);
    case 'settle':
      return settleCommand(rest);
    case 'sandbox':
      return sandboxCommand(rest);
    case 'fund':
      return fundCommand(rest);
    case 'recon':
      return (await import('./recon/recon.cli.ts')).reconCommand(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n');
      return 0;
    default:
      throw new UsageError(`unknown command "${command}"; run "custos help"`);
  }
}

async function serve(): Promise<number> {
  const loaded = loadConfig();
  const { createPlatform } = await import('./server.ts');
  // One key for the platform's sandbox adapter and the embedded sandbox (generated in memory too).
  const { resolveSandboxKey } = await import('./platform/sandbox-key.ts');
  const config = loaded.sandboxEnabled ? { ...loaded, sandboxKey: (await resolveSandboxKey(loaded)).key } : loaded;
  const release = claimDataDir(config.databaseUrl ? null : config.dataDir, `http://${config.host}:${config.port}`);
  const sandbox = config.sandboxEmbedded ? await startSandbox(config, config.sandboxKey as string) : null;
  const demoOn = config.demo && config.dataDir !== null && config.databaseUrl === null;
  const platform = await createPlatform(config, demoOn ? { smsEcho: (line) => process.stdout.write(`${line}\n`) } : {});
  const stop = await platform.startBackground();
  const address = await platform.app.listen({ port: config.port, host: config.host });
  const demo = config.demo && config.dataDir && !config.databaseUrl ? await (await import('./demo.ts')).seedDemo(platform, config.dataDir) : null;
  const where = config.databaseUrl ? 'PostgreSQL' : config.dataDir ? `PGlite (${config.dataDir})` : 'PGlite (memory)';
  process.stdout.write(
    [
      `Custos 已启动 / Custos is running at ${address}`,
      `  数据库 / database: ${where}`,
      `  接口文档 / API docs: ${address}/docs`,
      `  健康检查 / health: ${address}/healthz    指标 / metrics: ${address}/metrics (Bearer CUSTOS_METRICS_TOKEN or the admin token)`,
      ...sandboxBanner(config, sandbox?.url ?? null),
      ...adminTokenBanner({ token: platform.adminToken, file: platform.adminTokenFile, generated: platform.adminTokenGenerated, isTTY: process.stdout.isTTY === true, address }),
      ...(demo ? [
        `  演示商户 / demo merchant: mchNo ${demo.mchNo}, appId ${demo.appId}, appSecret ${demo.appSecret}`,
        `  演示订单，手机打开即可支付 / a demo property-fee order to pay: ${demo.cashierUrl}`,
        `  维修资金缴费（业主 H5）/ maintenance-fund bills to pay: ${demo.fundH5Url}`,
        `    登录演示房屋 / sign in to the demo house with: ${demo.fundLogin}（短信验证码打印在本终端 / the SMS code is printed here）`,
      ] : []),
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    const shutdown = () => resolve();
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });
  // Graceful shutdown (docs/operations.md): pollers stop, requests in flight and group
  // commits finish, job workers stop, the pool closes — bounded by CUSTOS_SHUTDOWN_TIMEOUT_S.
  platform.app.log.warn('shutting down: no new requests; finishing work in flight');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), config.shutdownTimeoutS * 1000); });
  const outcome = await Promise.race([(async () => {
    await stop();
    await platform.close();
    await sandbox?.close();
    return 'done' as const;
  })(), timedOut]);
  clearTimeout(timer);
  release();
  if (outcome === 'timeout') {
    process.stderr.write(`关闭超时 / shutdown did not finish within ${config.shutdownTimeoutS} s (CUSTOS_SHUTDOWN_TIMEOUT_S)\n`);
    return 1;
  }
  return 0;
}

/** The banner says plainly whether the sandbox channel (where anyone can pay) is on. */
function sandboxBanner(config: ReturnType<typeof loadConfig>, embeddedUrl: string | null): string[] {
  if (!config.sandboxEnabled) return ['  沙箱渠道：关闭 / sandbox channel: OFF (CUSTOS_SANDBOX=on to enable it for testing)'];
  const where = embeddedUrl ? `${embeddedUrl} (payer pages, statements, faults)` : `${config.sandboxUrl} (external: run "custos sandbox")`;
  const lines = [`  沙箱渠道：开启（仅供测试，任何人都能在其页面付款）/ sandbox channel: ON (testing only: anyone can pay its orders): ${where}`];
  if (config.databaseUrl) lines.push('  警告 / WARNING: the sandbox channel is on with DATABASE_URL; never in production (CUSTOS_SANDBOX=off)');
  return lines;
}

async function startSandbox(config: ReturnType<typeof loadConfig>, key: string) {
  const { createSandbox } = await import('./channel/sandbox/server.ts');
  const path = await import('node:path');
  const { mkdir } = await import('node:fs/promises');
  let stateFile: string | null = null;
  if (config.dataDir) {
    await mkdir(config.dataDir, { recursive: true });
    stateFile = path.join(config.dataDir, 'sandbox-state.json');
  }
  const sandbox = createSandbox({ key, stateFile, publicUrl: config.sandboxUrl, logLevel: config.logLevel === 'silent' ? 'silent' : 'warn' });
  const url = await sandbox.app.listen({ port: config.sandboxPort, host: config.host });
  return { url, close: () => sandbox.app.close() };
}

function parse<T extends Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

async function merchantCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'create') throw new UsageError(`unknown merchant command "${sub ?? ''}"; try "custos merchant create --name NAME"`);
  const { values } = parse(rest, { name: { type: 'string' }, 'notify-url': { type: 'string' }, json: { type: 'boolean', default: false } });
  if (!values.name) throw new UsageError('--name is required, e.g. custos merchant create --name "某某物业公司"');
  const config = loadConfig();
  const server = config.databaseUrl ? null : runningServer(config.dataDir);
  if (server) {
    const created = (await adminCall(config, server.url, 'POST', '/v1/admin/merchants', { name: values.name, ...(values['notify-url'] ? { notifyUrl: values['notify-url'] } : {}) })) as { mchNo: string; appId: string; appSecret: string };
    printMerchant(created, values.json as boolean);
    return 0;
  }
  const { createSecretBox, resolveMasterKey } = await import('./platform/secrets.ts');
  const { createMerchantService } = await import('./payment/merchant.service.ts');
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    await migrate(db);
    const box = createSecretBox(await resolveMasterKey(config));
    const { createOutbound } = await import('./platform/outbound.ts');
    const created = await createMerchantService({ db, box, outbound: createOutbound({ allow: config.outboundAllow }) }).createMerchant({ name: values.name as string, notifyUrl: (values['notify-url'] as string | undefined) ?? null });
    printMerchant(created, values.json as boolean);
    return 0;
  } catch (error) {
    if (error instanceof AppError) throw new UsageError(error.message);
    throw error;
  } finally {
    await db.close();
  }
}

function printMerchant(created: { mchNo: string; appId: string; appSecret: string }, json: boolean) {
  if (json) process.stdout.write(JSON.stringify({ mchNo: created.mchNo, appId: created.appId, appSecret: created.appSecret }) + '\n');
  else process.stdout.write(`商户已开通 / merchant created\n  mchNo:     ${created.mchNo}\n  appId:     ${created.appId}\n  appSecret: ${created.appSecret}\n`);
}

async function notifyCommand(argv: string[]): Promise<number> {
  const [sub, id] = argv;
  if (sub !== 'resend' || !id || !/^[0-9]{1,18}$/.test(id)) throw new UsageError('usage: custos notify resend NOTIFICATION_ID (a number)');
  const config = loadConfig();
  const server = config.databaseUrl ? null : runningServer(config.dataDir);
  if (server) {
    await adminCall(config, server.url, 'POST', `/v1/admin/notifications/${id}/resend`);
    process.stdout.write(`通知 ${id} 已重新排队 / notification ${id} queued for delivery\n`);
    return 0;
  }
  const { createPlatform } = await import('./server.ts');
  const platform = await createPlatform({ ...config, logLevel: 'silent' });
  try {
    await platform.payment.notify.resend(BigInt(id));
    await platform.payment.notify.deliver(BigInt(id));
    const { findNotification } = await import('./payment/payment.repo.ts');
    const n = await findNotification(platform.db.kysely, BigInt(id));
    const state = ['pending (will retry)', 'delivered', 'failed'][n?.state ?? 0];
    process.stdout.write(`通知 ${id} / notification ${id}: ${state}${n?.last_error ? ` — ${n.last_error}` : ''}\n`);
    return n?.state === 1 ? 0 : 1;
  } catch (error) {
    if (error instanceof AppError) throw new UsageError(error.message);
    throw error;
  } finally {
    await platform.close();
  }
}

async function settleCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'run') throw new UsageError(`unknown settle command "${sub ?? ''}"; try "custos settle run --date YYYY-MM-DD"`);
  const { values } = parse(rest, { date: { type: 'string' }, 'no-pay': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } });
  if (!values.date) throw new UsageError('--date is required, e.g. custos settle run --date 2026-11-23');
  const config = loadConfig();
  const server = config.databaseUrl ? null : runningServer(config.dataDir);
  let result: Record<string, unknown>;
  if (server) {
    result = (await adminCall(config, server.url, 'POST', '/v1/admin/settlement/runs', { date: values.date, pay: !values['no-pay'] })) as Record<string, unknown>;
  } else {
    const { createPlatform } = await import('./server.ts');
    const platform = await createPlatform({ ...config, logLevel: 'silent' });
    try {
      const date = values.date as string;
      const r = values['no-pay'] ? await platform.settlement.run(date) : await platform.settlement.runAndPay(date);
      result = JSON.parse(JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
    } catch (error) {
      if (error instanceof AppError) throw new UsageError(error.message);
      throw error;
    } finally {
      await platform.close();
    }
  }
  if (values.json) process.stdout.write(JSON.stringify(result) + '\n');
  else {
    const p = result.payouts as { sent: number; failed: number; unavailable: number } | null;
    process.stdout.write(`结算批次 / batch ${result.batchId} (${result.settleDate}): ${result.settlements} settlements, net ${result.netFen} fen` +
      `${p ? `; payouts sent ${p.sent}, failed ${p.failed}, channel unavailable ${p.unavailable}` : ''}\n`);
  }
  return 0;
}

async function sandboxCommand(argv: string[]): Promise<number> {
  const [action, id] = argv;
  const config = loadConfig();
  if (config.sandboxKey === null && config.dataDir === null) {
    throw new ConfigError('the sandbox and the platform must share a key: set CUSTOS_SANDBOX_KEY (or use a data folder, CUSTOS_DATA_DIR, where one is generated)');
  }
  const { resolveSandboxKey } = await import('./platform/sandbox-key.ts');
  const { key } = await resolveSandboxKey(config);
  if (action === undefined) {
    const sandbox = await startSandbox(config, key);
    process.stdout.write(`沙箱渠道已启动 / sandbox channel running at ${sandbox.url}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await sandbox.close();
    return 0;
  }
  if (action !== 'pay' && action !== 'fail' && action !== 'cancel') throw new UsageError(`unknown sandbox action "${action}"; use pay, fail or cancel`);
  if (!id) throw new UsageError(`usage: custos sandbox ${action} PAY_ORDER_ID`);
  // Payer actions are signed with the sandbox's key and name their order and action.
  const { signSimAction } = await import('./channel/sandbox/protocol.ts');
  const signed = signSimAction(key, id, action);
  let res: Response;
  try {
    res = await fetch(`${config.sandboxUrl}/v1/sim/orders/${encodeURIComponent(id)}/${action}`, {
      method: 'POST', signal: AbortSignal.timeout(10_000), body: signed.body, headers: signed.headers,
    });
  } catch (error) {
    throw new Error(`cannot reach the sandbox at ${config.sandboxUrl}: ${(error as Error).message}`);
  }
  const body = (await res.json()) as { status?: string; message?: string };
  if (!res.ok) throw new Error(`sandbox: ${body.message ?? res.status}`);
  process.stdout.write(`${id}: ${body.status}\n`);
  return 0;
}

async function migrateCommand(): Promise<number> {
  const config = loadConfig();
  if (!config.databaseUrl) assertNoServer(config.dataDir, '运行中的服务启动时已执行迁移 / the running server applied migrations when it started');
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    const result = await migrate(db);
    process.stdout.write(`migrations applied: ${result.applied.length} (${result.applied.join(', ') || 'none'}), already applied: ${result.alreadyApplied}\n`);
    return 0;
  } finally {
    await db.close();
  }
}

async function ledgerCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'verify') throw new UsageError(`unknown ledger command "${sub ?? ''}"; try "custos ledger verify [--json]"`);
  let values: { json?: boolean };
  try {
    values = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false } } }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const config = loadConfig();
  const report = await verifyReport(config);
  if (values.json) {
    process.stdout.write(JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
  } else {
    process.stdout.write(report.balanced ? '总账平衡 / the ledger is balanced\n' : '总账不平 / the ledger is NOT balanced\n');
    for (const l of report.ledgers) {
      process.stdout.write(`  ledger ${l.ledger}: accounts ${l.accounts}, debits_posted ${l.debits_posted}, credits_posted ${l.credits_posted}, debits_pending ${l.debits_pending}, credits_pending ${l.credits_pending} ${l.balanced ? 'ok' : 'UNBALANCED'}\n`);
    }
    for (const m of report.accounts_mismatched) process.stdout.write(`  account ${m.id}: balances differ from its entries\n`);
    for (const id of report.history_mismatched) process.stdout.write(`  account ${id}: last balance-after differs from its balances\n`);
    process.stdout.write(`  transfers applied ${report.transfers_applied}, failed ids ${report.transfers_failed}\n`);
  }
  return report.balanced ? 0 : 1;
}

/** Reads the verify report from the running embedded server, or from the database. */
async function verifyReport(config: ReturnType<typeof loadConfig>): Promise<Awaited<ReturnType<ReturnType<typeof createLedger>['verify']>>> {
  const server = config.databaseUrl ? null : runningServer(config.dataDir);
  if (server) return (await adminCall(config, server.url, 'GET', '/v1/ledger/verify')) as never;
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    await migrate(db);
    return await createLedger({ db, clock: systemClock }).verify();
  } finally {
    await db.close();
  }
}

async function adminCall(config: ReturnType<typeof loadConfig>, url: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const { resolveAdminToken } = await import('./platform/admin-token.ts');
  const { token } = await resolveAdminToken(config);
  const res = await fetch(url + path, {
    method, signal: AbortSignal.timeout(30_000),
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = (await res.json()) as { message?: string };
  if (!res.ok) throw new UsageError(answer.message ?? `HTTP ${res.status}`);
  return answer;
}

async function fundCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'interest') return fundOperatorCommand(sub, rest);
  const { values } = parse(rest, { city: { type: 'string' }, period: { type: 'string' }, 'amount-yuan': { type: 'string' }, json: { type: 'boolean', default: false } });
  if (!values.city || !values.period || !values['amount-yuan']) throw new UsageError('--city, --period and --amount-yuan are required, e.g. custos fund interest --city 3301 --period 2026-Q1 --amount-yuan 1234.56');
  const { parseYuan, AmountInvalid } = await import('./recon/parse/amount.ts');
  let amountFen: bigint;
  try {
    amountFen = parseYuan(values['amount-yuan'] as string);
  } catch (error) {
    if (error instanceof AmountInvalid) throw new UsageError(`--amount-yuan 应为元，最多两位小数 / --amount-yuan must be yuan with at most 2 decimals (got "${values['amount-yuan']}")`);
    throw error;
  }
  const body = { city: values.city, period: values.period, amountFen: amountFen.toString() };
  const { batchView } = await import('./fund/use/use.routes.ts');
  const config = loadConfig();
  const server = config.databaseUrl ? null : runningServer(config.dataDir);
  let batch: Record<string, unknown>;
  if (server) {
    batch = (await adminCall(config, server.url, 'POST', '/v1/fund/interest', body)) as Record<string, unknown>;
  } else {
    const { createFundInterest } = await import('./fund/interest/interest.service.ts');
    const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    try {
      await migrate(db);
      const interest = createFundInterest({ db, ledger: createLedger({ db, clock: systemClock }), clock: systemClock });
      batch = batchView(await interest.allocate({ role: 'center', subject: 'cli', estateIds: null, unitIds: null }, body)) as Record<string, unknown>;
    } catch (error) {
      if (error instanceof AppError) throw new UsageError(error.message);
      throw error;
    } finally {
      await db.close();
    }
  }
  if (values.json) process.stdout.write(JSON.stringify(batch) + '\n');
  else process.stdout.write(`结息已入账并分摊 / interest posted and allocated: ${batch.city} ${batch.period} ${batch.amountYuan} 元 → ${batch.households} 户 / households (batch ${batch.id})\n`);
  return 0;
}

/** Fund operator commands: through the running server's admin API, or an in-process platform. */
async function fundOperatorCommand(sub: string | undefined, rest: string[]): Promise<number> {
  const { values, positionals } = parse(rest, {
    file: { type: 'string' }, city: { type: 'string' }, name: { type: 'string' }, 'top-up-bp': { type: 'string' }, type: { type: 'string' },
    'fen-per-m2': { type: 'string' }, rate: { type: 'string' }, estate: { type: 'string' }, bill: { type: 'string' }, 'bank-ref': { type: 'string' },
    'amount-fen': { type: 'string' }, transfer: { type: 'boolean', default: false }, date: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean', default: false },
  });
  const need = (name: string, example: string) => {
    const v = values[name as keyof typeof values];
    if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required, e.g. ${example}`);
    return v;
  };
  let request: { method: string; path: string; body?: unknown; binary?: boolean };
  switch (sub) {
    case 'import': {
      const file = need('file', 'custos fund import --file register.xlsx --city 330100');
      const city = need('city', 'custos fund import --file register.xlsx --city 330100');
      const format = /\.xlsx$/i.test(file) ? 'xlsx' : /\.csv$/i.test(file) ? 'csv' : null;
      if (!format) throw new UsageError('--file must end in .xlsx or .csv');
      const { readFile } = await import('node:fs/promises');
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch (error) {
        throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
      }
      request = { method: 'POST', path: '/v1/fund/imports', body: { city, format, contentBase64: bytes.toString('base64') } };
      break;
    }
    case 'city':
      request = { method: 'PUT', path: `/v1/fund/cities/${encodeURIComponent(need('city', 'custos fund city --city 330100 --name 杭州市'))}`, body: { name: need('name', 'custos fund city --city 330100 --name 杭州市'), ...(values['top-up-bp'] ? { topUpRatioBp: Number(values['top-up-bp']) } : {}) } };
      break;
    case 'standard': {
      const city = need('city', 'custos fund standard --city 330100 --type high_rise_lift --fen-per-m2 9000');
      const type = need('type', 'custos fund standard --city 330100 --type high_rise_lift --fen-per-m2 9000');
      const body = values['fen-per-m2'] ? { method: 'area', fenPerM2: values['fen-per-m2'] } : values.rate ? { method: 'price', rate: values.rate } : null;
      if (!body) throw new UsageError('give --fen-per-m2 N (area method) or --rate R (price method)');
      request = { method: 'PUT', path: `/v1/fund/cities/${encodeURIComponent(city)}/standards/${encodeURIComponent(type)}`, body };
      break;
    }
    case 'bills':
      request = { method: 'POST', path: '/v1/fund/bills/generate', body: { estateId: need('estate', 'custos fund bills --estate e_…') } };
      break;
    case 'counter':
      request = { method: 'POST', path: `/v1/fund/bills/${encodeURIComponent(need('bill', 'custos fund counter --bill b_… --bank-ref ICBC0001 --amount-fen 886500'))}/counter-payments`, body: { bankRef: need('bank-ref', '--bank-ref ICBC0001'), amountFen: need('amount-fen', '--amount-fen 886500'), channel: values.transfer ? 'transfer' : 'counter' } };
      break;
    case 'report': {
      const [kind, id] = positionals;
      need('out', 'custos fund report daily --date 2026-11-22 --out daily.xlsx');
      if (kind === 'daily') request = { method: 'GET', path: `/v1/fund/reports/daily${values.date ? `?date=${encodeURIComponent(values.date)}` : ''}`, binary: true };
      else if ((kind === 'estate' || kind === 'building' || kind === 'unit') && id) request = { method: 'GET', path: `/v1/fund/reports/${kind}s/${encodeURIComponent(id)}`, binary: true };
      else throw new UsageError('usage: custos fund report daily [--date YYYY-MM-DD] --out FILE | custos fund report estate|building|unit ID --out FILE');
      break;
    }
    default:
      throw new UsageError(`unknown fund command "${sub ?? ''}"; use import, city, standard, bills, counter, report or interest`);
  }
  const answer = await fundCall(request);
  if (request.binary) {
    if (answer.status !== 200) throw new Error(String((JSON.parse(answer.body.toString('utf8')) as { message?: string }).message ?? answer.status));
    const { writeFile } = await import('node:fs/promises');
    await writeFile(values.out as string, answer.body);
    process.stdout.write(`已写出 / written: ${values.out} (${answer.body.length} bytes)\n`);
    return 0;
  }
  const body = JSON.parse(answer.body.toString('utf8')) as { code?: string; message?: string; details?: { rejected?: Array<{ row: number; column: string; reason: string }>; rejectedCount?: number } };
  if (values.json) process.stdout.write(JSON.stringify(body) + '\n');
  if (answer.status >= 400) {
    if (!values.json) {
      for (const r of body.details?.rejected ?? []) process.stdout.write(`  第 ${r.row} 行 / row ${r.row} [${r.column}]: ${r.reason}\n`);
      process.stderr.write(`custos: ${body.message ?? `HTTP ${answer.status}`}\n`);
    }
    return 1;
  }
  if (!values.json) process.stdout.write(JSON.stringify(body, null, 2) + '\n');
  return 0;
}

async function fundCall(r: { method: string; path: string; body?: unknown }): Promise<{ status: number; body: Buffer }> {
  const config = loadConfig();
  const { resolveAdminToken } = await import('./platform/admin-token.ts');
  const server = config.databaseUrl ? null : runningServer(config.dataDir);
  if (server) {
    const { token } = await resolveAdminToken(config);
    const res = await fetch(server.url + r.path, {
      method: r.method, signal: AbortSignal.timeout(120_000),
      headers: { authorization: `Bearer ${token}`, ...(r.body ? { 'content-type': 'application/json' } : {}) },
      body: r.body ? JSON.stringify(r.body) : undefined,
    });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
  }
  const { createPlatform } = await import('./server.ts');
  const platform = await createPlatform({ ...config, logLevel: 'silent' });
  try {
    const res = await platform.app.inject({ method: r.method as 'GET', url: r.path, headers: { authorization: `Bearer ${platform.adminToken}` }, ...(r.body ? { payload: r.body as object } : {}) });
    return { status: res.statusCode, body: res.rawPayload };
  } finally {
    await platform.close();
  }
}

async function benchCommand(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === 'ledger') return (await import('../bench/ledger.ts')).benchLedger(rest);
  if (name === 'api') return (await import('../bench/api.ts')).benchApi(rest);
  if (name === 'settle') return (await import('../bench/settle.ts')).benchSettle(rest);
  if (name === 'recon') return (await import('../bench/recon.ts')).benchRecon(rest);
  throw new UsageError(`unknown benchmark "${name ?? ''}"; available: ledger, api, settle, recon`);
}
