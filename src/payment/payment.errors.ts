// Expected failures of the merchant API, each with a stable code, an HTTP status and
// a message that says what to fix (Chinese first). Routes send them in Jeepay's
// envelope: {"code":9999,"msg":…,"errCode":CODE,"requestId":…}.
import { AppError } from '../platform/errors.ts';

const make = (code: string, status: number) => (message: string) => new AppError(code, status, message);

export const paymentErrors = {
  invalidParam: make('PARAM_INVALID', 400),
  missingParam: make('PARAM_MISSING', 400),
  invalidAmount: make('AMOUNT_INVALID', 400),
  unknownWay: make('WAY_CODE_UNSUPPORTED', 400),
  signMissing: make('SIGN_MISSING', 401),
  signInvalid: make('SIGN_INVALID', 401),
  reqTimeInvalid: make('REQ_TIME_INVALID', 401),
  appNotFound: make('APP_NOT_FOUND', 401),
  ipNotAllowed: make('IP_NOT_ALLOWED', 403),
  duplicateOrderNo: make('MCH_ORDER_NO_CONFLICT', 409),
  duplicateRefundNo: make('MCH_REFUND_NO_CONFLICT', 409),
  orderNotFound: make('ORDER_NOT_FOUND', 404),
  refundNotFound: make('REFUND_NOT_FOUND', 404),
  transferNotFound: make('TRANSFER_NOT_FOUND', 404),
  receiverNotFound: make('RECEIVER_NOT_FOUND', 404),
  orderStateInvalid: make('ORDER_STATE_INVALID', 409),
  refundExceeds: make('REFUND_AMOUNT_EXCEEDS', 409),
  balanceInsufficient: make('BALANCE_INSUFFICIENT', 409),
  divisionExceeds: make('DIVISION_AMOUNT_EXCEEDS', 409),
  channelUnavailable: make('CHANNEL_UNAVAILABLE', 502),
  notifyUrlForbidden: make('NOTIFY_URL_FORBIDDEN', 400),
  merchantNotFound: make('MERCHANT_NOT_FOUND', 404),
};
