// Admin API (bearer token): a merchant's own rate limits on the merchant API.
import type { FastifyInstance } from 'fastify';
import type { MerchantLimits } from './limits.service.ts';
import { LIMIT_PER_S_MAX } from './limits.service.ts';

const security = [{ bearer: [] }];
const tags = ['payment admin'];
const perS = { anyOf: [{ type: 'integer', minimum: 1, maximum: LIMIT_PER_S_MAX }, { type: 'null' }] };
const limitsSchema = {
  type: 'object',
  properties: {
    mchNo: { type: 'string' }, windowS: { type: 'integer' }, merchantPerS: { type: 'integer' }, appPerS: { type: 'integer' },
    merchantPerSSet: { type: ['integer', 'null'] }, appPerSSet: { type: ['integer', 'null'] },
  },
};

export function limitsRoutes(deps: { limits: MerchantLimits; guard: (req: never) => Promise<void> }) {
  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      scope.addHook('onRequest', deps.guard as never);
      const params = { type: 'object', required: ['mchNo'], properties: { mchNo: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } };

      scope.get('/v1/admin/merchants/:mchNo/limits', {
        schema: { tags, security, summary: '商户限流 / a merchant\'s rate limits (its own or the defaults)', params, response: { 200: limitsSchema } },
      }, async (request) => deps.limits.get((request.params as { mchNo: string }).mchNo));

      scope.put('/v1/admin/merchants/:mchNo/limits', {
        schema: {
          tags, security, summary: '设置商户限流 / set a merchant\'s rate limits (requests per second; null = default)', params,
          body: { type: 'object', additionalProperties: false, properties: { merchantPerS: perS, appPerS: perS } },
          response: { 200: limitsSchema },
        },
      }, async (request) => {
        const body = request.body as { merchantPerS?: number | null; appPerS?: number | null };
        return deps.limits.set((request.params as { mchNo: string }).mchNo, { merchantPerS: body.merchantPerS ?? null, appPerS: body.appPerS ?? null });
      });
    });
  };
}
