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

const USAGE = `custos — 资金监管支付清结算平台 / Custos

用法 / usage:
  custos serve                      启动平台 / run the platform (HTTP on PORT, default 8080)
  custos migrate                    执行数据库迁移 / apply database migrations
  custos ledger verify [--json]     总账校验 / check the ledger's invariants (exit 1 if unbalanced)
  custos merchant create --name NAME [--notify-url URL] [--json]
                                    开通商户 / create a merchant and its app (prints mchNo, appId, appSecret)
  custos notify resend ID           重发商户通知 / resend a notification to a merchant
  custos sandbox                    只运行沙箱渠道 / run the sandbox channel alone (CUSTOS_SANDBOX_PORT)
  custos sandbox pay|fail|cancel PAY_ORDER_ID
                                    模拟付款人 / act as the payer in the sandbox
  custos recon run --channel wechat|alipay|unionpay|sandbox --date YYYY-MM-DD [--file PATH] [--json]
                                    对账 / reconcile a channel's bill date (progress on stderr, summary table)
  custos recon mistakes [--batch ID] [--state open] [--json]
                                    对账差错 / reconciliation mistakes
  custos recon resolve ID --side channel|platform --reason "…"
                                    处理差错 / resolve a mistake (audited; money-moving sides post to the ledger)
  custos bench ledger|api|recon [--quick] [--db postgres|pglite|both]
  custos help

Configuration is read from the environment: see README "Configuration".`;

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
    case 'sandbox':
      return sandboxCommand(rest);
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
  const config = loadConfig();
  const { createPlatform } = await import('./server.ts');
  const release = claimDataDir(config.databaseUrl ? null : config.dataDir, `http://${config.host}:${config.port}`);
  const sandbox = config.sandboxEmbedded ? await startSandbox(config) : null;
  const platform = await createPlatform(config);
  const stop = await platform.startBackground();
  const address = await platform.app.listen({ port: config.port, host: config.host });
  const demo = config.demo && config.dataDir && !config.databaseUrl ? await (await import('./demo.ts')).seedDemo(platform, config.dataDir) : null;
  const where = config.databaseUrl ? 'PostgreSQL' : config.dataDir ? `PGlite (${config.dataDir})` : 'PGlite (memory)';
  process.stdout.write(
    [
      `Custos 已启动 / Custos is running at ${address}`,
      `  数据库 / database: ${where}`,
      `  接口文档 / API docs: ${address}/docs`,
      `  健康检查 / health: ${address}/healthz    指标 / metrics: ${address}/metrics`,
      sandbox ? `  沙箱渠道 / sandbox channel: ${sandbox.url} (payer pages, statements, faults)` : `  渠道 / channel: ${config.sandboxUrl}`,
      `  管理令牌 / admin token${platform.adminTokenFile ? ` (saved in ${platform.adminTokenFile})` : ''}: ${platform.adminToken}`,
      `  试一试 / try: curl -H "Authorization: Bearer ${platform.adminToken}" ${address}/v1/ledger/verify`,
      ...(demo ? [
        `  演示商户 / demo merchant: mchNo ${demo.mchNo}, appId ${demo.appId}, appSecret ${demo.appSecret}`,
        `  演示订单，手机打开即可支付 / a demo property-fee order to pay: ${demo.cashierUrl}`,
      ] : []),
      '',
    ].join('\n'),
  );
  await new Promise<void>((resolve) => {
    const shutdown = () => resolve();
    process.once('SIGINT', shutdown);
    process.once('SIGTERM', shutdown);
  });
  stop();
  await platform.close();
  await sandbox?.close();
  release();
  return 0;
}

async function startSandbox(config: ReturnType<typeof loadConfig>) {
  const { createSandbox } = await import('./channel/sandbox/server.ts');
  const path = await import('node:path');
  const { mkdir } = await import('node:fs/promises');
  let stateFile: string | null = null;
  if (config.dataDir) {
    await mkdir(config.dataDir, { recursive: true });
    stateFile = path.join(config.dataDir, 'sandbox-state.json');
  }
  const sandbox = createSandbox({ key: config.sandboxKey, stateFile, publicUrl: config.sandboxUrl, logLevel: config.logLevel === 'silent' ? 'silent' : 'warn' });
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
    const created = await createMerchantService({ db, box }).createMerchant({ name: values.name as string, notifyUrl: (values['notify-url'] as string | undefined) ?? null });
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

async function sandboxCommand(argv: string[]): Promise<number> {
  const [action, id] = argv;
  const config = loadConfig();
  if (action === undefined) {
    const sandbox = await startSandbox(config);
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
  let res: Response;
  try {
    res = await fetch(`${config.sandboxUrl}/v1/sim/orders/${encodeURIComponent(id)}/${action}`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
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

async function benchCommand(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === 'ledger') return (await import('../bench/ledger.ts')).benchLedger(rest);
  if (name === 'api') return (await import('../bench/api.ts')).benchApi(rest);
  if (name === 'recon') return (await import('../bench/recon.ts')).benchRecon(rest);
  throw new UsageError(`unknown benchmark "${name ?? ''}"; available: ledger, api, recon`);
}
