// Division (分账): receivers bound per app, and division of a paid order among them.
// Each receiver's share is amount × profit rounded down, so the shares never exceed
// what is left after refunds and earlier divisions; the postings are one linked
// chain (all or nothing) in the same transaction as the division rows.
import { transact, type Database } from '../platform/db.ts';
import { applyRate, isRate } from '../platform/money.ts';
import { randomInt } from 'node:crypto';
import { businessNo } from '../platform/ids.ts';
import * as repo from './payment.repo.ts';
import { paymentErrors } from './payment.errors.ts';
import type { Postings } from './postings.ts';
import { PAY_STATE } from './types.ts';

export interface BindInput {
  mchNo: string; appId: string; ifCode: string; receiverAlias: string | null; receiverGroupId: string | null; accType: number;
  accNo: string; accName: string | null; relationType: string | null; relationTypeName: string | null; divisionProfit: string;
}

export interface DivisionRequest {
  mchNo: string; appId: string; payOrderId: string | null; mchOrderNo: string | null; useSysAutoDivisionReceivers: boolean;
  receivers: Array<{ receiverId?: string; receiverGroupId?: string; divisionProfit?: string }>;
}

const RECEIVERS_MAX = 50;
const RECEIVER_ID_ATTEMPTS = 3;

/** Receiver ids are numbers on Jeepay's wire (Long): ms since epoch × 1000 + 3 random digits, 16 digits, below 2^53. */
export function receiverNo(nowMs: number = Date.now()): string {
  return String(nowMs * 1000 + randomInt(0, 1000));
}

export type DivisionService = ReturnType<typeof createDivisionService>;

export function createDivisionService(deps: { db: Database; postings: Postings }) {
  const { db, postings } = deps;

  async function bind(input: BindInput): Promise<repo.ReceiverRow> {
    if (!isRate(input.divisionProfit)) throw paymentErrors.invalidParam('divisionProfit 必须是 0 到 1 之间的小数，如 "0.03" / divisionProfit must be a decimal from 0 to 1, e.g. "0.03"');
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await insertReceiver(input, receiverNo());
      } catch (e) {
        if ((e as { code?: string }).code !== '23505' || attempt >= RECEIVER_ID_ATTEMPTS) throw e; // an id taken in the same millisecond: draw again
      }
    }
  }

  function insertReceiver(input: BindInput, receiverId: string): Promise<repo.ReceiverRow> {
    return repo.insertReceiver(db.kysely, {
      receiver_id: receiverId, mch_no: input.mchNo, app_id: input.appId, if_code: input.ifCode,
      receiver_alias: input.receiverAlias, receiver_group_id: input.receiverGroupId, acc_type: input.accType, acc_no: input.accNo,
      acc_name: input.accName, relation_type: input.relationType, relation_type_name: input.relationTypeName, division_profit: input.divisionProfit,
    });
  }

  async function execute(req: DivisionRequest) {
    if (req.receivers.length > RECEIVERS_MAX) throw paymentErrors.invalidParam(`最多 ${RECEIVERS_MAX} 个分账接收方 / at most ${RECEIVERS_MAX} receivers`);
    const bound = await repo.findReceivers(db.kysely, req.mchNo, req.appId);
    const chosen: Array<{ receiver: repo.ReceiverRow; profit: string }> = [];
    if (req.useSysAutoDivisionReceivers) {
      for (const r of bound) chosen.push({ receiver: r, profit: r.division_profit });
    }
    for (const item of req.receivers) {
      const matches = bound.filter((r) => (item.receiverId && r.receiver_id === item.receiverId) || (item.receiverGroupId && r.receiver_group_id === item.receiverGroupId));
      if (matches.length === 0) throw paymentErrors.receiverNotFound(`分账接收方不存在 / no receiver ${item.receiverId ?? item.receiverGroupId}`);
      if (item.divisionProfit !== undefined && !isRate(item.divisionProfit)) throw paymentErrors.invalidParam('divisionProfit must be a decimal from 0 to 1');
      for (const r of matches) if (!chosen.some((c) => c.receiver.receiver_id === r.receiver_id)) chosen.push({ receiver: r, profit: item.divisionProfit ?? r.division_profit });
    }
    if (chosen.length === 0) throw paymentErrors.invalidParam('没有分账接收方 / no receivers: bind some or pass receivers');

    return transact(db, async (tx) => {
      const order = req.payOrderId ? await repo.findPayOrder(tx, req.payOrderId, true)
        : await repo.findPayOrderByMchOrderNo(tx, req.mchNo, req.mchOrderNo as string).then((o) => (o ? repo.findPayOrder(tx, o.pay_order_id, true) : null));
      if (!order || order.mch_no !== req.mchNo) throw paymentErrors.orderNotFound(`订单不存在 / no order ${req.payOrderId ?? req.mchOrderNo}`);
      if (order.state !== PAY_STATE.success) throw paymentErrors.orderStateInvalid(`订单未支付成功，不能分账 / only paid orders can be divided (state ${order.state})`);
      const already = await repo.sumDivisions(tx, order.pay_order_id);
      const activeRefunds = await repo.sumActiveRefunds(tx, order.pay_order_id);
      const base = order.amount - activeRefunds;
      const parts = chosen.map((c) => ({ divisionId: businessNo('V'), receiverId: c.receiver.receiver_id, amount: applyRate(base, c.profit, 'down') }))
        .filter((p) => p.amount > 0n);
      const existing = new Set((await repo.listDivisions(tx, order.pay_order_id)).map((d) => d.receiver_id));
      const fresh = parts.filter((p) => !existing.has(p.receiverId));
      const total = fresh.reduce((sum, p) => sum + p.amount, 0n);
      if (already + total > base) {
        throw paymentErrors.divisionExceeds(`分账总额 ${already + total} 分超过可分金额 ${base} 分（已扣退款）/ division would exceed what is left after refunds`);
      }
      if (fresh.length > 0) {
        for (const p of fresh) await repo.insertDivision(tx, { division_id: p.divisionId, pay_order_id: order.pay_order_id, receiver_id: p.receiverId, amount: p.amount, state: 1 });
        const ok = await postings.divided(tx, { mchNo: order.mch_no, parts: fresh });
        if (!ok) throw paymentErrors.balanceInsufficient('商户待结算余额不足，无法分账 / the merchant balance is too low for this division');
        await repo.updatePayOrder(tx, order.pay_order_id, { division_state: 1 });
      }
      return { payOrderId: order.pay_order_id, divisions: await repo.listDivisions(tx, order.pay_order_id) };
    });
  }

  return { bind, execute };
}
