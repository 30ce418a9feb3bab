// The one error handler: every error leaves as JSON { code, message, requestId } with
// the right status. Expected errors are AppErrors; Fastify's own (bad JSON, schema
// validation, body too large) are mapped to stable codes; anything else is a 500
// whose details stay in the log.
import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError } from '../errors.ts';
import { retryAfterOf } from '../ratelimit.ts';

const FASTIFY_CODES: Record<string, { code: string; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'INVALID_JSON', message: '请求体不是合法的 JSON / the body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'INVALID_JSON', message: '请求体为空 / the JSON body is empty' },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'BODY_TOO_LARGE', message: '请求体过大 / the body is too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { code: 'UNSUPPORTED_MEDIA_TYPE', message: '不支持的 Content-Type / send application/json' },
};

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | AppError, request, reply) => {
    const requestId = request.id;
    if (error instanceof AppError) {
      const retryAfterS = retryAfterOf(error);
      if (retryAfterS !== null) reply.header('retry-after', String(retryAfterS));
      return reply.status(error.status).send({ code: error.code, message: error.message, requestId, ...(error.details ? { details: error.details } : {}) });
    }
    const fe = error as FastifyError;
    if (fe.validation) {
      return reply.status(400).send({ code: 'INVALID_REQUEST', message: `请求格式错误 / invalid request: ${fe.message}`, requestId });
    }
    const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
    if (mapped) return reply.status(fe.statusCode ?? 400).send({ ...mapped, requestId });
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      return reply.status(fe.statusCode).send({ code: 'BAD_REQUEST', message: fe.message, requestId });
    }
    request.log.error({ err: error }, 'unhandled error');
    return reply.status(500).send({ code: 'INTERNAL', message: '服务器内部错误 / internal error; quote the requestId', requestId });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ code: 'ROUTE_NOT_FOUND', message: `没有这个接口 / no route ${request.method} ${request.url}`, requestId: request.id });
  });
}
