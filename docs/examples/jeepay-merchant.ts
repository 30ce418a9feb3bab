// A merchant's integration with Custos's Jeepay-compatible API, written the way a
// merchant's developer would: typed answers, Jeepay's MD5 signature computed here (no
// Custos code imported), plain fetch, and a tiny endpoint that receives and verifies
// notifications. Against the sandbox channel it runs:
//
//   order (reqTime in microseconds, as some SDKs send it) → the sandbox payer pays →
//   verified notification → query → refund → refund query → a stale reqTime, refused.
//
// Run it against a running platform + sandbox:
//   CUSTOS_URL=http://127.0.0.1:8080 MCH_NO=M… APP_ID=… APP_SECRET=… \
//     npm exec -- node docs/examples/jeepay-merchant.ts
// CI runs main() in test/docs.example.test.ts.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

// --- the answers, typed as Jeepay's SDK models declare them ---------------------------

export interface JeepayAnswer<T> {
  code: number; // 0 accepted, 9999 refused
  msg: string;
  sign?: string;
  data?: T;
  errCode?: string; // Custos: a stable code when code is 9999
}

export interface UnifiedOrderData {
  payOrderId: string; mchOrderNo: string; orderState: number; payDataType: string; payData?: string; errCode?: string; errMsg?: string;
}

export interface PayOrderData {
  payOrderId: string; mchNo: string; appId: string; mchOrderNo: string; ifCode?: string; wayCode: string; currency: string;
  subject: string; body: string; channelOrderNo?: string; extParam?: string;
  amount: number; state: number; createdAt: number; successTime?: number; refundAmount: number;
}

export interface RefundOrderData {
  refundOrderId: string; mchRefundNo: string; channelOrderNo?: string; payAmount: number; refundAmount: number; state: number;
}

export interface RefundQueryData extends RefundOrderData {
  payOrderId: string; mchNo: string; appId: string; currency: string; createdAt: number; successTime?: number;
}

export const PAY_SUCCESS = 2;
export const REFUND_SUCCESS = 2;

// --- Jeepay's MD5 signature ------------------------------------------------------------

/** Jeepay's rule: drop sign and empty values, sort the `k=v&` fragments ignoring case, append key=secret, MD5, upper-case hex. */
export function jeepaySign(params: Record<string, unknown>, secret: string): string {
  const fragments = Object.entries(params)
    .filter(([k, v]) => k !== 'sign' && v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}&`)
    .sort((a, b) => caseInsensitive(a, b));
  return createHash('md5').update(`${fragments.join('')}key=${secret}`, 'utf8').digest('hex').toUpperCase();
}

/** Java's String.CASE_INSENSITIVE_ORDER, which Jeepay uses (enough for ASCII keys). */
function caseInsensitive(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
}

export function verifySign(params: Record<string, unknown>, secret: string): boolean {
  return typeof params.sign === 'string' && params.sign.toUpperCase() === jeepaySign(params, secret);
}

// --- the client ------------------------------------------------------------------------

/** reqTime in microseconds, 16 digits (Custos also accepts 10-digit seconds and 13-digit milliseconds). */
export const microsNow = () => `${Date.now()}000`;

export class JeepayClient {
  readonly baseUrl: string;
  readonly mchNo: string;
  readonly appId: string;
  readonly #secret: string;

  constructor(baseUrl: string, mchNo: string, appId: string, secret: string) {
    this.baseUrl = baseUrl;
    this.mchNo = mchNo;
    this.appId = appId;
    this.#secret = secret;
  }

  async call<T>(path: string, biz: Record<string, unknown>, reqTime: string = microsNow()): Promise<JeepayAnswer<T>> {
    const params: Record<string, unknown> = { ...biz, mchNo: this.mchNo, appId: this.appId, reqTime, version: '1.0', signType: 'MD5' };
    params.sign = jeepaySign(params, this.#secret);
    const res = await fetch(this.baseUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(params) });
    const answer = (await res.json()) as JeepayAnswer<T>;
    // Accepted answers are signed over `data` with the same rule: check before trusting them.
    if (answer.code === 0 && !verifySign({ ...(answer.data as Record<string, unknown>), sign: answer.sign }, this.#secret)) {
      throw new Error(`${path}: the answer's signature does not match`);
    }
    return answer;
  }
}

// --- receiving notifications (form-encoded, signed like an answer) ---------------------

export interface NotifyEndpoint {
  url: string;
  /** Resolves with the first verified notification whose fields satisfy `match`. */
  next(match: (n: Record<string, string>) => boolean, timeoutMs?: number): Promise<Record<string, string>>;
  close(): Promise<void>;
}

export async function notifyEndpoint(secret: string): Promise<NotifyEndpoint> {
  const verified: Array<Record<string, string>> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => { body += chunk.length + body.length > 65536 ? '' : chunk; });
    req.on('end', () => {
      const fields = Object.fromEntries(new URLSearchParams(body));
      if (!verifySign(fields, secret)) { // never act on an unsigned or forged notification
        res.statusCode = 400;
        res.end('bad sign');
        return;
      }
      verified.push(fields);
      res.end('success'); // Jeepay's acknowledgement: exactly this body
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/jeepay/notify`,
    async next(match, timeoutMs = 15_000) {
      for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(100)) {
        const found = verified.find(match);
        if (found) return found;
      }
      throw new Error('no verified notification in time');
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, probe: () => Promise<T | null>, tries = 150): Promise<T> {
  for (let i = 0; i < tries; i += 1) {
    const value = await probe();
    if (value !== null) return value;
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}`);
}

// --- the walk-through ------------------------------------------------------------------

export interface ExampleResult {
  order: UnifiedOrderData;
  notification: Record<string, string>;
  paid: PayOrderData;
  refund: RefundOrderData;
  refunded: RefundQueryData;
  /** What the order still holds after the refund, computed with the numbers as they arrived. */
  remainingFen: number;
  stale: JeepayAnswer<unknown>;
}

/** Opens the sandbox's payer page and submits its "pay" form, as the payer's browser would. */
async function payAsPayer(payData: string): Promise<void> {
  const page = await (await fetch(payData)).text();
  const form = /<form method="post" action="([^"]+\/pay)">\s*<input type="hidden" name="token" value="([^"]+)">/.exec(page);
  if (!form) throw new Error('the sandbox payer page has no pay form');
  const res = await fetch(new URL(form[1], payData), { method: 'POST', redirect: 'manual', body: new URLSearchParams({ token: form[2] }) });
  if (res.status >= 400) throw new Error(`the sandbox refused the payment: HTTP ${res.status}`);
}

export async function main(baseUrl: string, mchNo: string, appId: string, secret: string): Promise<ExampleResult> {
  const client = new JeepayClient(baseUrl, mchNo, appId, secret);
  const notify = await notifyEndpoint(secret);
  try {
    const mchOrderNo = `ex-${Date.now()}`;
    const created = await client.call<UnifiedOrderData>('/api/pay/unifiedOrder', {
      mchOrderNo, wayCode: 'WX_NATIVE', amount: 2500, currency: 'cny', subject: '2026年12月物业费', body: '1幢2单元301',
      notifyUrl: notify.url,
    });
    if (created.code !== 0 || !created.data) throw new Error(`order refused: ${created.errCode} ${created.msg}`);
    const order = created.data;

    // Sandbox only: act as the payer who scanned payData and confirmed — open the payer
    // page and submit its own 确认支付 form (the page carries a per-order token; a bare
    // POST without it is refused).
    if (!order.payData) throw new Error('the order has no payData to pay');
    await payAsPayer(order.payData);
    const notification = await notify.next((n) => n.payOrderId === order.payOrderId && Number(n.state) === PAY_SUCCESS);

    const paid = await until('the order paid', async () => {
      const q = await client.call<PayOrderData>('/api/pay/query', { payOrderId: order.payOrderId });
      return q.data?.state === PAY_SUCCESS ? q.data : null;
    });

    const mchRefundNo = `${mchOrderNo}-r1`;
    const refundAnswer = await client.call<RefundOrderData>('/api/refund/refundOrder', {
      payOrderId: order.payOrderId, mchRefundNo, refundAmount: 300, currency: 'cny', refundReason: '多缴退还',
    });
    if (refundAnswer.code !== 0 || !refundAnswer.data) throw new Error(`refund refused: ${refundAnswer.errCode} ${refundAnswer.msg}`);
    const refunded = await until('the refund done', async () => {
      const q = await client.call<RefundQueryData>('/api/refund/query', { mchRefundNo });
      return q.data?.state === REFUND_SUCCESS ? q.data : null;
    });

    // A request signed 10 minutes ago (a replay) is refused before anything is read.
    const stale = await client.call<unknown>('/api/pay/query', { payOrderId: order.payOrderId }, String(Date.now() - 10 * 60 * 1000));

    return { order, notification, paid, refund: refundAnswer.data, refunded, remainingFen: paid.amount - refunded.refundAmount, stale };
  } finally {
    await notify.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const env = (name: string) => process.env[name] ?? (() => { throw new Error(`set ${name}`); })();
  main(env('CUSTOS_URL'), env('MCH_NO'), env('APP_ID'), env('APP_SECRET'))
    .then((r) => console.log(JSON.stringify(r, null, 2)))
    .catch((e: unknown) => { console.error(e); process.exitCode = 1; });
}
