// Retries a database transaction that lost a race the database detected: a deadlock,
// a serialization failure, or a unique key taken by a concurrent writer. Bounded.
const RETRIABLE = new Set(['40001', '40P01', '23505']);

export function isRetriable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRIABLE.has(code);
}

export async function withRetry<T>(work: () => Promise<T>, attemptsMax = 8): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await work();
    } catch (error) {
      if (!isRetriable(error) || attempt >= attemptsMax) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, attempt * attempt)));
    }
  }
}
