// The account center's public surface. Other modules import only from here.
export { createLedger, type Ledger, type VerifyReport } from './ledger.service.ts';
export { ledgerRoutes } from './ledger.routes.ts';
export * from './types.ts';
