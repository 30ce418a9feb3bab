// HTTP routes of the fund's use and yield side: thin — resolve the principal, call one
// use case, format. Scoping (a property company sees its estates; the center sees all)
// is in the services through A's access helpers.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Principal } from '../access.ts';
import type { FundUse } from './use.service.ts';
import type { FundInterest } from '../interest/interest.service.ts';
import type * as repo from './use.repo.ts';
import type * as irepo from '../interest/interest.repo.ts';
import { fenToYuan } from '../../platform/money.ts';

const security = [{ bearer: [] }];
const tags = ['maintenance fund: use'];
const itags = ['maintenance fund: interest'];

/** bigint → string, Date → ISO, recursively. */
export function json(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
}

export function applicationView(use: FundUse, a: repo.ApplicationRow) {
  return json({
    id: a.id, requestKey: a.request_key, city: a.city, estateId: a.estate_id, scope: a.scope_kind, buildingId: a.building_id, stair: a.stair,
    title: a.title, description: a.description, items: a.items, budgetFen: a.budget_fen, budgetYuan: fenToYuan(a.budget_fen),
    contractor: { name: a.contractor_name, accountNo: a.contractor_account, bankName: a.contractor_bank },
    applicantRole: a.applicant_role, applicant: a.applicant, emergency: a.emergency, emergencyCategory: a.emergency_category,
    status: a.status, node: a.status === 'reviewing' ? a.chain[a.chain_node as number] : null, state: use.statusName(a),
    voteResult: a.vote_result, version: a.version, createdAt: a.created_at, updatedAt: a.updated_at,
  });
}

export function batchView(b: irepo.BatchRow) {
  return json({
    id: b.id, city: b.city, period: b.period, fromDate: b.from_date, toDateExclusive: b.to_date, amountFen: b.amount_fen,
    amountYuan: fenToYuan(b.amount_fen), households: b.households, totalWeight: b.total_weight, operator: b.operator, createdAt: b.created_at,
  });
}

export interface FundUseRouteDeps {
  use: FundUse;
  interest: FundInterest;
  /** A's fundGuard(…): resolves the bearer token to a principal or throws 401. */
  guard: (request: FastifyRequest) => Promise<Principal>;
}

export function fundUseRoutes(deps: FundUseRouteDeps) {
  const { use, interest, guard } = deps;
  return async (app: FastifyInstance) => {
    const id = (r: FastifyRequest) => (r.params as { id: string }).id;
    const q = (r: FastifyRequest) => r.query as Record<string, string | undefined>;

    app.post('/v1/fund/applications', { schema: { tags, security, summary: '提出支用申请 / apply to use the fund for a repair (idempotent by requestKey)' } }, async (request, reply) => {
      const a = await use.create(await guard(request), request.body);
      return reply.status(201).send(applicationView(use, a));
    });
    app.get('/v1/fund/applications', { schema: { tags, security, summary: '支用申请列表 / applications in scope' } }, async (request) => {
      const rows = await use.list(await guard(request), { estateId: q(request).estateId, status: q(request).status });
      return { applications: rows.map((a) => applicationView(use, a)) };
    });
    app.get('/v1/fund/applications/publications', { schema: { tags, security, summary: '应急使用公示 / published emergency uses' } }, async (request) => {
      const rows = await use.publications(await guard(request), { estateId: q(request).estateId });
      return { publications: json(rows.map((r) => ({ id: r.id, applicationId: r.application_id, city: r.city, estateId: r.estate_id, kind: r.kind, title: r.title, body: r.body, publishedAt: r.published_at }))) };
    });
    app.put('/v1/fund/applications/rules/:city', { schema: { tags, security, summary: '城市支取规则 / a city\'s draw rule (principal_only | interest_first)' } }, async (request) => {
      return use.setDrawRule(await guard(request), (request.params as { city: string }).city, request.body);
    });
    app.get('/v1/fund/applications/:id', { schema: { tags, security, summary: '支用申请详情 / an application with its units, votes, tally, trail and payout' } }, async (request) => {
      const d = await use.detail(await guard(request), id(request));
      return {
        application: applicationView(use, d.application),
        units: json(d.units.map((u) => ({ unitId: u.unit_id, areaM2e2: u.area_m2e2, shareFen: u.share_fen, heldPrincipalFen: u.principal_fen, heldInterestFen: u.interest_fen }))),
        votes: json(d.votes.map((v) => ({ unitId: v.unit_id, choice: v.choice, voterRole: v.voter_role, voter: v.voter, proof: v.proof, sessionId: v.session_id, updatedAt: v.updated_at }))),
        tally: d.tally ? json(d.tally) : null,
        actions: json(d.actions.map((x) => ({ action: x.action, actor: x.actor, role: x.actor_role, comment: x.comment, from: x.from_state, to: x.to_state, at: x.created_at }))),
        payout: d.payout ? json({ id: d.payout.id, amountFen: d.payout.amount_fen, status: d.payout.status, bankSerialNo: d.payout.bank_serial_no, message: d.payout.message, createdAt: d.payout.created_at, settledAt: d.payout.settled_at }) : null,
      };
    });
    app.get('/v1/fund/applications/:id/preview', { schema: { tags, security, summary: '分摊预览 / shares against available balances, with shortfalls' } }, async (request) => {
      const r = await use.preview(await guard(request), id(request));
      return json({ applicationId: r.application.id, drawRule: r.drawRule, ...r.preview, shortCount: r.preview.short.length });
    });
    app.post('/v1/fund/applications/:id/votes', { schema: { tags, security, summary: '业主表决（需业主证明：短信验证登录或表决码 votingCode）/ record or change a unit\'s vote; needs an SMS-proven owner session or the unit\'s votingCode' } }, async (request) => {
      return json(await use.vote(await guard(request), id(request), request.body));
    });
    app.post('/v1/fund/applications/:id/voting-codes', { schema: { tags, security, summary: '发放表决码（每户一码，仅显示一次，供打印或邮寄）/ issue voting codes, one per unit, shown once (center only)' } }, async (request, reply) => {
      return reply.status(201).send(json(await use.issueVotingCodes(await guard(request), id(request), request.body)));
    });
    app.post('/v1/fund/applications/:id/vote/close', { schema: { tags, security, summary: '结束表决并计票 / close the vote (Civil Code Art. 278)' } }, async (request) => {
      return applicationView(use, await use.closeVote(await guard(request), id(request), request.body));
    });
    app.post('/v1/fund/applications/:id/actions', { schema: { tags, security, summary: '审批 / approve | return | reject | submit (idempotent by requestKey)' } }, async (request) => {
      return applicationView(use, await use.act(await guard(request), id(request), request.body));
    });
    app.post('/v1/fund/applications/:id/payout', { schema: { tags, security, summary: '划拨 / send the payout instruction to the supervising bank' } }, async (request) => {
      const r = await use.payout(await guard(request), id(request), request.body);
      return { application: applicationView(use, r.application), payout: json(r.payout) };
    });
    app.post('/v1/fund/applications/:id/payout/result', { schema: { tags, security, summary: '划拨结果 / the bank\'s result: success posts the holds, failed voids them' } }, async (request) => {
      const r = await use.payoutResult(await guard(request), id(request), request.body);
      return { application: applicationView(use, r.application), payout: json(r.payout) };
    });

    app.post('/v1/fund/interest', { schema: { tags: itags, security, summary: '结息并分摊 / record a period\'s interest and allocate it by day-weighted balance (once per city and period)' } }, async (request, reply) => {
      return reply.status(201).send(batchView(await interest.allocate(await guard(request), request.body)));
    });
    app.get('/v1/fund/interest', { schema: { tags: itags, security, summary: '结息批次 / interest batches' } }, async (request) => {
      return { batches: (await interest.list(await guard(request), q(request).city ?? null)).map(batchView) };
    });
    app.get('/v1/fund/interest/:id', { schema: { tags: itags, security, summary: '结息批次明细 / a batch with each household\'s share' } }, async (request) => {
      const d = await interest.detail(await guard(request), id(request));
      return { batch: batchView(d.batch), shares: json(d.shares.map((s) => ({ unitId: s.unit_id, weight: s.weight, shareFen: s.share_fen }))), sharesTruncated: d.truncated };
    });
  };
}
