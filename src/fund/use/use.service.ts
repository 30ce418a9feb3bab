// 维修资金支用 (disbursement): repair applications from the property company or the
// owners' committee, the owners' vote (Civil Code Art. 278) unless it is an emergency,
// the approval chain, and the money: on final approval every household's share is held
// (pending ledger transfers hh:<unit>:principal|interest → fund:use:<app>, one linked
// chain, in the same transaction as the state change); the payout to the contractor is
// an instruction to the supervising bank (划转通知) whose result is recorded by the
// center (or a bank interface): success posts the holds and pays Dr fund:use / Cr
// fund:<city>:bank, failure voids them (every household's money is back).
//
// Why not the payment center's transfer API: it pays out of a merchant's pending
// balance (money a channel owes the merchant). The fund's money is in the 专户 at the
// supervising bank (fund:<city>:bank), and the bank pays the contractor on the
// center's instruction (165号令 Art 22). Routing it through a merchant balance would
// need a fictitious bank → merchant move; the direct posting keeps one true path.
import { createHash } from 'node:crypto';
import { transact, type Database, type Tx } from '../../platform/db.ts';
import type { Ledger, TransferInput, TransferResultCode } from '../../ledger/index.ts';
import { ACCOUNT_FLAGS, TRANSFER_FLAGS } from '../../ledger/index.ts';
import { assert } from '../../platform/assert.ts';
import { businessNo } from '../../platform/ids.ts';
import { LEDGER_CNY } from '../../payment/types.ts';
import { FUND_ACCOUNT_CODE, fundAccountIds, ensureFundAccounts, ensureHouseholdAccounts } from '../accounts.ts';
import { canSeeEstate, forbidden, requireCenter, type Principal } from '../access.ts';
import {
  APPORTION_UNITS_MAX, DEFAULT_CHAIN, VOTE_RULES, VOTE_CONDITION_TEXT, apportion, previewApportionment, tally, transition, validateChain, stateName,
  type ChainAction, type ChainNode, type ChainState, type DrawRule, type Tally,
} from '../calc/index.ts';
import * as repo from './use.repo.ts';
import * as reg from '../register/register.repo.ts';
import * as proofRepo from '../proof/proof.repo.ts';
import type { Pii } from '../register/pii.ts';
import type { Clock } from '../../platform/clock.ts';
import { VOTING_CODE_TTL_S, consumeVotingCode, newVotingCode, votingCodeErrors, votingCodeHash } from '../proof/voting-codes.ts';
import { asBody, calc, fen, oneOf, requestKey, str, useErrors } from './use.errors.ts';

/** Transfer codes of the use side (A's are 35xx). */
export const FUND_USE_TRANSFER_CODE = { hold: 3301, payout: 3302 } as const;
export const EMERGENCY_CATEGORIES = ['roof_leak', 'lift', 'fire_system', 'facade'] as const;
export const EMERGENCY_LABEL: Record<string, string> = { roof_leak: '屋面漏水 / roof leak', lift: '电梯故障 / lift failure', fire_system: '消防设施 / fire system', facade: '外墙脱落 / façade' };
export const BUDGET_MAX_FEN = 10_000_000_000n; // 1 亿元 per application
const ITEMS_MAX = 100;
const LIST_MAX = 200;

export interface FundUseOptions {
  db: Database;
  ledger: Ledger;
  /** Approval nodes for new applications (default 初审 → 审核 → 复核 → 审批); each application keeps the chain it was created with. */
  chain?: readonly ChainNode[];
  /**
   * How owners are counted in the vote: 'per_unit' (default: one per unit, 最高法 建筑物
   * 区分所有权解释 Art 9 — co-owners of one unit count once) or 'register' (the number of
   * owners the register lists for the unit, at least one).
   */
  ownerCount?: 'per_unit' | 'register';
  /** Reconciliation's check (日终对账): a payout from a bank account with an open difference waits until it is resolved. */
  accountBlocked?: (ledgerAccountId: string) => Promise<boolean>;
  /** Keys for voting codes (HMAC). */
  pii: Pii;
  clock: Clock;
}

export type FundUse = ReturnType<typeof createFundUse>;

const hashOf = (value: unknown) => createHash('sha256').update(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))).digest('hex');

export function createFundUse(options: FundUseOptions) {
  const { db, ledger } = options;
  const chain = options.chain ?? DEFAULT_CHAIN;
  const ownerCount = options.ownerCount ?? 'per_unit';
  calc(() => validateChain(chain));

  /** 'reviewing:<node key>' while at a node, else the status. */
  const statusName = (a: { status: string; chain_node: number | null; chain: readonly ChainNode[] }) => (a.status === 'reviewing' ? `reviewing:${a.chain[a.chain_node as number].key}` : a.status);
  const chainState = (a: repo.ApplicationRow): ChainState | null =>
    a.status === 'reviewing' ? { at: 'node', node: a.chain_node as number } : a.status === 'returned' ? { at: 'applicant' } : null;

  function canSeeApplication(p: Principal, a: repo.ApplicationRow, unitIds: () => Promise<string[]>): Promise<boolean> | boolean {
    if (p.role !== 'owner') return canSeeEstate(p, a.estate_id);
    const mine = new Set(p.unitIds ?? []);
    return unitIds().then((ids) => ids.some((u) => mine.has(u)));
  }

  async function load(p: Principal, id: string): Promise<repo.ApplicationRow> {
    const a = await repo.findApplication(db.kysely, id);
    if (!a) throw useErrors.notFound('application', id);
    const visible = await canSeeApplication(p, a, async () => (await repo.listApplicationUnits(db.kysely, id)).map((u) => u.unit_id));
    if (!visible) throw forbidden(`无权访问支用申请 ${id} / application ${id} is not yours`);
    return a;
  }

  /** Locks the application row for a state change; rechecks visibility inside the transaction. */
  async function lock(tx: Tx, p: Principal, id: string): Promise<repo.ApplicationRow> {
    const a = await repo.findApplication(tx, id, true);
    if (!a) throw useErrors.notFound('application', id);
    if (p.role === 'owner' || !canSeeEstate(p, a.estate_id)) throw forbidden(`无权操作支用申请 ${id} / application ${id} is not yours`);
    return a;
  }

  // --- create --------------------------------------------------------------------------

  async function create(p: Principal, raw: unknown): Promise<repo.ApplicationRow> {
    if (p.role !== 'property' && p.role !== 'committee' && p.role !== 'center') throw forbidden('只有物业公司、业委会或维修资金中心可以提出支用申请 / only the property company, the owners\' committee or the center may apply');
    const b = asBody(raw);
    const key = requestKey(b) as string;
    const estateId = str(b, 'estateId', 64) as string;
    const scopeKind = oneOf(b, 'scope', ['estate', 'building', 'stair'] as const) as 'estate' | 'building' | 'stair';
    const buildingId = scopeKind === 'estate' ? null : str(b, 'buildingId', 64);
    const stair = scopeKind === 'stair' ? str(b, 'stair', 32) : null;
    if (scopeKind === 'estate' && (b.buildingId !== undefined || b.stair !== undefined)) throw useErrors.invalid('scope=estate 时不能给 buildingId 或 stair / scope "estate" takes no buildingId or stair');
    if (scopeKind === 'building' && b.stair !== undefined) throw useErrors.invalid('scope=building 时不能给 stair；按单元请用 scope=stair / scope "building" takes no stair: use scope "stair"');
    const title = str(b, 'title', 200) as string;
    const description = str(b, 'description', 4000) as string;
    const budgetFen = fen(b, 'budgetFen', BUDGET_MAX_FEN);
    const contractor = asBody(b.contractor ?? null, 'contractor');
    const contractorName = str(contractor, 'name', 200, false, 'contractor.name') as string;
    const contractorAccount = str(contractor, 'accountNo', 64, false, 'contractor.accountNo') as string;
    if (!/^[0-9]{6,34}$/.test(contractorAccount)) throw useErrors.invalid('contractor.accountNo 应为 6–34 位数字的银行账号 / contractor.accountNo must be a bank account number of 6–34 digits');
    const contractorBank = str(contractor, 'bankName', 200, false, 'contractor.bankName') as string;
    const emergency = b.emergency ?? false;
    if (typeof emergency !== 'boolean') throw useErrors.invalid('emergency 应为 true/false / emergency must be a boolean');
    const category = emergency ? oneOf(b, 'emergencyCategory', EMERGENCY_CATEGORIES) : null;
    if (!emergency && b.emergencyCategory !== undefined) throw useErrors.invalid('非应急申请不能填 emergencyCategory / emergencyCategory is only for emergency: true');
    const items = parseItems(b.items, budgetFen);

    const estate = await repo.findEstate(db.kysely, estateId);
    if (!estate) throw useErrors.notFound('estate', estateId);
    if (!canSeeEstate(p, estate.id)) throw forbidden(`无权为小区 ${estateId} 提出申请 / estate ${estateId} is not yours`);
    if (buildingId !== null) {
      const building = await repo.findBuilding(db.kysely, buildingId);
      if (!building || building.estate_id !== estate.id) throw useErrors.notFound('building', buildingId);
    }
    const units = await repo.listUnitsInScope(db.kysely, estate.id, buildingId, stair, APPORTION_UNITS_MAX + 1);
    if (units.length === 0) throw useErrors.noUnits();
    if (units.length > APPORTION_UNITS_MAX) throw useErrors.scopeTooLarge(APPORTION_UNITS_MAX);
    const shares = calc(() => apportion(budgetFen, units.map((u) => ({ unitId: u.id, areaM2e2: u.area_m2e2 }))));

    const requestHash = hashOf({ estateId, scopeKind, buildingId, stair, title, description, budgetFen, contractorName, contractorAccount, contractorBank, emergency, category, items, role: p.role, subject: p.subject });
    const id = businessNo('FA');
    const status = emergency ? 'reviewing' : 'voting';
    const result = await transact(db, async (tx) => {
      const inserted = await repo.insertApplication(tx, {
        id, request_key: key, request_hash: requestHash, city: estate.city, estate_id: estate.id, scope_kind: scopeKind, building_id: buildingId,
        stair, title, description, items: items.map((i) => ({ name: i.name, amountFen: i.amountFen.toString() })), budget_fen: budgetFen,
        contractor_name: contractorName, contractor_account: contractorAccount, contractor_bank: contractorBank, applicant_role: p.role,
        applicant: p.subject, emergency, emergency_category: category, status, chain: chain.map((n) => ({ key: n.key, label: n.label, roles: [...n.roles] })), chain_node: emergency ? 0 : null,
      });
      if (!inserted) return null;
      const ownersOf = new Map(units.map((u) => [u.id, u.owners_count]));
      await repo.insertApplicationUnits(tx, id, shares.map((x) => ({ ...x, owners: ownersOf.get(x.unitId) as number })));
      await repo.insertAction(tx, {
        applicationId: id, requestKey: key, action: 'create', actor: p.subject, actorRole: p.role,
        comment: emergency ? `应急使用，免表决，事后公示 / emergency (${category}): no vote, published afterwards` : '', from: 'new', to: statusName({ status, chain_node: emergency ? 0 : null, chain }),
      });
      return (await repo.findApplication(tx, id)) as repo.ApplicationRow;
    });
    if (result) return result;
    const existing = await repo.findApplicationByKey(db.kysely, key);
    assert(existing !== null, 'a request key that conflicted has its application');
    if (existing.request_hash !== requestHash) throw useErrors.keyReused(key);
    return existing;
  }

  function parseItems(value: unknown, budgetFen: bigint): Array<{ name: string; amountFen: bigint }> {
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.length > ITEMS_MAX) throw useErrors.invalid(`items 应为不超过 ${ITEMS_MAX} 项的数组 / items must be an array of at most ${ITEMS_MAX}`);
    const items = value.map((v, i) => {
      const item = asBody(v, `items[${i}]`);
      const name = str(item, 'name', 200, false, `items[${i}].name`) as string;
      return { name, amountFen: fen(item, 'amountFen', BUDGET_MAX_FEN, `items[${i}].amountFen`) };
    });
    const total = items.reduce((s, i) => s + i.amountFen, 0n);
    if (items.length > 0 && total !== budgetFen) throw useErrors.invalid(`各项金额之和 ${total} 分不等于预算 ${budgetFen} 分 / items sum to ${total} fen but budgetFen is ${budgetFen}`);
    return items;
  }

  // --- reading -------------------------------------------------------------------------

  async function list(p: Principal, f: { estateId?: string; status?: string }): Promise<repo.ApplicationRow[]> {
    if (p.role === 'owner') return repo.listApplicationsForUnits(db.kysely, p.unitIds ?? [], LIST_MAX);
    if (f.estateId !== undefined && !canSeeEstate(p, f.estateId)) throw forbidden(`无权访问小区 ${f.estateId} / estate ${f.estateId} is not yours`);
    return repo.listApplications(db.kysely, { estateIds: p.estateIds, estateId: f.estateId ?? null, status: f.status ?? null, limit: LIST_MAX });
  }

  async function detail(p: Principal, id: string) {
    const a = await load(p, id);
    const [units, votes, actions, payout] = await Promise.all([
      repo.listApplicationUnits(db.kysely, id), repo.listVotes(db.kysely, id), repo.listActions(db.kysely, id), repo.findPayout(db.kysely, id),
    ]);
    return { application: a, units, votes, actions, payout, tally: a.emergency ? null : currentTally(units, votes) };
  }

  function currentTally(units: repo.ApplicationUnitRow[], votes: repo.VoteRow[]): Tally {
    const byUnit = new Map(votes.map((v) => [v.unit_id, v.choice]));
    // One owner per unit by default (最高法 建筑物区分所有权解释 Art 9): see calc/vote.ts.
    return calc(() => tally(VOTE_RULES.use, units.map((u) => ({
      unitId: u.unit_id, areaM2e2: u.area_m2e2, owners: ownerCount === 'register' ? BigInt(u.owners) : 1n, choice: byUnit.get(u.unit_id) ?? null,
    }))));
  }

  async function drawRule(q: Tx | Database['kysely'], city: string): Promise<DrawRule> {
    return (await repo.findDrawRule(q, city)) ?? 'principal_only';
  }

  async function balances(q: Tx | Database['kysely'], unitIds: string[]) {
    const ids = unitIds.flatMap((u) => [fundAccountIds.principal(u), fundAccountIds.interest(u)]);
    const available = await repo.availableByAccount(q, ids);
    return unitIds.map((u) => ({ unitId: u, principalFen: available.get(fundAccountIds.principal(u)) ?? 0n, interestFen: available.get(fundAccountIds.interest(u)) ?? 0n }));
  }

  /** Shares against what each household can pay now, under the city's draw rule. */
  async function preview(p: Principal, id: string) {
    const a = await load(p, id);
    const units = await repo.listApplicationUnits(db.kysely, id);
    const rule = await drawRule(db.kysely, a.city);
    const held = a.status === 'approved' || a.status === 'paying';
    // While this application's own holds stand, count them as available to it.
    const available = (await balances(db.kysely, units.map((u) => u.unit_id))).map((b, i) => (held
      ? { ...b, principalFen: b.principalFen + units[i].principal_fen, interestFen: b.interestFen + units[i].interest_fen } : b));
    return { application: a, drawRule: rule, preview: calc(() => previewApportionment(a.budget_fen, units.map((u) => ({ unitId: u.unit_id, areaM2e2: u.area_m2e2 })), available, rule)) };
  }

  // --- votes ----------------------------------------------------------------------------

  /**
   * One vote per unit: recorded, or changed, until the vote closes. Every vote carries an
   * owner's proof the register does not hold: an owner session signed in with the SMS
   * code (proof 'sms', that unit only), or the unit's voting code issued by the center
   * (proof 'voting_code': the owner with any owner token, or the committee or the center
   * entering the owner's paper ballot, which carries the code). Property companies never vote.
   */
  async function vote(p: Principal, id: string, raw: unknown) {
    const b = asBody(raw);
    const unitId = str(b, 'unitId', 64) as string;
    const choice = oneOf(b, 'choice', ['agree', 'disagree', 'abstain'] as const) as string;
    const votingCode = str(b, 'votingCode', 32, true);
    if (p.role === 'owner') {
      if (!(p.unitIds ?? []).includes(unitId)) throw forbidden(`只能为自己的房屋投票 / you may vote only for your own unit (${unitId} is not yours)`);
    } else if (p.role !== 'center' && p.role !== 'committee') {
      throw forbidden('只有业主本人、业委会或维修资金中心可以登记表决 / only the owner, the owners\' committee or the center may record a vote');
    }
    const proof = votingCode !== null ? 'voting_code' : p.role === 'owner' && p.proof === 'sms' && p.unitIds?.length === 1 ? 'sms' : null;
    if (proof === null) throw votingCodeErrors.required();
    const at = new Date(Number(options.clock.nowNs() / 1_000_000n));
    const out = await transact(db, async (tx) => {
      const a = await repo.findApplication(tx, id, true);
      if (!a) throw useErrors.notFound('application', id);
      if (p.role === 'committee' && !canSeeEstate(p, a.estate_id)) throw forbidden('只有本小区业委会可以登记纸质表决 / only this estate\'s committee may enter its paper ballots');
      if (a.status !== 'voting') throw useErrors.state(a.status, '投票 / vote');
      const units = await repo.listApplicationUnits(tx, id);
      if (!units.some((u) => u.unit_id === unitId)) throw useErrors.unitNotInScope(unitId);
      if (votingCode !== null && (await consumeVotingCode(tx, options.pii, { applicationId: id, unitId, code: votingCode, at })) === 'wrong') return null;
      const before = (await repo.listVotes(tx, id)).find((v) => v.unit_id === unitId);
      const sessionId = proof === 'sms' ? (p.sessionId ?? null) : null;
      await repo.upsertVote(tx, { applicationId: id, unitId, choice, voterRole: p.role, voter: p.subject, proof, sessionId });
      await reg.audit(tx, p.subject, 'vote.record', `application:${id}`, { unitId, choice, voterRole: p.role, proof, sessionId, previous: before?.choice ?? null });
      return { applicationId: id, unitId, choice, changed: before?.choice !== choice, proof, tally: currentTally(units, await repo.listVotes(tx, id)) };
    });
    if (out === null) throw votingCodeErrors.invalid();
    return out;
  }

  /** Issues voting codes (shown once, to print or mail) for the units in scope — all, or unitIds; a new code replaces an earlier one. Center only. */
  async function issueVotingCodes(p: Principal, id: string, raw: unknown) {
    requireCenter(p);
    const b = asBody(raw ?? {});
    let wanted: Set<string> | null = null;
    if (b.unitIds !== undefined) {
      const ok = Array.isArray(b.unitIds) && b.unitIds.length > 0 && b.unitIds.length <= APPORTION_UNITS_MAX && b.unitIds.every((u) => typeof u === 'string' && /^[A-Za-z0-9_]{1,64}$/.test(u));
      if (!ok) throw useErrors.invalid(`unitIds 须为 1–${APPORTION_UNITS_MAX} 个房屋 id / unitIds must be 1–${APPORTION_UNITS_MAX} unit ids`);
      wanted = new Set(b.unitIds as string[]);
    }
    const at = new Date(Number(options.clock.nowNs() / 1_000_000n));
    return transact(db, async (tx) => {
      const a = await repo.findApplication(tx, id, true);
      if (!a) throw useErrors.notFound('application', id);
      if (a.status !== 'voting') throw useErrors.state(a.status, '发放表决码 / issue voting codes');
      const units = (await repo.listApplicationUnits(tx, id)).filter((u) => wanted === null || wanted.has(u.unit_id));
      for (const u of wanted ?? []) if (!units.some((x) => x.unit_id === u)) throw useErrors.unitNotInScope(u);
      const codes = units.map((u) => ({ unitId: u.unit_id, code: newVotingCode() }));
      const expiresAt = new Date(at.getTime() + VOTING_CODE_TTL_S * 1000);
      await proofRepo.upsertVotingCodes(tx, id, codes.map((c) => ({ unitId: c.unitId, codeHash: votingCodeHash(options.pii, id, c.unitId, c.code) })), p.subject, at, expiresAt);
      await reg.audit(tx, p.subject, 'voting_code.issue', `application:${id}`, { units: codes.length, unitIds: codes.slice(0, 50).map((c) => c.unitId), expiresAt });
      return { applicationId: id, expiresAt, codes };
    });
  }

  /** Closes the vote: passes → to the first approval node; fails → vote_failed, saying which condition failed. */
  async function closeVote(p: Principal, id: string, raw: unknown) {
    const b = asBody(raw ?? {});
    const comment = str(b, 'comment', 1000, true) ?? '';
    return transact(db, async (tx) => {
      const a = await lock(tx, p, id);
      if (p.role !== 'center' && p.role !== 'committee') throw forbidden('只有业委会或维修资金中心可以结束表决 / only the owners\' committee or the center may close a vote');
      if (a.status !== 'voting') {
        if (a.vote_result !== null) return a; // closed already: the same answer again
        throw useErrors.state(a.status, '结束表决 / close the vote');
      }
      const units = await repo.listApplicationUnits(tx, id);
      const t = currentTally(units, await repo.listVotes(tx, id));
      const next = t.passed ? { status: 'reviewing', chain_node: 0 } : { status: 'vote_failed', chain_node: null };
      const result = { ...jsonTally(t), failedText: t.failed.map((c) => VOTE_CONDITION_TEXT[c]) };
      await repo.updateApplication(tx, id, { ...next, vote_result: result });
      await repo.insertAction(tx, { applicationId: id, requestKey: null, action: 'close_vote', actor: p.subject, actorRole: p.role, comment, from: 'voting', to: statusName({ ...next, chain: a.chain }) });
      return (await repo.findApplication(tx, id)) as repo.ApplicationRow;
    });
  }

  // --- approval chain -------------------------------------------------------------------

  /**
   * An action at the current node: approve / return (to the previous node or the
   * applicant) / reject, or submit (the applicant, after a return). Idempotent by
   * requestKey: a retry returns the application as it is. Final approval holds the money.
   * Reject also cancels an approved application before payout (center), voiding the holds.
   */
  async function act(p: Principal, id: string, raw: unknown) {
    const b = asBody(raw);
    const key = requestKey(b) as string;
    const kind = oneOf(b, 'action', ['approve', 'return', 'reject', 'submit'] as const) as ChainAction['kind'];
    const to = kind === 'return' ? oneOf(b, 'to', ['previous', 'applicant'] as const) ?? 'previous' : null;
    if (kind !== 'return' && b.to !== undefined) throw useErrors.invalid('只有 action=return 时可以给 to / "to" is only for action "return"');
    const comment = str(b, 'comment', 1000, kind === 'approve' || kind === 'submit') ?? '';
    const action: ChainAction = kind === 'return' ? { kind, to: to as 'previous' | 'applicant' } : { kind } as ChainAction;
    return transact(db, async (tx) => {
      const a = await lock(tx, p, id);
      const done = await repo.findActionByKey(tx, id, key);
      if (done) {
        if (done.action !== (kind === 'return' ? `return:${to}` : kind)) throw useErrors.keyReused(key);
        return a; // a retry: the action was taken, answer with the application as it is
      }
      const from = statusName(a);
      if (kind === 'reject' && a.status === 'approved') {
        requireCenter(p);
        await settleHolds(tx, a, false);
        return record(tx, p, a, key, 'reject', comment, from, { status: 'rejected', chain_node: null });
      }
      const state = chainState(a);
      if (state === null) throw useErrors.state(statusName(a), `${kind} (审批 / approval)`);
      if (kind === 'submit' && !(p.role === 'center' || p.role === a.applicant_role)) throw forbidden('只有申请方可以重新提交 / only the applicant may resubmit');
      const next = calc(() => transition(a.chain, state, action, kind === 'submit' ? 'applicant' : p.role));
      const fields = next.at === 'node' ? { status: 'reviewing', chain_node: next.node }
        : next.at === 'applicant' ? { status: 'returned', chain_node: null }
          : { status: next.at, chain_node: null };
      if (next.at === 'approved') await placeHolds(tx, a);
      return record(tx, p, a, key, kind === 'return' ? `return:${to}` : kind, comment, from, fields);
    });
  }

  async function record(tx: Tx, p: Principal, a: repo.ApplicationRow, key: string | null, action: string, comment: string, from: string, fields: { status: string; chain_node: number | null }) {
    await repo.updateApplication(tx, a.id, fields);
    await repo.insertAction(tx, { applicationId: a.id, requestKey: key, action, actor: p.subject, actorRole: p.role, comment, from, to: statusName({ ...fields, chain: a.chain }) });
    return (await repo.findApplication(tx, a.id)) as repo.ApplicationRow;
  }

  const holdId = (appId: string, unitId: string, side: 'p' | 'i') => `fuse:${appId}:${unitId}:${side}`;

  /** Final approval: hold every share (linked pending transfers); a short household blocks it. */
  async function placeHolds(tx: Tx, a: repo.ApplicationRow): Promise<void> {
    const units = await repo.listApplicationUnits(tx, a.id);
    const unitIds = units.map((u) => u.unit_id);
    const rule = await drawRule(tx, a.city);
    const available = await balances(tx, unitIds);
    const preview = calc(() => previewApportionment(a.budget_fen, units.map((u) => ({ unitId: u.unit_id, areaM2e2: u.area_m2e2 })), available, rule));
    assert(preview.lines.every((l, i) => l.unitId === units[i].unit_id && l.shareFen === units[i].share_fen), 'stored shares equal the apportionment');
    if (preview.short.length > 0) throw useErrors.balanceShort(preview.short);
    await ensureHouseholdAccounts(tx, ledger, unitIds);
    await ensureFundAccounts(tx, ledger, a.city);
    const payable = await ledger.createAccountsIn(tx, [{
      id: fundAccountIds.payable(a.id), ledger: LEDGER_CNY, code: FUND_ACCOUNT_CODE.fund_payable,
      flags: ACCOUNT_FLAGS.debits_must_not_exceed_credits | ACCOUNT_FLAGS.history, ref: `application:${a.id}`, metadata: null,
    }]);
    assert(payable[0] === 'ok' || payable[0] === 'exists', `payable account: ${payable[0]}`);
    const transfers: TransferInput[] = [];
    for (const l of preview.lines) {
      if (l.fromInterestFen > 0n) transfers.push(hold(holdId(a.id, l.unitId, 'i'), fundAccountIds.interest(l.unitId), fundAccountIds.payable(a.id), l.fromInterestFen, a.id));
      if (l.fromPrincipalFen > 0n) transfers.push(hold(holdId(a.id, l.unitId, 'p'), fundAccountIds.principal(l.unitId), fundAccountIds.payable(a.id), l.fromPrincipalFen, a.id));
    }
    link(transfers);
    const results = await ledger.applyInTransaction(tx, transfers);
    if (results.some((r) => r === 'exceeds_credits')) {
      // A balance moved between our read and the ledger's lock: the ledger refused; nothing is written.
      const now = await balances(tx, unitIds);
      const recheck = calc(() => previewApportionment(a.budget_fen, units.map((u) => ({ unitId: u.unit_id, areaM2e2: u.area_m2e2 })), now, rule));
      throw useErrors.balanceShort(recheck.short);
    }
    expectOk(results, transfers);
    await repo.setUnitHolds(tx, a.id, preview.lines.map((l) => ({ unitId: l.unitId, principalFen: l.fromPrincipalFen, interestFen: l.fromInterestFen })));
  }

  /** Posts (payout succeeded) or voids (rejected, payout failed) every hold of the application, as one linked chain. */
  async function settleHolds(tx: Tx, a: repo.ApplicationRow, post: boolean): Promise<void> {
    const units = await repo.listApplicationUnits(tx, a.id);
    const transfers: TransferInput[] = [];
    const flag = post ? TRANSFER_FLAGS.post_pending : TRANSFER_FLAGS.void_pending;
    const suffix = post ? 'post' : 'void';
    for (const u of units) {
      if (u.interest_fen > 0n) transfers.push(resolve(`${holdId(a.id, u.unit_id, 'i')}:${suffix}`, holdId(a.id, u.unit_id, 'i'), flag, a.id));
      if (u.principal_fen > 0n) transfers.push(resolve(`${holdId(a.id, u.unit_id, 'p')}:${suffix}`, holdId(a.id, u.unit_id, 'p'), flag, a.id));
    }
    if (post) transfers.push(plain(`fuse:${a.id}:payout`, fundAccountIds.payable(a.id), fundAccountIds.bank(a.city), a.budget_fen, FUND_USE_TRANSFER_CODE.payout, a.id));
    assert(transfers.length > 0, 'an approved application holds something');
    link(transfers);
    expectOk(await ledger.applyInTransaction(tx, transfers), transfers);
  }

  // --- payout ----------------------------------------------------------------------------

  /** Sends the payout instruction (划转通知) for an approved application. Idempotent. */
  async function payout(p: Principal, id: string, raw: unknown) {
    requireCenter(p);
    const b = asBody(raw ?? {});
    const comment = str(b, 'comment', 1000, true) ?? '';
    // Checked before the transaction: PGlite has one session, so no other query may run inside it.
    const current = await repo.findApplication(db.kysely, id);
    if (current && options.accountBlocked && !(await repo.findPayout(db.kysely, id)) && (await options.accountBlocked(fundAccountIds.bank(current.city)))) {
      throw useErrors.accountBlocked(fundAccountIds.bank(current.city));
    }
    return transact(db, async (tx) => {
      const a = await lock(tx, p, id);
      const existing = await repo.findPayout(tx, id);
      if (existing) return { application: a, payout: existing };
      if (a.status !== 'approved') throw useErrors.state(statusName(a), '划拨 / pay out');
      await repo.insertPayout(tx, { id: businessNo('FP'), applicationId: id, amountFen: a.budget_fen });
      const after = await record(tx, p, a, null, 'payout', comment, 'approved', { status: 'paying', chain_node: null });
      return { application: after, payout: (await repo.findPayout(tx, id)) as repo.PayoutRow };
    });
  }

  /** The bank's answer: success posts the holds and pays from the bank account; failure voids them. */
  async function payoutResult(p: Principal, id: string, raw: unknown) {
    requireCenter(p);
    const b = asBody(raw);
    const result = oneOf(b, 'result', ['success', 'failed'] as const) as 'success' | 'failed';
    const bankSerialNo = str(b, 'bankSerialNo', 64, result === 'failed');
    const message = str(b, 'message', 1000, true);
    return transact(db, async (tx) => {
      const a = await lock(tx, p, id);
      const po = await repo.findPayout(tx, id);
      if (!po) throw useErrors.state(statusName(a), '登记划拨结果（尚未划拨）/ record a payout result: no payout was sent');
      if (po.status !== 'sent') {
        if (po.status === result) return { application: a, payout: po };
        throw useErrors.payoutSettled(po.status);
      }
      assert(a.status === 'paying', 'a sent payout belongs to a paying application');
      await settleHolds(tx, a, result === 'success');
      await repo.settlePayout(tx, id, result, bankSerialNo, message);
      const after = await record(tx, p, a, null, result === 'success' ? 'payout_success' : 'payout_failed', message ?? '', 'paying', { status: result === 'success' ? 'paid' : 'payout_failed', chain_node: null });
      if (result === 'success' && a.emergency) {
        const units = await repo.listApplicationUnits(tx, id);
        await repo.insertPublication(tx, {
          applicationId: id, city: a.city, estateId: a.estate_id, title: `应急使用公示：${a.title} / emergency use: ${a.title}`,
          body: {
            category: a.emergency_category, categoryLabel: EMERGENCY_LABEL[a.emergency_category as string], amountFen: a.budget_fen.toString(),
            contractor: a.contractor_name, description: a.description, bankSerialNo,
            shares: units.map((u) => ({ unitId: u.unit_id, areaM2e2: u.area_m2e2.toString(), shareFen: u.share_fen.toString() })),
          },
        });
      }
      return { application: after, payout: (await repo.findPayout(tx, id)) as repo.PayoutRow };
    });
  }

  async function publications(p: Principal, f: { estateId?: string }) {
    if (p.role === 'owner') throw forbidden('业主请在 H5 页面查看公示 / owners see publications on the H5 pages');
    if (f.estateId !== undefined && !canSeeEstate(p, f.estateId)) throw forbidden(`无权访问小区 ${f.estateId} / estate ${f.estateId} is not yours`);
    return repo.listPublications(db.kysely, { estateIds: p.estateIds, estateId: f.estateId ?? null, limit: LIST_MAX });
  }

  async function setDrawRule(p: Principal, city: string, raw: unknown) {
    requireCenter(p);
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(city)) throw useErrors.invalid('城市代码无效 / city code: 1–32 of A-Z a-z 0-9 _ -');
    const rule = oneOf(asBody(raw), 'drawRule', ['principal_only', 'interest_first'] as const) as DrawRule;
    await repo.upsertDrawRule(db.kysely, city, rule);
    return { city, drawRule: rule };
  }

  return { create, list, detail, preview, vote, issueVotingCodes, closeVote, act, payout, payoutResult, publications, setDrawRule, chain, statusName };
}

function hold(id: string, debit: string, credit: string, amount: bigint, ref: string): TransferInput {
  return { id, debit_account_id: debit, credit_account_id: credit, amount, ledger: LEDGER_CNY, code: FUND_USE_TRANSFER_CODE.hold, flags: TRANSFER_FLAGS.pending, pending_id: null, timeout_s: 0, ref, metadata: null };
}
function resolve(id: string, pendingId: string, flag: number, ref: string): TransferInput {
  return { id, debit_account_id: null, credit_account_id: null, amount: null, ledger: 0, code: 0, flags: flag, pending_id: pendingId, timeout_s: 0, ref, metadata: null };
}
function plain(id: string, debit: string, credit: string, amount: bigint, code: number, ref: string): TransferInput {
  return { id, debit_account_id: debit, credit_account_id: credit, amount, ledger: LEDGER_CNY, code, flags: 0, pending_id: null, timeout_s: 0, ref, metadata: null };
}
/** All but the last carry `linked`: the chain succeeds or fails as one. */
function link(transfers: TransferInput[]): void {
  transfers.forEach((t, i) => {
    if (i < transfers.length - 1) t.flags |= TRANSFER_FLAGS.linked;
  });
}
function expectOk(results: TransferResultCode[], transfers: TransferInput[]): void {
  results.forEach((r, i) => assert(r === 'ok' || r === 'exists', `fund use transfer ${transfers[i].id}: ${r}`));
}

export function jsonTally(t: Tally) {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : v]));
}
export { stateName };
