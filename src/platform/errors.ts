// Expected failures are typed values with a stable code and an HTTP status; the one
// error handler (http/errors.ts) maps them to JSON. A broken invariant is not an
// AppError: it is an assertion that crashes (see assert.ts).

export class AppError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: unknown;
  constructor(code: string, status: number, message: string, details?: unknown) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

export const badRequest = (code: string, message: string, details?: unknown) =>
  new AppError(code, 400, message, details);
export const notFound = (code: string, message: string) => new AppError(code, 404, message);
/** Saturated (database pool or a queue full): retry later; nothing was written. */
export const overloaded = (message: string) =>
  new AppError('OVERLOADED', 503, `系统繁忙，请稍后重试 / overloaded, retry after the Retry-After seconds: ${message}`);
export const unauthorized = (message: string) => new AppError('UNAUTHORIZED', 401, message);
