// Admin API of deposits: bills, payment, counter entries, developer batches, household
// balances, top-ups, refunds; public receipt verification; Excel reports.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { badRequest } from '../../platform/errors.ts';
import type { Database } from '../../platform/db.ts';
import { cstDate } from '../../platform/time.ts';
import { canSeeUnit, forbidden, requireCenter, requireEstate, requireUnit, type Principal } from '../access.ts';
import { fenParam, idParam, security, textParam, toJson } from '../http.ts';
import * as reg from '../register/register.repo.ts';
import * as repo from './deposit.repo.ts';
import type { DepositService } from './deposit.service.ts';
import type { RegisterService } from '../register/register.service.ts';
import type { ReceiptService } from '../receipt/receipt.service.ts';
import type { Reports } from '../report/report.ts';
import { redactUrl } from '../h5/redact.ts';

const tags = ['maintenance fund · deposits 交存'];
const XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';
const REFUND_REASONS = ['demolition', 'duplicate_payment', 'mistaken_payment', 'cancelled_sale'] as const;

export function billJson(b: repo.BillRow, receipts: ReceiptService) {
  return toJson({
    id: b.id, unitId: b.unit_id, estateId: b.estate_id, city: b.city, kind: b.kind, amountFen: b.amount_fen, basis: b.basis, state: b.state,
    batchId: b.batch_id, paidVia: b.paid_via, paidRef: b.paid_ref, paidAt: b.paid_at, receiptNo: b.receipt_no, receiptCode: receipts.codeOf(b), createdAt: b.created_at,
  });
}

export function depositRoutes(deps: {
  db: Database; deposits: DepositService; register: RegisterService; receipts: ReceiptService; reports: Reports;
  guard: (r: FastifyRequest) => Promise<Principal>;
}) {
  const { deposits, register, receipts, reports, guard } = deps;
  const q = deps.db.kysely;

  async function billFor(p: Principal, id: string) {
    const bill = await deposits.getBill(idParam(id, 'id'));
    const unit = await reg.findUnit(q, bill.unit_id);
    requireUnit(p, unit as reg.UnitView);
    return bill;
  }
  const xlsx = (reply: FastifyReply, name: string, body: Buffer) =>
    reply.type(XLSX).header('content-disposition', `attachment; filename="${name}.xlsx"`).send(body);

  return async (app: FastifyInstance) => {
    app.post('/v1/fund/bills/generate', { schema: { tags, security, summary: '生成首期缴款通知书 / generate first-deposit bills for an estate, a building or units' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      const body = (request.body ?? {}) as { estateId?: unknown; buildingId?: unknown; unitIds?: unknown };
      const f: { estateId?: string; buildingId?: string; unitIds?: string[] } = {};
      if (body.estateId !== undefined) f.estateId = (await register.getEstate(idParam(body.estateId, 'estateId'))).id;
      if (body.buildingId !== undefined) f.buildingId = (await register.getBuilding(idParam(body.buildingId, 'buildingId'))).id;
      if (body.unitIds !== undefined) {
        if (!Array.isArray(body.unitIds) || body.unitIds.length === 0 || body.unitIds.length > 2000) throw badRequest('FUND_PARAM_INVALID', 'unitIds 须为 1–2000 个 id / unitIds must be 1–2000 ids');
        f.unitIds = body.unitIds.map((u, i) => idParam(u, `unitIds[${i}]`));
      }
      const out = await deposits.generateFirstBills(f, p.subject);
      return toJson({ created: out.created.length, existing: out.existing, skipped: out.skipped, amountFen: out.created.reduce((s, b) => s + b.amount_fen, 0n), billIds: out.created.map((b) => b.id) });
    });

    app.get('/v1/fund/bills', { schema: { tags, security, summary: '缴款通知书（按权限）/ bills you may see' } }, async (request) => {
      const p = await guard(request);
      const query = request.query as { estateId?: string; unitId?: string; state?: string; kind?: string };
      if (query.state !== undefined && !['unpaid', 'paid', 'cancelled'].includes(query.state)) throw badRequest('FUND_PARAM_INVALID', 'state 须为 unpaid/paid/cancelled');
      if (query.kind !== undefined && !['first_deposit', 'top_up'].includes(query.kind)) throw badRequest('FUND_PARAM_INVALID', 'kind 须为 first_deposit/top_up');
      let unitIds: string[] | undefined;
      if (query.unitId !== undefined) {
        const unit = await register.getUnit(idParam(query.unitId, 'unitId'));
        requireUnit(p, unit);
        unitIds = [unit.id];
      } else if (p.role === 'owner') unitIds = p.unitIds ?? [];
      else if (query.estateId !== undefined) requireEstate(p, idParam(query.estateId, 'estateId'));
      else if (p.role !== 'center') throw badRequest('FUND_PARAM_INVALID', '请指定 estateId 或 unitId / give estateId or unitId');
      const bills = await repo.listBills(q, { unitIds, estateId: query.estateId, state: query.state as repo.BillState | undefined, kind: query.kind as repo.BillKind | undefined }, 5000);
      return { bills: bills.map((b) => billJson(b, receipts)) };
    });

    app.get('/v1/fund/bills/:id', { schema: { tags, security, summary: '缴款通知书 / a bill' } }, async (request) => {
      const p = await guard(request);
      return billJson(await billFor(p, (request.params as { id: string }).id), receipts);
    });

    app.post('/v1/fund/bills/:id/pay', { schema: { tags, security, summary: '下单：返回支付中心收银台地址 / create (or reuse) the pay order; returns the cashier URL' } }, async (request) => {
      const p = await guard(request);
      const bill = await billFor(p, (request.params as { id: string }).id);
      return toJson(await deposits.payBill(bill.id, p));
    });

    app.post('/v1/fund/bills/:id/counter-payments', { schema: { tags, security, summary: '柜台/转账缴款录入（按银行流水号幂等）/ enter a bank counter or transfer payment (idempotent by bankRef)' } }, async (request, reply) => {
      const p = await guard(request);
      requireCenter(p);
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as { bankRef?: unknown; amountFen?: unknown; channel?: unknown };
      const channel = body.channel ?? 'counter';
      if (channel !== 'counter' && channel !== 'transfer') throw badRequest('FUND_PARAM_INVALID', 'channel 须为 counter 或 transfer');
      const out = await deposits.counterPayment(idParam(id, 'id'), { bankRef: textParam(body.bankRef, 'bankRef', 64), amountFen: fenParam(body.amountFen, 'amountFen'), channel }, p.subject);
      return reply.status(out.replayed ? 200 : 201).send({ replayed: out.replayed, bill: billJson(out.bill, receipts) });
    });

    app.post('/v1/fund/bills/:id/cancel', { schema: { tags, security, summary: '作废未缴的缴款通知书 / cancel an unpaid bill' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      return billJson(await deposits.cancelBill(idParam((request.params as { id: string }).id, 'id'), p.subject), receipts);
    });

    app.post('/v1/fund/batches', { schema: { tags, security, summary: '开发企业批量缴款（默认：小区未售房屋的全部待缴首期）/ a developer batch payment' } }, async (request, reply) => {
      const p = await guard(request);
      requireCenter(p);
      const body = (request.body ?? {}) as { estateId?: unknown; payer?: unknown; billIds?: unknown };
      let billIds: string[] | undefined;
      if (body.billIds !== undefined) {
        if (!Array.isArray(body.billIds)) throw badRequest('FUND_PARAM_INVALID', 'billIds 须为数组 / billIds must be an array');
        billIds = body.billIds.map((b, i) => idParam(b, `billIds[${i}]`));
      }
      const out = await deposits.createBatch({ estateId: idParam(body.estateId, 'estateId'), payer: textParam(body.payer, 'payer', 100), billIds }, p.subject);
      return reply.status(201).send(toJson(out));
    });

    app.get('/v1/fund/batches/:id', { schema: { tags, security, summary: '批量缴款 / a batch' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      return toJson(await deposits.getBatch(idParam((request.params as { id: string }).id, 'id')));
    });

    app.post('/v1/fund/batches/:id/pay', { schema: { tags, security, summary: '批量缴款重新下单 / a new pay order for an open batch' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      return toJson(await deposits.payBatch(idParam((request.params as { id: string }).id, 'id')));
    });

    app.get('/v1/fund/estates/:id/households', { schema: { tags, security, summary: '分户账余额（本金、利息分列）/ household balances, principal and interest apart' } }, async (request) => {
      const p = await guard(request);
      const { id } = request.params as { id: string };
      requireEstate(p, idParam(id, 'id'));
      const query = request.query as { buildingId?: string; after?: string };
      const rows = await deposits.balances({ estateId: id, buildingId: query.buildingId }, 5000, query.after ?? '');
      const totals = (await repo.rollup(q, 'estate', { estateId: id }))[0] ?? null;
      return toJson({ households: rows, totals });
    });

    app.get('/v1/fund/estates/:id/top-ups', { schema: { tags, security, summary: '续筹名单：本金低于首期 30%（按城市配置）/ households below the top-up threshold' } }, async (request) => {
      const p = await guard(request);
      const { id } = request.params as { id: string };
      requireEstate(p, idParam(id, 'id'));
      return toJson(await deposits.topUpCandidates(id));
    });

    app.post('/v1/fund/estates/:id/top-ups', { schema: { tags, security, summary: '生成续筹缴款通知书（按差额/按标准）/ generate top-up bills (difference or standard × coefficient)' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as { mode?: unknown; coefficient?: unknown };
      if (body.mode !== 'difference' && body.mode !== 'standard') throw badRequest('FUND_PARAM_INVALID', 'mode 须为 difference 或 standard');
      const out = await deposits.generateTopUps({ estateId: idParam(id, 'id'), mode: body.mode, coefficient: typeof body.coefficient === 'string' ? body.coefficient : undefined }, p.subject);
      return toJson({ created: out.created.length, existing: out.existing, skipped: out.skipped, bills: out.created.map((b) => ({ id: b.id, unitId: b.unit_id, amountFen: b.amount_fen })) });
    });

    app.post('/v1/fund/units/:id/refunds', { schema: { tags, security, summary: '退还：拆迁/退房退全部余额，多缴误缴退指定本金 / refund a household balance' } }, async (request, reply) => {
      const p = await guard(request);
      requireCenter(p);
      const { id } = request.params as { id: string };
      const body = (request.body ?? {}) as { requestKey?: unknown; reason?: unknown; note?: unknown; payee?: unknown; principalFen?: unknown };
      if (!(REFUND_REASONS as readonly unknown[]).includes(body.reason)) throw badRequest('FUND_PARAM_INVALID', `reason 须为 ${REFUND_REASONS.join('/')}`);
      await register.getUnit(idParam(id, 'id'));
      const out = await deposits.refund(id, {
        requestKey: textParam(body.requestKey, 'requestKey', 64), reason: body.reason as (typeof REFUND_REASONS)[number], note: textParam(body.note, 'note', 500),
        payee: textParam(body.payee, 'payee', 100), principalFen: body.principalFen === undefined ? undefined : fenParam(body.principalFen, 'principalFen'),
      }, p.subject);
      return reply.status(out.replayed ? 200 : 201).send({ replayed: out.replayed, refund: toJson(out.refund) });
    });

    app.get('/v1/fund/duplicates', { schema: { tags, security, summary: '重复支付（钱在基金商户待结算，需经支付中心退款）/ duplicate payments to refund through the payment center' } }, async (request) => {
      const p = await guard(request);
      requireCenter(p);
      return { duplicates: toJson(await repo.listDuplicateLinks(q, 1000)) };
    });

    // --- receipts (public) ----------------------------------------------------------------
    app.get('/v1/fund/receipts/:no', { logSerializers: { req: redactUrl }, schema: { tags, summary: '票据验真：票据号+金额+校验码 / verify a receipt by number, amount and check code' } }, async (request) => {
      const { no } = request.params as { no: string };
      const query = request.query as { amountFen?: string; code?: string };
      return deps.receipts.verify(no, fenParam(query.amountFen, 'amountFen'), textParam(query.code, 'code', 32));
    });

    app.get('/v1/fund/receipts/:no/pdf', { logSerializers: { req: redactUrl }, schema: { tags, summary: '票据 PDF（需校验码）/ the receipt PDF (needs the check code)' } }, async (request, reply) => {
      const { no } = request.params as { no: string };
      const query = request.query as { code?: string };
      const pdf = await deps.receipts.pdf(no, textParam(query.code, 'code', 32));
      return reply.type('application/pdf').header('content-disposition', `inline; filename="${no}.pdf"`).send(pdf);
    });

    // --- reports (Excel) ------------------------------------------------------------------
    app.get('/v1/fund/reports/estates/:id', { schema: { tags, security, summary: '小区对账单（Excel）/ estate statement (.xlsx)' } }, async (request, reply) => {
      const p = await guard(request);
      const id = idParam((request.params as { id: string }).id, 'id');
      requireEstate(p, id);
      return xlsx(reply, `estate-${id}`, await reports.estateStatement(id));
    });
    app.get('/v1/fund/reports/buildings/:id', { schema: { tags, security, summary: '幢对账单（Excel）/ building statement (.xlsx)' } }, async (request, reply) => {
      const p = await guard(request);
      const b = await register.getBuilding(idParam((request.params as { id: string }).id, 'id'));
      requireEstate(p, b.estate_id);
      return xlsx(reply, `building-${b.id}`, await reports.buildingStatement(b.id));
    });
    app.get('/v1/fund/reports/units/:id', { schema: { tags, security, summary: '分户账明细（Excel）/ unit statement (.xlsx)' } }, async (request, reply) => {
      const p = await guard(request);
      const unit = await register.getUnit(idParam((request.params as { id: string }).id, 'id'));
      if (!canSeeUnit(p, unit)) throw forbidden();
      return xlsx(reply, `unit-${unit.id}`, await reports.unitStatement(unit.id));
    });
    app.get('/v1/fund/reports/daily', { schema: { tags, security, summary: '维修资金日报（Excel，北京时间）/ the fund\'s daily summary (.xlsx)' } }, async (request, reply) => {
      const p = await guard(request);
      requireCenter(p);
      const date = (request.query as { date?: string }).date ?? cstDate(new Date());
      return xlsx(reply, `fund-daily-${date}`, await reports.dailySummary(date));
    });
  };
}
