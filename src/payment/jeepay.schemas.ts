// Response schemas of the merchant API: Jeepay's JSON types field by field, as the
// response models of its own Java SDK declare them (jeequan/jeepay-sdk-java 1.6.1;
// table in /work/shared/reference/jeepay-api.md, "Response field types"). A number
// where the model says Long/Integer/Byte, a string where it says String. Fields Custos
// adds beyond Jeepay's models (e.g. `appId`, `refundAmount` on the pay-order query)
// follow the same rule: amounts, states and timestamps (ms since epoch) are numbers.
//
// `data` keeps additionalProperties, so the serializer never drops a field the
// signature was computed over. The admin and ledger APIs are not Jeepay's and keep
// their own convention (amounts as strings of fen).

/** `id`: a number; receivers bound before ids became numeric keep their old text id (`D…`). */
export type WireType = 'string' | 'number' | 'decimal' | 'id';
export type FieldTypes = Record<string, WireType>;

const S = 'string' as const;
const N = 'number' as const;

/** The types of each answer's `data`, by endpoint. The conformance test checks real answers against these. */
export const RESPONSE_TYPES = {
  unifiedOrder: { payOrderId: S, mchOrderNo: S, payDataType: S, payData: S, errCode: S, errMsg: S, orderState: N },
  payQuery: {
    payOrderId: S, mchNo: S, appId: S, mchOrderNo: S, ifCode: S, wayCode: S, currency: S, clientIp: S, subject: S, body: S,
    channelOrderNo: S, errCode: S, errMsg: S, extParam: S, amount: N, state: N, createdAt: N, successTime: N, refundAmount: N,
  },
  close: { payOrderId: S, mchOrderNo: S, errCode: S, errMsg: S, orderState: N },
  refund: { refundOrderId: S, mchRefundNo: S, channelOrderNo: S, errCode: S, errMsg: S, payAmount: N, refundAmount: N, state: N },
  refundQuery: {
    refundOrderId: S, payOrderId: S, mchNo: S, appId: S, mchRefundNo: S, currency: S, channelOrderNo: S, errCode: S, errMsg: S,
    extParam: S, payAmount: N, refundAmount: N, state: N, createdAt: N, successTime: N,
  },
  transfer: {
    transferId: S, mchOrderNo: S, accountNo: S, accountName: S, bankName: S, channelOrderNo: S, channelResData: S, errCode: S,
    errMsg: S, amount: N, state: N,
  },
  transferQuery: {
    transferId: S, mchNo: S, appId: S, mchOrderNo: S, ifCode: S, entryType: S, currency: S, accountNo: S, accountName: S,
    bankName: S, transferDesc: S, channelExtra: S, channelOrderNo: S, channelResData: S, errCode: S, errMsg: S, extParam: S,
    amount: N, state: N, successTime: N, createdAt: N,
  },
  divisionBind: {
    receiverAlias: S, mchNo: S, appId: S, ifCode: S, accNo: S, accName: S, relationType: S, relationTypeName: S, channelExtInfo: S,
    errCode: S, errMsg: S, receiverId: 'id', receiverGroupId: N, accType: N, bindSuccessTime: N, bindState: N, divisionProfit: 'decimal',
  },
  divisionExec: { channelBatchOrderId: S, errCode: S, errMsg: S, state: N, payOrderId: S, divisions: S },
} satisfies Record<string, FieldTypes>;

export type ResponseKind = keyof typeof RESPONSE_TYPES;

function fieldSchema(type: WireType) {
  if (type === 'string') return { type: 'string' };
  if (type === 'decimal') return { type: 'number' };
  if (type === 'id') return { type: ['integer', 'string'] };
  return { type: 'integer' };
}

/** The 200 schema of one endpoint: Jeepay's envelope with typed `data`. */
export function responseSchema(kind: ResponseKind) {
  const properties: Record<string, unknown> = {};
  for (const [name, type] of Object.entries(RESPONSE_TYPES[kind] as FieldTypes)) properties[name] = fieldSchema(type);
  return {
    200: {
      type: 'object',
      properties: {
        code: { type: 'integer' }, msg: { type: 'string' }, sign: { type: 'string' },
        data: { type: 'object', properties, additionalProperties: true },
      },
    },
  };
}
