// The payment center's vocabulary: Jeepay's state codes, way codes and our ledger
// codes for payment movements.

/** Pay order states (Jeepay): 0 created, 1 paying, 2 success, 3 failed, 4 cancelled, 5 refunded, 6 closed. */
export const PAY_STATE = { created: 0, paying: 1, success: 2, failed: 3, cancelled: 4, refunded: 5, closed: 6 } as const;
/** Refund and transfer states (Jeepay): 0 created, 1 in progress, 2 success, 3 failed, 4 closed. */
export const ASYNC_STATE = { created: 0, processing: 1, success: 2, failed: 3, closed: 4 } as const;

export const WAY_CODES = [
  'QR_CASHIER', 'AUTO_BAR', 'WX_JSAPI', 'WX_LITE', 'WX_NATIVE', 'WX_H5', 'WX_APP', 'WX_BAR', 'ALI_JSAPI', 'ALI_QR', 'ALI_WAP',
  'ALI_PC', 'ALI_APP', 'ALI_BAR', 'YSF_BAR', 'YSF_JSAPI', 'UP_QR', 'UP_WAP', 'UP_B2B',
] as const;
export type WayCode = (typeof WAY_CODES)[number];
/** Ways the payer chooses from on the H5 cashier page. */
export const CASHIER_WAYS: Array<{ wayCode: WayCode; label: string }> = [
  { wayCode: 'WX_H5', label: '微信支付 / WeChat Pay' },
  { wayCode: 'ALI_WAP', label: '支付宝 / Alipay' },
  { wayCode: 'UP_WAP', label: '云闪付 / UnionPay' },
];
export const ENTRY_TYPES = ['WX_CASH', 'ALIPAY_CASH', 'BANK_CARD'] as const;

/** The ledger for CNY, and the account and transfer codes the payment center posts with. */
export const LEDGER_CNY = 1;
export const ACCOUNT_CODE = {
  channel_clearing: 1001, // 渠道在途 (debit normal)
  merchant_pending: 2001, // 商户待结算 (credit normal)
  division_receiver: 2201, // 分账接收方 (credit normal)
} as const;
export const TRANSFER_CODE = { payment: 101, refund: 102, payout: 103, division: 104 } as const;

export const accountIds = {
  channelClearing: (ifCode: string) => `ch:${ifCode}:clearing`,
  merchantPending: (mchNo: string) => `mch:${mchNo}:pending`,
  receiver: (receiverId: string) => `rcv:${receiverId}`,
};

export const AMOUNT_MAX_FEN = 100_000_000_000n; // 10 亿元 per order: far above any housing payment
export const EXPIRE_SECONDS_DEFAULT = 7200;
export const EXPIRE_SECONDS_MAX = 3 * 86400;

/**
 * Amounts on Jeepay's wire are JSON numbers (its SDK models say Long). Every amount is
 * capped (AMOUNT_MAX_FEN) far below 2^53 fen, so the number is exact in every JSON parser.
 */
export function fenNumber(fen: bigint): number {
  if (fen > BigInt(Number.MAX_SAFE_INTEGER) || fen < -BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`amount ${fen} fen is not exact as a JSON number`);
  return Number(fen);
}
