// The fund's use and yield side: repair applications, votes, approvals, holds, payout
// (use.service.ts) and interest allocation (../interest). Wiring: A's src/fund/index.ts
// (or server.ts) calls createFundUse / createFundInterest and adds fundUseRoutes(...).
export { createFundUse, type FundUse, FUND_USE_TRANSFER_CODE, EMERGENCY_CATEGORIES } from './use.service.ts';
export { createFundInterest, type FundInterest, FUND_INTEREST_TRANSFER_CODE } from '../interest/interest.service.ts';
export { fundUseRoutes, type FundUseRouteDeps } from './use.routes.ts';
