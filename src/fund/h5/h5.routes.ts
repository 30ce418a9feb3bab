// The owners' mobile pages (H5, Chinese first, server-rendered, no framework): search
// the house by address or certificate number, prove it (certificate number + owner
// name, then the SMS code sent to that owner's phone on record → a 30-minute owner
// session for that one house in an HttpOnly cookie; failures lock out per house and per
// IP), see the household account and
// the bills, pay through the payment center's cashier, download the receipt PDF, and
// verify any receipt by number, amount and check code.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Database } from '../../platform/db.ts';
import { AppError } from '../../platform/errors.ts';
import { fenToYuan, parseFen } from '../../platform/money.ts';
import { escapeHtml, mobilePage } from '../../platform/html.ts';
import { cstDateTime } from '../../platform/time.ts';
import { canSeeUnit, principalFromToken, type FundGuardDeps, type Principal } from '../access.ts';
import { OWNER_SESSION_S, type OwnerSignin } from '../proof/signin.ts';
import { LockedError } from '../proof/limiter.ts';
import { redactUrl } from './redact.ts';
import * as reg from '../register/register.repo.ts';
import * as dep from '../deposit/deposit.repo.ts';
import { formatAreaM2, maskName } from '../register/model.ts';
import type { DepositService } from '../deposit/deposit.service.ts';
import type { ReceiptService } from '../receipt/receipt.service.ts';

const COOKIE = 'custos_fund';
const SEARCH_MAX = 20;

const STATE_TEXT: Record<string, string> = { unpaid: '待缴 / unpaid', paid: '已缴 / paid', cancelled: '已作废 / cancelled' };
const KIND_TEXT: Record<string, string> = { first_deposit: '首期交存 / first deposit', top_up: '续筹 / top-up' };

const STYLE = '.card{border:1px solid #e5e5e5;border-radius:10px;padding:14px;margin:12px 0}.row{display:flex;justify-content:space-between;margin:4px 0}' +
  'input{width:100%;box-sizing:border-box;padding:12px;font-size:16px;margin:6px 0;border:1px solid #ccc;border-radius:8px}' +
  'button,.button{display:block;width:100%;box-sizing:border-box;text-align:center;padding:13px;margin:10px 0;font-size:16px;border-radius:8px;border:none;background:#1677ff;color:#fff;text-decoration:none}' +
  '.paid{color:#389e0d}.unpaid{color:#d46b08}a{color:#1677ff}h2{font-size:20px}';

const page = (title: string, body: string) => mobilePage(escapeHtml(title), `<p class="sub">住宅专项维修资金 · Maintenance fund</p>${body}`, STYLE);

export function h5Routes(deps: { db: Database; guardDeps: FundGuardDeps; deposits: DepositService; receipts: ReceiptService; signin: OwnerSignin }) {
  const q = deps.db.kysely;

  const cookieToken = (request: FastifyRequest): string | undefined => {
    const header = request.headers.cookie ?? '';
    for (const part of header.split(';')) {
      const [k, ...v] = part.trim().split('=');
      if (k === COOKIE) return decodeURIComponent(v.join('='));
    }
    return undefined;
  };
  const ownerOf = async (request: FastifyRequest): Promise<Principal | null> => principalFromToken(deps.guardDeps, cookieToken(request));
  const html = (reply: FastifyReply, status: number, title: string, body: string) => reply.status(status).type('text/html; charset=utf-8').send(page(title, body));
  const place = (u: reg.UnitView) => `${u.estate_name} ${u.building_name}幢${u.stair}单元${u.room_no}`;

  return async (app: FastifyInstance) => {
    app.register(async (scope) => {
      scope.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      });

      scope.get('/h5/fund', { schema: { hide: true } }, async (_request, reply) => html(reply, 200, '维修资金查询缴费', `
        <h2>查询房屋 / Find your house</h2>
        <form method="get" action="/h5/fund/search">
          <input name="q" placeholder="地址（如 阳光花园1幢1单元101）或产权证号 / address or certificate number" maxlength="100" required>
          <button>查询 / Search</button>
        </form>
        <p class="muted"><a href="/h5/fund/verify">票据验真 / verify a receipt</a></p>`));

      scope.get('/h5/fund/search', { schema: { hide: true } }, async (request, reply) => {
        const text = String((request.query as { q?: string }).q ?? '').trim().replace(/\s+/g, '');
        if (text.length < 2 || text.length > 100) return html(reply, 400, '查询', '<p class="err">请输入至少 2 个字的地址或产权证号 / enter at least 2 characters</p><p><a href="/h5/fund">返回 / back</a></p>');
        const units = await reg.searchUnits(q, text, SEARCH_MAX);
        const list = units.map((u) => `<div class="card"><div>${escapeHtml(place(u))}</div>
          <div class="muted">${escapeHtml(u.address)} · ${formatAreaM2(u.area_m2e2)}㎡ · 业主 ${escapeHtml(u.owners.map((o) => maskName(o.name)).join('、') || '—')}</div>
          <a class="button" href="/h5/fund/units/${u.id}">查看缴款通知书 / view bills</a></div>`).join('');
        return html(reply, 200, '查询结果', `<h2>查询结果 / Results</h2>${list || '<p>没有找到房屋，请核对地址或产权证号 / no house found</p>'}<p><a href="/h5/fund">重新查询 / search again</a></p>`);
      });

      scope.get('/h5/fund/units/:id', { schema: { hide: true } }, async (request, reply) => {
        const { id } = request.params as { id: string };
        const unit = /^[A-Za-z0-9_]{1,64}$/.test(id) ? await reg.findUnit(q, id) : null;
        if (!unit) return html(reply, 404, '房屋不存在', '<p class="err">房屋不存在 / no such house</p>');
        const owner = await ownerOf(request);
        if (!owner || !canSeeUnit(owner, unit)) return html(reply, 200, '验证业主身份', loginForm(unit, ''));
        const [bal] = await dep.householdBalances(q, { unitIds: [unit.id] }, 1);
        const bills = await dep.listBills(q, { unitIds: [unit.id] }, 100);
        const billCards = bills.map((b) => {
          const code = deps.receipts.codeOf(b);
          const action = b.state === 'unpaid'
            ? `<form method="post" action="/h5/fund/bills/${b.id}/pay"><button id="pay-${b.id}">去支付 ¥${fenToYuan(b.amount_fen)} / Pay</button></form>`
            : b.state === 'paid' && code
              ? `<p>票据号 ${escapeHtml(b.receipt_no as string)} · 校验码 ${code}</p><a class="button" href="/h5/fund/receipts/${b.receipt_no}/pdf?code=${code}">下载电子票据 / receipt (PDF)</a>` : '';
          return `<div class="card"><div class="row"><b>${KIND_TEXT[b.kind]}</b><span class="${b.state}">${STATE_TEXT[b.state]}</span></div>
            <div class="row"><span>金额 / amount</span><b>¥${fenToYuan(b.amount_fen)}</b></div>
            <div class="muted">${escapeHtml(b.basis.text)}</div>
            <div class="muted">通知书号 / bill ${b.id}${b.paid_at ? ` · 缴款时间 ${cstDateTime(b.paid_at)}` : ''}</div>${action}</div>`;
        }).join('');
        return html(reply, 200, '我的维修资金', `<h2>${escapeHtml(place(unit))}</h2>
          <p class="muted">${escapeHtml(unit.address)} · 建筑面积 ${formatAreaM2(unit.area_m2e2)}㎡</p>
          <div class="card"><b>分户账 / household account</b>
            <div class="row"><span>本金 / principal</span><span id="principal">¥${fenToYuan(bal.principal_fen)}</span></div>
            <div class="row"><span>利息 / interest</span><span id="interest">¥${fenToYuan(bal.interest_fen)}</span></div></div>
          <h2>缴款通知书 / Bills</h2>${billCards || '<p>暂无缴款通知书 / no bills yet</p>'}
          <p class="muted">支付完成后回到本页刷新查看 / after paying, come back to this page and refresh</p>
          <p><a href="/h5/fund">查询其他房屋 / another house</a></p>`);
      });

      const refused = (reply: FastifyReply, error: unknown, unit: reg.UnitView | null, form: (unit: reg.UnitView, message: string) => string) => {
        if (!(error instanceof AppError)) throw error;
        if (error instanceof LockedError) reply.header('retry-after', String(error.retryAfterS));
        if (!unit) return html(reply, error.status, '验证失败', `<p class="err">${escapeHtml(error.message)}</p><p><a href="/h5/fund">返回 / back</a></p>`);
        return html(reply, error.status, '验证失败', form(unit, error.message));
      };

      // Step 1: the register's proof (certificate number + owner name) → an SMS code to that owner's phone on record.
      scope.post('/h5/fund/login', { schema: { hide: true } }, async (request, reply) => {
        const body = (request.body ?? {}) as Record<string, string>;
        const unitId = String(body.unitId ?? '');
        const unit = /^[A-Za-z0-9_]{1,64}$/.test(unitId) ? await reg.findUnit(q, unitId) : null;
        if (!unit) return html(reply, 404, '房屋不存在', '<p class="err">房屋不存在 / no such house</p>');
        try {
          const sent = await deps.signin.start({ unitId: unit.id, certNo: String(body.certNo ?? '').trim().slice(0, 100), ownerName: String(body.ownerName ?? '').trim().slice(0, 50), ip: request.ip });
          return html(reply, 200, '短信验证', smsForm(unit, sent.challengeId, sent.phoneMasked, ''));
        } catch (error) {
          return refused(reply, error, unit, loginForm);
        }
      });

      // Step 2: the SMS code → a session for this one house (a new sign-in replaces the cookie; it never collects houses).
      scope.post('/h5/fund/login/sms', { schema: { hide: true } }, async (request, reply) => {
        const body = (request.body ?? {}) as Record<string, string>;
        const unitId = String(body.unitId ?? '');
        const unit = /^[A-Za-z0-9_]{1,64}$/.test(unitId) ? await reg.findUnit(q, unitId) : null;
        if (!unit) return html(reply, 404, '房屋不存在', '<p class="err">房屋不存在 / no such house</p>');
        const challengeId = String(body.challengeId ?? '').slice(0, 64);
        try {
          const session = await deps.signin.finish({ unitId: unit.id, challengeId, code: String(body.smsCode ?? '').slice(0, 16), ip: request.ip });
          reply.header('set-cookie', `${COOKIE}=${encodeURIComponent(session.token)}; Path=/h5/fund; HttpOnly; SameSite=Lax; Max-Age=${OWNER_SESSION_S}`);
          return reply.redirect(`/h5/fund/units/${unit.id}`, 303);
        } catch (error) {
          return refused(reply, error, unit, (u, message) => (error instanceof AppError && error.code === 'FUND_SMS_CODE_INVALID' ? smsForm(u, challengeId, '', message) : loginForm(u, message)));
        }
      });

      scope.post('/h5/fund/bills/:id/pay', { schema: { hide: true } }, async (request, reply) => {
        const { id } = request.params as { id: string };
        const owner = await ownerOf(request);
        if (!owner) return html(reply, 401, '请先验证', '<p class="err">请先查询房屋并验证业主身份 / find your house and sign in first</p><p><a href="/h5/fund">查询 / search</a></p>');
        try {
          const order = await deps.deposits.payBill(id, owner);
          return reply.redirect(order.cashierUrl, 303);
        } catch (error) {
          if (error instanceof AppError) return html(reply, error.status, '无法支付', `<p class="err">${escapeHtml(error.message)}</p><p><a href="/h5/fund">返回 / back</a></p>`);
          throw error;
        }
      });

      scope.get('/h5/fund/receipts/:no/pdf', { schema: { hide: true }, logSerializers: { req: redactUrl } }, async (request, reply) => {
        const { no } = request.params as { no: string };
        try {
          const pdf = await deps.receipts.pdf(no, String((request.query as { code?: string }).code ?? ''));
          return reply.type('application/pdf').header('content-disposition', `inline; filename="${no}.pdf"`).send(pdf);
        } catch (error) {
          if (error instanceof AppError) return html(reply, error.status, '票据', `<p class="err">${escapeHtml(error.message)}</p>`);
          throw error;
        }
      });

      scope.get('/h5/fund/verify', { schema: { hide: true }, logSerializers: { req: redactUrl } }, async (request, reply) => {
        const query = request.query as { no?: string; amount?: string; code?: string };
        const form = `<form method="get" action="/h5/fund/verify">
          <input name="no" placeholder="票据号 / receipt number" value="${escapeHtml(query.no ?? '')}" maxlength="20">
          <input name="amount" placeholder="金额（分）/ amount in fen" value="${escapeHtml(query.amount ?? '')}" maxlength="15">
          <input name="code" placeholder="校验码 / check code" value="${escapeHtml(query.code ?? '')}" maxlength="19">
          <button>验证 / Verify</button></form>`;
        if (!query.no) return html(reply, 200, '票据验真', `<h2>票据验真 / Verify a receipt</h2>${form}`);
        const amount = parseFen(query.amount ?? '');
        try {
          if (amount === null) throw new AppError('FUND_PARAM_INVALID', 400, '金额须为整数分 / the amount must be whole fen');
          const v = await deps.receipts.verify(query.no, amount, query.code ?? '');
          return html(reply, 200, '票据验真', `<h2 class="paid" id="valid">票据真实有效 / the receipt is genuine</h2>
            <div class="card"><div class="row"><span>票据号</span><b>${escapeHtml(v.receiptNo)}</b></div>
            <div class="row"><span>金额</span><b>¥${fenToYuan(BigInt(v.amountFen))}</b></div>
            <div class="row"><span>房屋</span><span>${escapeHtml(v.estate)} ${escapeHtml(v.unit)}</span></div>
            <div class="row"><span>缴款时间</span><span>${cstDateTime(new Date(v.paidAt))}</span></div></div>${form}`);
        } catch (error) {
          if (error instanceof AppError) return html(reply, error.status, '票据验真', `<h2 class="err" id="invalid">${escapeHtml(error.message)}</h2>${form}`);
          throw error;
        }
      });
    });
  };
}

function loginForm(unit: reg.UnitView, error: string): string {
  return `<h2>验证业主身份 / Prove you own this house</h2>
    <p>${escapeHtml(unit.estate_name)} ${escapeHtml(unit.building_name)}幢${escapeHtml(unit.stair)}单元${escapeHtml(unit.room_no)}</p>
    ${error ? `<p class="err">${escapeHtml(error)}</p>` : ''}
    <form method="post" action="/h5/fund/login">
      <input type="hidden" name="unitId" value="${escapeHtml(unit.id)}">
      <input name="certNo" placeholder="不动产权证号 / certificate number" maxlength="100" required>
      <input name="ownerName" placeholder="业主姓名 / owner's name" maxlength="50" required>
      <button>验证并查看 / Sign in</button>
    </form>
    <p class="muted">开发企业未售房屋由开发企业批量缴纳 / unsold units are paid by the developer</p>`;
}

function smsForm(unit: reg.UnitView, challengeId: string, phoneMasked: string, error: string): string {
  return `<h2>短信验证 / SMS code</h2>
    <p>${escapeHtml(unit.estate_name)} ${escapeHtml(unit.building_name)}幢${escapeHtml(unit.stair)}单元${escapeHtml(unit.room_no)}</p>
    ${phoneMasked ? `<p>验证码已发送至登记手机 ${escapeHtml(phoneMasked)} / a code was sent to the phone on record</p>` : ''}
    ${error ? `<p class="err">${escapeHtml(error)}</p>` : ''}
    <form method="post" action="/h5/fund/login/sms">
      <input type="hidden" name="unitId" value="${escapeHtml(unit.id)}">
      <input type="hidden" name="challengeId" value="${escapeHtml(challengeId)}">
      <input name="smsCode" placeholder="6 位短信验证码 / 6-digit code" inputmode="numeric" maxlength="6" required autocomplete="one-time-code">
      <button>登录 / Sign in</button>
    </form>
    <p class="muted"><a href="/h5/fund/units/${escapeHtml(unit.id)}">重新获取 / send a new code</a></p>`;
}
