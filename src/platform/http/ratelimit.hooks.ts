// Per-IP request-rate limits, checked in onRequest (before the body is read): the
// merchant API (/api/…, answered in Jeepay's envelope), the owners' H5 pages and the
// cashier (/h5/…, /cashier/…), and, tighter, the sign-in routes. Channel callbacks
// (/api/channel/…) are not limited here: channels retry and come from few addresses.
// The IP is Fastify's request.ip (the socket's peer unless trustProxy is configured).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RateConfig } from '../config.ts';
import { rateLimited, type RateLimiter } from '../ratelimit.ts';

interface Rule { kind: string; what: string; points: number; windowS: number; jeepay: boolean }

/** Sign-in and one-time-code routes of the H5 pages (owner login, SMS or voting codes). */
const SIGN_IN = /^\/h5\/[^?]*\/(login|sign-?in|otp|sms[-a-z]*|codes?)$/;

export function rulesFor(rate: RateConfig, method: string, path: string): Rule[] {
  if (path.startsWith('/api/channel/')) return [];
  if (path.startsWith('/api/')) return [{ kind: 'ip-api', what: 'IP', points: rate.apiIpPerS * rate.windowS, windowS: rate.windowS, jeepay: true }];
  const rules: Rule[] = [];
  if (method === 'POST' && SIGN_IN.test(path)) rules.push({ kind: 'ip-signin', what: '登录 / sign-in', points: rate.signInIpPerMin, windowS: 60, jeepay: false });
  if (path.startsWith('/h5/') || path === '/h5' || path.startsWith('/cashier/')) rules.push({ kind: 'ip-h5', what: 'IP', points: rate.h5IpPerMin, windowS: 60, jeepay: false });
  return rules;
}

export function ipRateLimits(limiter: RateLimiter, rate: RateConfig) {
  return async (app: FastifyInstance) => {
    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      // The matched route's pattern when there is one (an encoded or odd spelling of a
      // path cannot slip past its bucket), else the raw path.
      const path = request.routeOptions.url ?? request.url.split('?', 1)[0];
      for (const rule of rulesFor(rate, request.method, path)) {
        let outcome;
        try {
          outcome = await limiter.hit(rule.kind, request.ip, rule.points, rule.windowS);
        } catch (error) {
          // A broken limiter store must not take the API down: count nothing, say so.
          request.log.error({ err: error }, 'rate limiter failed; request let through');
          return;
        }
        if (outcome.ok) continue;
        const err = rateLimited(`${rule.what} ${request.ip}`, outcome.retryAfterMs);
        reply.header('retry-after', String(err.retryAfterS));
        const body = rule.jeepay
          ? { code: 9999, msg: err.message, errCode: err.code, message: err.message, requestId: request.id }
          : { code: err.code, message: err.message, requestId: request.id };
        return reply.status(429).send(body);
      }
    });
  };
}
