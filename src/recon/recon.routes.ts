// Admin API of reconciliation (bearer token): batches (create + run, re-run, list, get
// with its summary), mistakes (list, filter, resolve), the cache pool, decisions, holds,
// supervision bank accounts. Thin: the service does the work.
import type { FastifyInstance } from 'fastify';
import { badRequest } from '../platform/errors.ts';
import type { ReconService } from './recon.service.ts';
import type { RecordReader } from './recon.service.ts';

const security = [{ bearer: [] }];
const tags = ['reconciliation'];
const json = (value: unknown) => JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));

export interface ReconRouteDeps {
  recon: ReconService;
  guard: (req: never) => Promise<void>;
  /** The statement of a (channel, bill date), from a local file or the statement store. */
  readerFor: (channel: string, billDate: string, file: string | null) => Promise<{ reader: RecordReader; source: string }>;
  runSupervisionFile: (input: { bankAccountNo: string; billDate: string; file: string; kind: 'bank:csv' | 'bank:xlsx' | 'bank:xls' }) => Promise<unknown>;
  /** Stores an uploaded statement in the inbox; the answer's `file` names it in later requests. */
  upload: (bytes: Buffer) => Promise<{ file: string; sha256: string; sizeBytes: number }>;
}

/** Largest statement upload through the API. */
export const UPLOAD_BYTES_MAX = 512 * 1024 * 1024;

function parseId(text: string): bigint {
  if (!/^[0-9]{1,18}$/.test(text)) throw badRequest('RECON_ID_INVALID', 'mistake id must be a number');
  return BigInt(text);
}

function limitOf(text: string | undefined): number {
  if (text === undefined) return 200;
  if (!/^[0-9]{1,4}$/.test(text) || Number(text) < 1 || Number(text) > 1000) throw badRequest('INVALID_QUERY', 'limit must be 1–1000');
  return Number(text);
}

export function reconRoutes(deps: ReconRouteDeps) {
  const { recon } = deps;
  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      scope.addHook('onRequest', deps.guard as never);
      scope.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: UPLOAD_BYTES_MAX }, (_req, body, done) => done(null, body));

      scope.post('/v1/admin/recon/files', {
        bodyLimit: UPLOAD_BYTES_MAX,
        schema: { tags, security, summary: '上传对账文件（application/octet-stream）/ upload a statement file\'s bytes; pass the answer\'s `file` to runs, batches or supervision' },
      }, async (request, reply) => {
        if (!Buffer.isBuffer(request.body)) throw badRequest('RECON_UPLOAD_INVALID', '请以 application/octet-stream 上传文件内容 / send the file\'s bytes as application/octet-stream');
        return reply.status(201).send(await deps.upload(request.body));
      });

      scope.post('/v1/admin/recon/batches', {
        schema: {
          tags, security, summary: '创建并运行对账批次 / create a batch for (channel, account, date) and run it; a second create is 409',
          body: {
            type: 'object', required: ['channel', 'billDate'], additionalProperties: false,
            properties: { channel: { type: 'string' }, billDate: { type: 'string' }, mchAccount: { type: 'string' }, file: { type: 'string' } },
          },
        },
      }, async (request, reply) => {
        const body = request.body as { channel: string; billDate: string; mchAccount?: string; file?: string };
        const { reader, source } = await deps.readerFor(body.channel, body.billDate, body.file ?? null);
        const batch = await recon.createBatch(body);
        const summary = await recon.runBatch(batch.batch_id, reader, { source });
        return reply.status(201).send(json(summary));
      });

      scope.post('/v1/admin/recon/runs', {
        schema: {
          tags, security, summary: '运行某日对账（无则创建，有则安全重跑）/ run a day: creates the batch or re-runs it (what the daily job and the CLI do)',
          body: {
            type: 'object', required: ['channel', 'billDate'], additionalProperties: false,
            properties: { channel: { type: 'string' }, billDate: { type: 'string' }, mchAccount: { type: 'string' }, file: { type: 'string' } },
          },
        },
      }, async (request) => {
        const body = request.body as { channel: string; billDate: string; mchAccount?: string; file?: string };
        const { reader, source } = await deps.readerFor(body.channel, body.billDate, body.file ?? null);
        return json(await recon.runDay({ channel: body.channel, billDate: body.billDate, mchAccount: body.mchAccount, reader, source }));
      });

      scope.post('/v1/admin/recon/batches/:batchId/run', {
        schema: { tags, security, summary: '重跑批次（安全，结果相同）/ re-run a batch: safe, same result', body: { type: ['object', 'null'], properties: { file: { type: 'string' } } } },
      }, async (request) => {
        const { batchId } = request.params as { batchId: string };
        const file = (request.body as { file?: string } | null)?.file ?? null;
        const { batch } = await recon.getBatch(batchId);
        const needsFile = batch.state !== 'classified' && batch.state !== 'done';
        const source = needsFile ? await deps.readerFor(batch.channel, batch.bill_date, file) : null;
        return json(await recon.runBatch(batchId, source?.reader ?? null, { source: source?.source }));
      });

      scope.get('/v1/admin/recon/batches', {
        schema: { tags, security, summary: '对账批次 / batches', querystring: { type: 'object', properties: { channel: { type: 'string' }, state: { type: 'string' }, limit: { type: 'string' } } } },
      }, async (request) => {
        const q = request.query as { channel?: string; state?: string; limit?: string };
        const rows = await recon.listBatches({ channel: q.channel, state: q.state }, limitOf(q.limit));
        return { batches: rows.map((b) => json({ ...b, summary: b.summary ? JSON.parse(b.summary) : null })) };
      });

      scope.get('/v1/admin/recon/batches/:batchId', { schema: { tags, security, summary: '批次与汇总 / a batch with its summary (counts and amounts matched, pooled, in mistakes)' } }, async (request) => {
        const { batchId } = request.params as { batchId: string };
        const got = await recon.getBatch(batchId);
        return json({ ...got.batch, summary: got.summary, mistakesByState: got.mistakesByState });
      });

      scope.get('/v1/admin/recon/mistakes', {
        schema: {
          tags, security, summary: '差错 / mistakes (filter by batch, state, type, merchant)',
          querystring: { type: 'object', properties: { batchId: { type: 'string' }, state: { type: 'string' }, type: { type: 'string' }, mchNo: { type: 'string' }, limit: { type: 'string' } } },
        },
      }, async (request) => {
        const q = request.query as { batchId?: string; state?: string; type?: string; mchNo?: string; limit?: string };
        return { mistakes: json(await recon.listMistakes(q, limitOf(q.limit))) };
      });

      scope.post('/v1/admin/recon/mistakes/:id/resolve', {
        schema: {
          tags, security, summary: '处理差错 / resolve a mistake: take the channel\'s side or ours, with a reason',
          body: {
            type: 'object', required: ['side', 'reason'], additionalProperties: false,
            properties: { side: { type: 'string' }, reason: { type: 'string' }, operator: { type: 'string', maxLength: 100 } },
          },
        },
      }, async (request) => {
        const id = parseId((request.params as { id: string }).id);
        const body = request.body as { side: string; reason: string; operator?: string };
        const result = await recon.resolve(id, { side: body.side, reason: body.reason, actor: body.operator ?? 'admin' });
        return json(result);
      });

      scope.get('/v1/admin/recon/pool', {
        schema: { tags, security, summary: '缓存池 / the cache pool', querystring: { type: 'object', properties: { ifCode: { type: 'string' }, state: { type: 'string' }, limit: { type: 'string' } } } },
      }, async (request) => {
        const q = request.query as { ifCode?: string; state?: string; limit?: string };
        return { pool: json(await recon.listPool({ ifCode: q.ifCode, state: q.state ?? 'open' }, limitOf(q.limit))) };
      });

      scope.get('/v1/admin/recon/decisions', {
        schema: { tags, security, summary: '处理记录（审计）/ decisions (audit)', querystring: { type: 'object', properties: { mistakeId: { type: 'string' }, limit: { type: 'string' } } } },
      }, async (request) => {
        const q = request.query as { mistakeId?: string; limit?: string };
        return { decisions: json(await recon.listDecisions({ mistakeId: q.mistakeId ? parseId(q.mistakeId) : undefined }, limitOf(q.limit))) };
      });

      scope.get('/v1/admin/recon/holds', { schema: { tags, security, summary: '因差错冻结的资金 / funds held by open mistakes, per merchant' } }, async () => {
        return { holds: json(await recon.openHoldsByMerchant()) };
      });

      scope.post('/v1/admin/recon/supervision', {
        schema: {
          tags, security, summary: '监管账户日终对账 / reconcile a supervision bank account\'s statement of a day against the ledger',
          body: {
            type: 'object', required: ['bankAccountNo', 'billDate', 'file'], additionalProperties: false,
            properties: { bankAccountNo: { type: 'string' }, billDate: { type: 'string' }, file: { type: 'string' }, kind: { type: 'string', enum: ['bank:csv', 'bank:xlsx', 'bank:xls'] } },
          },
        },
      }, async (request) => {
        const body = request.body as { bankAccountNo: string; billDate: string; file: string; kind?: 'bank:csv' | 'bank:xlsx' | 'bank:xls' };
        return json(await deps.runSupervisionFile({ ...body, kind: body.kind ?? 'bank:csv' }));
      });

      scope.put('/v1/admin/recon/bank-accounts/:bankAccountNo', {
        schema: {
          tags, security, summary: '登记监管账户 / map a supervision bank account to its ledger account',
          body: { type: 'object', required: ['ledgerAccountId', 'normalSide'], additionalProperties: false, properties: { ledgerAccountId: { type: 'string' }, normalSide: { type: 'string', enum: ['debit', 'credit'] } } },
        },
      }, async (request) => {
        const { bankAccountNo } = request.params as { bankAccountNo: string };
        const body = request.body as { ledgerAccountId: string; normalSide: 'debit' | 'credit' };
        await recon.mapBankAccount({ bankAccountNo, ...body });
        return { bankAccountNo, ...body };
      });
    });
  };
}
