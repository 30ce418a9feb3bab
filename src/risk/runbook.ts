// The monitors and the on-call runbook line each alert carries (docs/risk.md explains them).

export const RUNBOOK = {
  payment_posting: '支付成功的订单没有恰好一笔等额入账：停止该商户结算（已自动冻结），用 GET /v1/ledger/verify 与 /v1/admin/pay-orders/{id} 核对，查库表改动审计；补记或冲正后释放冻结 / a paid order lacks exactly one posting of its amount: settlement is held; compare the order with the ledger, find who changed the data, correct, then release the hold',
  refund_overrun: '退款超过实付：该商户结算已冻结；向渠道查询退款真实状态，追回多退资金，核对 pay_refunds 被谁改动 / refunds exceed what was paid: settlement is held; query the channel for the real refunds, recover the excess, find the change',
  payout_settlement: '结算出款与结算单不符：暂停出款（POST 确认前勿再出款），核对银行回单与结算单，差额向银行/商户追回 / a payout differs from its settlement: stop payouts, compare the bank receipt with the settlement, recover the difference',
  fund_balance: '维修资金分户账合计与专户银行余额不符：暂停该城市的使用划拨，核对专户银行流水（recon 监管户对账）与分户账 / household balances do not sum to the supervision account: pause fund payouts for the city, reconcile the bank statement against the households',
  ledger_invariant: '账本不平或账户余额与流水不符：立即停止写入（维护模式），运行 GET /v1/ledger/verify，按不符账户排查；不要手工改余额 / the ledger is unbalanced or an account disagrees with its transfers: stop writes, run /v1/ledger/verify, investigate the accounts listed; never patch balances by hand',
  stuck_work: '通知/退款/出款超出计划仍未完成：检查后台任务（pg-boss、轮询）是否在运行、渠道是否可用，必要时手工查询或重发 / a notification, refund or payout is overdue: check the workers and the channel, then query or resend by hand',
  rule_hold: '风控规则命中，订单已支付但结算冻结待审：核实付款人与商户交易，确认正常后释放冻结（settlement holds），否则退款并加入黑名单 / a risk rule matched: the order paid but its settlement is held for review; release the hold if genuine, else refund and block',
} as const;

export type MonitorName = keyof typeof RUNBOOK;
