// Ledger HTTP routes: thin — parse, call one use case, format.
import type { FastifyInstance } from 'fastify';
import { badRequest } from '../platform/errors.ts';
import type { Metrics } from '../platform/metrics.ts';
import type { Ledger } from './ledger.service.ts';
import { formatAccount, formatBalances, formatEntry, parseAccounts, parseTransfers } from './ledger.http.ts';

const security = [{ bearer: [] }];
const resultsSchema = {
  type: 'object',
  properties: { results: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, result: { type: 'string' } } } } },
};
const idParam = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] };

export function ledgerRoutes(ledger: Ledger, metrics: Metrics, guard: (req: never) => Promise<void>) {
  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      scope.addHook('onRequest', guard as never);

      scope.post('/v1/ledger/accounts', {
        schema: {
          tags: ['ledger'], summary: '创建账户 / create accounts (up to 8190)', security,
          body: { type: 'object', required: ['accounts'], properties: { accounts: { type: 'array' } } },
          response: { 200: resultsSchema },
        },
      }, async (request) => {
        const inputs = parseAccounts(request.body);
        const results = await ledger.createAccounts(inputs);
        return { results: inputs.map((a, i) => ({ id: a.id, result: results[i] })) };
      });

      scope.post('/v1/ledger/transfers', {
        schema: {
          tags: ['ledger'], summary: '转账 / create transfers (up to 8190), one result each, in order', security,
          body: { type: 'object', required: ['transfers'], properties: { transfers: { type: 'array' } } },
          response: { 200: resultsSchema },
        },
      }, async (request) => {
        const inputs = parseTransfers(request.body);
        const results = await ledger.createTransfers(inputs);
        for (const r of results) metrics.ledgerTransfers.inc({ result: r });
        return { results: inputs.map((t, i) => ({ id: t.id, result: results[i] })) };
      });

      scope.get('/v1/ledger/accounts/:id', {
        schema: { tags: ['ledger'], summary: '账户余额 / an account with its balances and version', security, params: idParam },
      }, async (request) => formatAccount(await ledger.getAccount((request.params as { id: string }).id)));

      scope.get('/v1/ledger/accounts/:id/entries', {
        schema: {
          tags: ['ledger'], summary: '账户分录 / entries of an account, oldest first, paginated', security, params: idParam,
          querystring: { type: 'object', properties: { limit: { type: 'string' }, cursor: { type: 'string' } } },
        },
      }, async (request) => {
        const { id } = request.params as { id: string };
        const query = request.query as { limit?: string; cursor?: string };
        const limit = query.limit === undefined ? 100 : Number(query.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw badRequest('INVALID_QUERY', 'limit must be an integer from 1 to 1000');
        if (query.cursor !== undefined && !/^[0-9]{1,19}$/.test(query.cursor)) throw badRequest('INVALID_QUERY', 'cursor must be the next_cursor of a previous page');
        const page = await ledger.listEntries(id, limit, BigInt(query.cursor ?? '0'));
        return { entries: page.entries.map(formatEntry), next_cursor: page.next_cursor };
      });

      scope.get('/v1/ledger/accounts/:id/balance', {
        schema: {
          tags: ['ledger'], summary: '时点余额 / balances at a point in time', security, params: idParam,
          querystring: { type: 'object', properties: { at: { type: 'string' } } },
        },
      }, async (request) => {
        const { id } = request.params as { id: string };
        const at = (request.query as { at?: string }).at;
        const ms = at === undefined ? Date.now() : Date.parse(at);
        if (!Number.isFinite(ms)) throw badRequest('INVALID_QUERY', 'at must be an ISO 8601 time, e.g. 2026-11-22T10:00:00Z');
        const atNs = BigInt(ms) * 1_000_000n + 999_999n;
        return formatBalances(id, new Date(ms).toISOString(), await ledger.balanceAt(id, atNs));
      });

      scope.get('/v1/ledger/verify', {
        schema: { tags: ['ledger'], summary: '总账校验 / check Σdebits = Σcredits and every balance against its entries', security },
      }, async () => {
        const report = await ledger.verify();
        return JSON.parse(JSON.stringify(report, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
      });
    });
  };
}
