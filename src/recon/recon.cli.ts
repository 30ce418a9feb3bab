// `custos recon run | mistakes | resolve`: talks to the admin API when `custos serve`
// runs on the embedded data folder, otherwise opens the platform on the database
// itself. Usage errors exit 2, failures 1, each with one clear line on stderr.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { loadConfig, ConfigError } from '../platform/config.ts';
import { AppError } from '../platform/errors.ts';
import { isValidDate } from '../platform/time.ts';
import { runningServer } from '../platform/instance.ts';
import type { BatchSummary } from './recon.service.ts';

class CliUsage extends Error {}
class CliFailure extends Error {}

const USAGE = 'usage: custos recon run --channel wechat|alipay|unionpay|sandbox --date YYYY-MM-DD [--file PATH] [--account NO] [--json]\n'
  + '       custos recon mistakes [--batch ID] [--state open|resolved|auto_fixed] [--type TYPE] [--json]\n'
  + '       custos recon resolve ID --side channel|platform --reason "…" [--by NAME]';

export async function reconCommand(argv: string[]): Promise<number> {
  try {
    const [sub, ...rest] = argv;
    if (sub === 'run') return await run(rest);
    if (sub === 'mistakes') return await mistakes(rest);
    if (sub === 'resolve') return await resolve(rest);
    throw new CliUsage(`unknown recon command "${sub ?? ''}"; ${USAGE.split('\n')[0]}`);
  } catch (error) {
    if (error instanceof CliUsage || error instanceof ConfigError) {
      process.stderr.write(`custos: ${error.message.split('\n')[0]}\n`);
      return 2;
    }
    const message = error instanceof AppError ? `${error.code}: ${error.message}` : (error as Error).message;
    process.stderr.write(`custos: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
    return 1;
  }
}

function parse<T extends Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true });
  } catch (error) {
    throw new CliUsage((error as Error).message);
  }
}

type Config = ReturnType<typeof loadConfig>;

async function api(config: Config, url: string, method: string, p: string, body?: unknown): Promise<unknown> {
  const { resolveAdminToken } = await import('../platform/admin-token.ts');
  const { token } = await resolveAdminToken(config);
  const res = await fetch(url + p, {
    method, signal: AbortSignal.timeout(600_000),
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = (await res.json()) as { code?: string; message?: string };
  if (!res.ok) throw new CliFailure(`${answer.code ?? res.status}: ${answer.message ?? `HTTP ${res.status}`}`);
  return answer;
}

/** Uploads a local statement file to the running server's reconciliation inbox. */
async function upload(config: Config, url: string, file: string): Promise<unknown> {
  const { readFile, stat } = await import('node:fs/promises');
  const { UPLOAD_BYTES_MAX } = await import('./recon.routes.ts');
  const size = await stat(file).then((s) => s.size, (error: NodeJS.ErrnoException) => {
    throw new CliFailure(`cannot read ${file}: ${error.code ?? error.message}`);
  });
  if (size > UPLOAD_BYTES_MAX) throw new CliFailure(`${file} is larger than ${UPLOAD_BYTES_MAX} bytes`);
  const { resolveAdminToken } = await import('../platform/admin-token.ts');
  const { token } = await resolveAdminToken(config);
  const res = await fetch(url + '/v1/admin/recon/files', {
    method: 'POST', signal: AbortSignal.timeout(600_000),
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: await readFile(file),
  });
  const answer = (await res.json()) as { code?: string; message?: string };
  if (!res.ok) throw new CliFailure(`${answer.code ?? res.status}: ${answer.message ?? `HTTP ${res.status}`}`);
  return answer;
}

/** Opens the platform on the database (no server running) for one command. */
async function withPlatform<T>(config: Config, work: (p: Awaited<ReturnType<typeof import('../server.ts')['createPlatform']>>) => Promise<T>): Promise<T> {
  const { createPlatform } = await import('../server.ts');
  const platform = await createPlatform({ ...config, logLevel: 'silent' });
  try {
    return await work(platform);
  } finally {
    await platform.close();
  }
}

function progressBar(): { bytes: (read: number, total: number) => void; done: () => void } {
  if (!process.stderr.isTTY) return { bytes: () => {}, done: () => {} };
  const width = 30;
  let last = 0;
  const started = Date.now();
  return {
    bytes(read, total) {
      const now = Date.now();
      if (now - last < 100 && read < total) return;
      last = now;
      const share = total > 0 ? Math.min(1, read / total) : 0;
      const filled = Math.round(share * width);
      const mb = (read / 1048576).toFixed(1);
      process.stderr.write(`\r对账中 / matching [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ${mb} MB ${((now - started) / 1000).toFixed(1)}s`);
    },
    done() {
      process.stderr.write('\r\x1b[2K');
    },
  };
}

export function runJson(s: BatchSummary) {
  return {
    batchId: s.batchId, channel: s.channel, billDate: s.billDate, channelRecords: s.channelRecords, platformRecords: s.platformRecords,
    matched: s.matched, poolAdded: s.poolAdded, poolResolved: s.poolResolved, autoFixed: s.autoFixed, mistakes: s.mistakes,
    channelTotalFen: s.channelTotalFen, platformTotalFen: s.platformTotalFen,
  };
}

function yuan(fen: string): string {
  const v = BigInt(fen);
  const a = v < 0n ? -v : v;
  return `${v < 0n ? '-' : ''}${a / 100n}.${(a % 100n).toString().padStart(2, '0')}`;
}

function table(s: BatchSummary): string {
  const rows: Array<[string, string, string]> = [
    ['批次 / batch', s.batchId, ''],
    ['渠道·日期 / channel·date', `${s.channel} ${s.billDate}`, ''],
    ['渠道记录 / channel records', String(s.channelRecords), yuan(s.channelTotalFen)],
    ['平台记录 / platform records', String(s.platformRecords), yuan(s.platformTotalFen)],
    ['已勾对 / matched', String(s.matched), yuan(s.matchedFen)],
    ['入缓存池 / pooled', String(s.poolAdded), yuan(s.poolAddedFen)],
    ['出缓存池 / pool resolved', String(s.poolResolved), yuan(s.poolResolvedFen)],
    ['自动处理 / auto-fixed', String(s.autoFixed), ''],
    ['待处理差错 / open mistakes', String(s.openMistakes), yuan(s.mistakesFen)],
    ...Object.entries(s.mistakes).map(([type, n]): [string, string, string] => [`  ${type}`, String(n), '']),
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length)) + 2;
  const w1 = Math.max(...rows.map((r) => r[1].length)) + 2;
  return rows.map(([a, b, c]) => `${a.padEnd(w0)}${b.padStart(w1)}  ${c}`.trimEnd()).join('\n') + '\n';
}

async function run(argv: string[]): Promise<number> {
  const { values } = parse(argv, { channel: { type: 'string' }, date: { type: 'string' }, file: { type: 'string' }, account: { type: 'string' }, json: { type: 'boolean', default: false } });
  const channel = values.channel as string | undefined;
  const date = values.date as string | undefined;
  if (!channel) throw new CliUsage(`--channel is required; ${USAGE.split('\n')[0]}`);
  if (!date || !isValidDate(date)) throw new CliUsage('--date YYYY-MM-DD is required (the bill date, e.g. yesterday)');
  const file = values.file ? path.resolve(values.file as string) : null;
  const config = loadConfig();
  const server = config.databaseUrl ? null : runningServer(config.dataDir);
  let summary: BatchSummary;
  if (server) {
    // The server reads only its inbox: the operator's local file is uploaded to it first.
    const uploaded = file ? ((await upload(config, server.url, file)) as { file: string }).file : null;
    summary = (await api(config, server.url, 'POST', '/v1/admin/recon/runs', { channel, billDate: date, ...(uploaded ? { file: uploaded } : {}), ...(values.account ? { mchAccount: values.account } : {}) })) as BatchSummary;
  } else {
    const bar = progressBar();
    try {
      summary = await withPlatform(config, async (platform) => {
        const { reader, source } = await platform.recon.readerFor(channel, date, file, bar.bytes);
        return platform.recon.service.runDay({ channel, billDate: date, mchAccount: values.account as string | undefined, reader, source });
      });
    } finally {
      bar.done();
    }
  }
  process.stdout.write(values.json ? JSON.stringify(runJson(summary)) + '\n' : table(summary));
  return 0;
}

async function mistakes(argv: string[]): Promise<number> {
  const { values } = parse(argv, { batch: { type: 'string' }, state: { type: 'string' }, type: { type: 'string' }, json: { type: 'boolean', default: false } });
  const config = loadConfig();
  const server = config.databaseUrl ? null : runningServer(config.dataDir);
  const filter = { batchId: values.batch as string | undefined, state: values.state as string | undefined, type: values.type as string | undefined };
  let rows: Array<Record<string, unknown>>;
  if (server) {
    const qs = new URLSearchParams(Object.entries(filter).filter(([, v]) => v !== undefined) as Array<[string, string]>).toString();
    rows = ((await api(config, server.url, 'GET', `/v1/admin/recon/mistakes${qs ? `?${qs}` : ''}`)) as { mistakes: Array<Record<string, unknown>> }).mistakes;
  } else {
    rows = await withPlatform(config, async (p) => JSON.parse(JSON.stringify(await p.recon.service.listMistakes(filter, 1000), (_k, v) => (typeof v === 'bigint' ? v.toString() : v))));
  }
  if (values.json) {
    process.stdout.write(JSON.stringify({ mistakes: rows }) + '\n');
    return 0;
  }
  if (rows.length === 0) process.stdout.write('没有差错 / no mistakes\n');
  for (const m of rows) {
    process.stdout.write(`${String(m.id).padStart(6)}  ${String(m.state).padEnd(10)} ${String(m.type).padEnd(30)} ${String(m.ref_id).padEnd(28)} ${yuan(String(m.amount_fen))}  ${m.mch_no ?? ''}\n`);
  }
  return 0;
}

async function resolve(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { side: { type: 'string' }, reason: { type: 'string' }, by: { type: 'string' }, json: { type: 'boolean', default: false } });
  const id = positionals[0];
  if (!id || !/^[0-9]{1,18}$/.test(id)) throw new CliUsage(`a mistake id (a number) is required; ${USAGE.split('\n')[2].trim()}`);
  if (values.side !== 'channel' && values.side !== 'platform') throw new CliUsage('--side channel|platform is required (whose record stands)');
  if (!values.reason || String(values.reason).trim().length < 2) throw new CliUsage('--reason "…" is required: say why');
  const actor = (values.by as string | undefined) ?? process.env.USER ?? 'cli';
  const config = loadConfig();
  const server = config.databaseUrl ? null : runningServer(config.dataDir);
  const body = { side: values.side, reason: values.reason as string, operator: actor };
  const result = server
    ? ((await api(config, server.url, 'POST', `/v1/admin/recon/mistakes/${id}/resolve`, body)) as { mistake: { type: string; state: string }; decision: { transfer_ids: string | null } })
    : await withPlatform(config, async (p) => p.recon.service.resolve(BigInt(id), { side: body.side as string, reason: body.reason, actor }));
  if (values.json) process.stdout.write(JSON.stringify(result, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
  else process.stdout.write(`差错 ${id} 已处理 / mistake ${id} resolved (${result.mistake.type}, side ${values.side})${result.decision.transfer_ids ? `, posted ${result.decision.transfer_ids}` : ''}\n`);
  return 0;
}
