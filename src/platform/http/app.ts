// The HTTP application: Fastify with request ids, pino logs, OpenAPI at /docs, health
// at /healthz, Prometheus metrics at /metrics, and the one error handler. Modules
// register their routes through the `modules` list.
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { sql, type Database } from '../db.ts';
import type { Metrics } from '../metrics.ts';
import { installErrorHandler } from './errors.ts';
import { overloaded } from '../errors.ts';

export interface AppOptions {
  db: Database;
  metrics: Metrics;
  logLevel?: string;
  bodyLimitBytes?: number;
  modules: Array<(app: FastifyInstance) => Promise<void> | void>;
  /** Load shedding: a check that names what is saturated (→ 503 OVERLOADED), and the Retry-After seconds. */
  shed?: { check: () => { saturated: string | null; closing?: boolean }; retryAfterS: number };
}

/** Never shed: health, metrics and the docs must answer exactly when the rest is busy. */
const NOT_SHED = /^\/(healthz|metrics|docs)(\/|\?|$)/;

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: options.logLevel ?? 'info', redact: ['req.headers.authorization'] },
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(given) ? given : randomUUID();
    },
    requestIdHeader: false,
    bodyLimit: options.bodyLimitBytes ?? 8 * 1024 * 1024,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    // With shedding, a closing server answers through the shed check (OVERLOADED in each route's envelope).
    return503OnClosing: !options.shed,
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // Every 503 (shedding, a closing server, a full queue) says when to come back.
    if (reply.statusCode === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', String(options.shed?.retryAfterS ?? 1));
  });
  const shed = options.shed;
  if (shed) {
    app.addHook('onRequest', async (request, reply) => {
      const { saturated, closing } = shed.check();
      if (closing) reply.header('connection', 'close');
      if (NOT_SHED.test(request.url) && !closing) return;
      if (saturated) throw overloaded(saturated);
    });
  }
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unknown';
    options.metrics.httpDuration.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  installErrorHandler(app);
  await app.register(swagger, {
    openapi: {
      info: { title: 'Custos API', description: '资金监管支付清结算平台 / payment, clearing and settlement for housing-fund supervision', version: '0.1.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/healthz', { schema: { hide: true } }, async (_request, reply) => {
    try {
      await sql`SELECT 1`.execute(options.db.kysely);
      return { status: 'ok', db: options.db.kind };
    } catch {
      return reply.status(503).send({ status: 'unavailable', db: options.db.kind });
    }
  });
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('content-type', options.metrics.registry.contentType);
    return options.metrics.registry.metrics();
  });
  for (const register of options.modules) await register(app);
  return app;
}
