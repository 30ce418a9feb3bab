// Assertions for invariants (TIGER_STYLE): a false assertion is a bug, never an
// operating error, so it throws and the caller must not catch it as a business case.

export class AssertionFailed extends Error {
  constructor(message: string) {
    super(`assertion failed: ${message}`);
    this.name = 'AssertionFailed';
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailed(message);
}
