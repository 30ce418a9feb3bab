// The channel contract: what the payment center needs from any payment channel
// (WeChat Pay, Alipay, UnionPay, a bank, the sandbox). An adapter speaks the
// channel's own protocol and signatures and answers in these terms. Operating errors
// (timeouts, 5xx, refused connections) throw ChannelUnavailable; business refusals
// come back as a 'failed' status with the channel's code and message.
//
// A channel notification is only a trigger. Whatever it says — even correctly signed,
// since a signing key can leak — is never applied: the platform asks the channel
// itself (queryOrder / queryRefund / queryTransfer, over the adapter's authenticated
// API) and acts on that answer (confirmNotification below). Every adapter gets this
// for free, and none can opt out: parseNotification yields no state to apply.

export type ChannelPayStatus = 'paying' | 'success' | 'failed' | 'closed' | 'not_found';
export type ChannelAsyncStatus = 'processing' | 'success' | 'failed' | 'not_found';

export interface ChannelOrderInput {
  payOrderId: string;
  amountFen: bigint;
  currency: string;
  subject: string;
  body: string;
  wayCode: string;
  clientIp: string | null;
  channelExtra: Record<string, unknown> | null;
  expireSeconds: number;
  notifyUrl: string;
}

export interface ChannelOrderResult {
  status: 'paying' | 'success' | 'failed';
  channelOrderNo: string | null;
  payDataType: 'payUrl' | 'codeUrl' | 'form' | 'none';
  payData: string | null;
  errCode: string | null;
  errMsg: string | null;
}

export interface ChannelOrderState {
  status: ChannelPayStatus;
  channelOrderNo: string | null;
  amountFen: bigint | null;
  successAt: Date | null;
  channelUser: string | null;
}

export interface ChannelRefundInput {
  refundOrderId: string;
  payOrderId: string;
  channelOrderNo: string | null;
  payAmountFen: bigint;
  refundAmountFen: bigint;
  reason: string;
  notifyUrl: string;
}

export interface ChannelTransferInput {
  transferId: string;
  amountFen: bigint;
  entryType: string;
  accountNo: string;
  accountName: string | null;
  bankName: string | null;
  desc: string;
  notifyUrl: string;
}

export interface ChannelAsyncState {
  status: ChannelAsyncStatus;
  channelNo: string | null;
  amountFen: bigint | null;
  successAt: Date | null;
  errCode: string | null;
  errMsg: string | null;
}

/** A channel notification after its signature was verified: which record to ask the channel about. */
export interface ChannelNotification {
  eventId: string;
  kind: 'pay' | 'refund' | 'transfer';
  /** Our id: payOrderId, refundOrderId or transferId. */
  refId: string;
  /** What the notification says, for logs only: never applied (see confirmNotification). */
  claimed: { status: 'success' | 'failed' | 'closed'; channelNo: string | null; amountFen: bigint | null };
}

/** The channel's own answer about the record a notification names. */
export type ConfirmedState =
  | { kind: 'pay'; state: ChannelOrderState }
  | { kind: 'refund'; state: ChannelAsyncState }
  | { kind: 'transfer'; state: ChannelAsyncState };

/**
 * Asks the channel about the record a notification names: the one way a notification
 * leads to a state change. Throws ChannelUnavailable when the channel cannot answer
 * (the channel retries its notification; polling asks again anyway).
 */
export async function confirmNotification(adapter: ChannelAdapter, n: Pick<ChannelNotification, 'kind' | 'refId'>): Promise<ConfirmedState> {
  if (n.kind === 'pay') return { kind: 'pay', state: await adapter.queryOrder(n.refId) };
  if (n.kind === 'refund') return { kind: 'refund', state: await adapter.queryRefund(n.refId) };
  return { kind: 'transfer', state: await adapter.queryTransfer(n.refId) };
}

export interface ChannelStatementRequest {
  billDate: string; // YYYY-MM-DD
  format: 'wechat' | 'alipay';
  billType?: 'ALL' | 'SUCCESS' | 'REFUND';
}

export interface ChannelAdapter {
  readonly ifCode: string;
  readonly wayCodes: readonly string[];
  createOrder(input: ChannelOrderInput): Promise<ChannelOrderResult>;
  queryOrder(payOrderId: string): Promise<ChannelOrderState>;
  closeOrder(payOrderId: string): Promise<ChannelOrderState>;
  refund(input: ChannelRefundInput): Promise<ChannelAsyncState>;
  queryRefund(refundOrderId: string): Promise<ChannelAsyncState>;
  transfer(input: ChannelTransferInput): Promise<ChannelAsyncState>;
  queryTransfer(transferId: string): Promise<ChannelAsyncState>;
  /**
   * Verifies and parses a notification; throws ChannelSignatureInvalid when forged.
   * The result only names a record: the platform then queries the channel about it.
   */
  parseNotification(headers: Record<string, string | string[] | undefined>, rawBody: string): ChannelNotification;
  /** The answer the channel expects when a notification was taken. */
  notificationAck(): { contentType: string; body: string };
  downloadStatement(request: ChannelStatementRequest): Promise<Buffer>;
  health(): Promise<boolean>;
  /** False while the adapter would refuse calls at once (its circuit breaker is open); absent = always. */
  available?(): boolean;
}

export class ChannelUnavailable extends Error {
  readonly ifCode: string;
  constructor(ifCode: string, message: string) {
    super(`channel ${ifCode} unavailable: ${message}`);
    this.name = 'ChannelUnavailable';
    this.ifCode = ifCode;
  }
}

export class ChannelSignatureInvalid extends Error {
  readonly ifCode: string;
  constructor(ifCode: string) {
    super(`channel ${ifCode}: notification signature is invalid`);
    this.name = 'ChannelSignatureInvalid';
    this.ifCode = ifCode;
  }
}
