// Bearer-token protection for internal APIs (the ledger, admin). Constant-time compare.
import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { unauthorized } from '../errors.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function bearerGuard(token: string) {
  const expected = digest(token);
  return async (request: FastifyRequest) => {
    const header = request.headers.authorization;
    if (!header || !header.startsWith('Bearer ')) {
      throw unauthorized('缺少管理令牌 / missing "Authorization: Bearer <CUSTOS_ADMIN_TOKEN>"');
    }
    if (!timingSafeEqual(digest(header.slice(7)), expected)) {
      throw unauthorized('管理令牌错误 / the bearer token is wrong');
    }
  };
}
