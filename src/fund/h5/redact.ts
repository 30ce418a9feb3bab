// Receipt check codes (and any other one-time secret in a query) must not reach the
// logs: the request serializer for the receipt routes logs the URL with them masked.
import type { FastifyRequest } from 'fastify';

const SECRET_PARAMS = /([?&](?:code|checkCode|votingCode|smsCode)=)[^&#]*/gi;

export const redactQuery = (url: string): string => url.replace(SECRET_PARAMS, '$1[REDACTED]');

/** A pino `req` serializer: Fastify's default fields, with the URL's secrets masked. */
export function redactUrl(request: FastifyRequest) {
  return {
    method: request.method, url: redactQuery(request.url), host: request.host,
    remoteAddress: request.ip, remotePort: request.socket?.remotePort,
  };
}
