// Clearing and settlement (清结算): what other modules use.
export { createSettlementService, SETTLE_QUEUE, CATEGORIES, type SettlementService, type RunResult } from './settlement.service.ts';
export { settlementRoutes } from './settlement.routes.ts';
export { settleAccountIds, SETTLE_ACCOUNT_CODE, SETTLE_TRANSFER_CODE } from './postings.ts';
