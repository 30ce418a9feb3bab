// Pure calculations of the maintenance fund's use side: no I/O, bigint money.
export * from './errors.ts';
export * from './apportion.ts';
export * from './interest.ts';
export * from './vote.ts';
export * from './chain.ts';
