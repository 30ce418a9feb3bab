// custos — the one command line entry: serve, migrate, ledger verify, bench.
// Errors end with a non-zero exit and one clear line on stderr.
import { parseArgs } from 'node:util';
import { loadConfig, ConfigError } from './platform/config.ts';
import { openDatabase } from './platform/db.ts';
import { migrate } from './platform/migrate.ts';
import { systemClock } from './platform/clock.ts';
import { createLedger } from './ledger/index.ts';

const USAGE = `custos — 资金监管支付清结算平台 / Custos

用法 / usage:
  custos serve                      启动平台 / run the platform (HTTP on PORT, default 8080)
  custos migrate                    执行数据库迁移 / apply database migrations
  custos ledger verify [--json]     总账校验 / check the ledger's invariants (exit 1 if unbalanced)
  custos bench ledger [--quick] [--db postgres|pglite|both] [--workload hot|spread|both]
  custos help

Configuration is read from the environment: see README "Configuration".`;

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
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
  const { createPlatform, startBackground } = await import('./server.ts');
  const platform = await createPlatform(config);
  const stop = startBackground(platform);
  const address = await platform.app.listen({ port: config.port, host: config.host });
  const where = config.databaseUrl ? 'PostgreSQL' : config.dataDir ? `PGlite (${config.dataDir})` : 'PGlite (memory)';
  process.stdout.write(
    [
      `Custos 已启动 / Custos is running at ${address}`,
      `  数据库 / database: ${where}`,
      `  接口文档 / API docs: ${address}/docs`,
      `  健康检查 / health: ${address}/healthz    指标 / metrics: ${address}/metrics`,
      `  管理令牌 / admin token${platform.adminTokenFile ? ` (saved in ${platform.adminTokenFile})` : ''}: ${platform.adminToken}`,
      `  试一试 / try: curl -H "Authorization: Bearer ${platform.adminToken}" ${address}/v1/ledger/verify`,
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
  return 0;
}

async function migrateCommand(): Promise<number> {
  const config = loadConfig();
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
  const db = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    await migrate(db);
    const report = await createLedger({ db, clock: systemClock }).verify();
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
  } finally {
    await db.close();
  }
}

async function benchCommand(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name !== 'ledger') throw new UsageError(`unknown benchmark "${name ?? ''}"; available: ledger`);
  const { benchLedger } = await import('../bench/ledger.ts');
  return benchLedger(rest);
}
