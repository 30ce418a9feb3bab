// The HTTP application: Fastify with request ids, pino logs, OpenAPI at /docs, health
// at /healthz, Prometheus metrics at /metrics, and the one error handler. Modules
// register their routes through the `modules` list.
import { createHash, randomUUID } from 'node:crypto';
import helmet from 'helmet';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { sql, type Database } from '../db.ts';
import type { Metrics } from '../metrics.ts';
import { installErrorHandler } from './errors.ts';
import { installCharacterCheck, MULTILINE } from './characters.ts';
import { recordRoutes } from './routes.ts';
import { overloaded } from '../errors.ts';

export interface AppOptions {
  db: Database;
  metrics: Metrics;
  logLevel?: string;
  bodyLimitBytes?: number;
  modules: Array<(app: FastifyInstance) => Promise<void> | void>;
  /** Guards /metrics (a bearer token: CUSTOS_METRICS_TOKEN, else the admin token); unset = open (tests of the bare app). */
  metricsGuard?: (request: FastifyRequest) => Promise<void>;
  /** Load shedding: a check that names what is saturated (→ 503 OVERLOADED), and the Retry-After seconds. */
  shed?: { check: () => { saturated: string | null; closing?: boolean }; retryAfterS: number };
}

const CSP_DIRECTIVES = {
  defaultSrc: ["'self'"], baseUri: ["'self'"], objectSrc: ["'none'"], frameAncestors: ["'none'"], imgSrc: ["'self'", 'data:'],
  fontSrc: ["'self'", 'data:'], scriptSrc: ["'self'"], styleSrc: ["'self'"], scriptSrcAttr: ["'none'"],
};
const INLINE_BLOCK = /<(style|script)(\s[^>]*)?>([\s\S]*?)<\/\1>/gi;
const INLINE_BLOCKS_MAX = 32;

/** The policy for one HTML page: the directives plus the sha256 of each inline style/script block it carries. */
export function cspFor(html: string): string {
  const styles: string[] = [];
  const scripts: string[] = [];
  let n = 0;
  for (const m of html.matchAll(INLINE_BLOCK)) {
    if (++n > INLINE_BLOCKS_MAX) break;
    if (m[1].toLowerCase() === 'script' && /\ssrc=/i.test(m[2] ?? '')) continue;
    const hash = `'sha256-${createHash('sha256').update(m[3], 'utf8').digest('base64')}'`;
    (m[1].toLowerCase() === 'style' ? styles : scripts).push(hash);
  }
  const d = CSP_DIRECTIVES;
  return [
    `default-src ${d.defaultSrc.join(' ')}`, `base-uri ${d.baseUri.join(' ')}`, `object-src ${d.objectSrc.join(' ')}`,
    `frame-ancestors ${d.frameAncestors.join(' ')}`, `img-src ${d.imgSrc.join(' ')}`, `font-src ${d.fontSrc.join(' ')}`,
    `script-src ${[...d.scriptSrc, ...new Set(scripts)].join(' ')}`, `style-src ${[...d.styleSrc, ...new Set(styles)].join(' ')}`,
    `script-src-attr ${d.scriptSrcAttr.join(' ')}`,
  ].join('; ');
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
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, keywords: [MULTILINE] } },
    // With shedding, a closing server answers through the shed check (OVERLOADED in each route's envelope).
    return503OnClosing: !options.shed,
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // Every 503 (shedding, a closing server, a full queue) says when to come back.
    if (reply.statusCode === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', String(options.shed?.retryAfterS ?? 1));
  });
  // Security headers on every response (Referrer-Policy no-referrer, nosniff, frame
  // ancestors none, …) and a strict content security policy; HTML pages get the hashes of
  // their own inline <style>/<script> blocks added to it, and a charset.
  // helmet's middleware is built once here: @fastify/helmet rebuilds it (and re-parses the
  // policy) on every request, which cost about 5% of the merchant API's throughput.
  const securityHeaders = helmet({
    contentSecurityPolicy: { useDefaults: false, directives: CSP_DIRECTIVES },
    crossOriginEmbedderPolicy: false,
    strictTransportSecurity: false, // set by the TLS-terminating proxy, which knows whether HTTPS is in front
  });
  app.addHook('onRequest', (request, reply, done) => {
    securityHeaders(request.raw, reply.raw, (error?: unknown) => done(error as Error | undefined));
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    const type = String(reply.getHeader('content-type') ?? '');
    if (!type.startsWith('text/html')) return payload;
    if (!/charset=/i.test(type)) reply.header('content-type', `${type.split(';')[0]}; charset=utf-8`);
    if (typeof payload === 'string') reply.header('content-security-policy', cspFor(payload));
    return payload;
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
  // Before any route: strings no field can hold (NUL, controls, lone surrogates) are a 400.
  installCharacterCheck(app);
  recordRoutes(app);
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
  app.get('/metrics', { schema: { hide: true }, ...(options.metricsGuard ? { onRequest: options.metricsGuard } : {}) }, async (_request, reply) => {
    reply.header('content-type', options.metrics.registry.contentType);
    return options.metrics.registry.metrics();
  });
  for (const register of options.modules) await register(app);
  return app;
}
