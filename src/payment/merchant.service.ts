// Merchants and their apps: created by the CLI or the admin API, with an app secret
// sealed at rest; the app cache serves signature checks without a query per request.
import { randomBytes, randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { withRetry } from '../platform/retry.ts';
import type { Database, Kdb, Tx } from '../platform/db.ts';
import { badRequest } from '../platform/errors.ts';
import type { SecretBox } from '../platform/secrets.ts';
import * as repo from './payment.repo.ts';
import { paymentErrors } from './payment.errors.ts';
import { SIGN_TYPES, type SignType } from './sign.ts';
import { WAY_CODES } from './types.ts';
import { createOutbound, type Outbound } from '../platform/outbound.ts';

export interface App {
  appId: string;
  mchNo: string;
  name: string;
  secret: string;
  signTypes: SignType[];
  notifyUrl: string | null;
  ipAllowlist: string[] | null;
  active: boolean;
}

const APP_CACHE_MS = 30_000;
const APP_CACHE_MAX = 10_000;

export type MerchantService = ReturnType<typeof createMerchantService>;

export function createMerchantService(deps: { db: Database; box: SecretBox; outbound?: Outbound }) {
  const { db, box } = deps;
  const outbound = deps.outbound ?? createOutbound();
  const cache = new Map<string, { app: App | null; until: number }>();

  async function createMerchant(input: { name: string; notifyUrl?: string | null; signTypes?: string[]; ipAllowlist?: string[] | null; mchNo?: string }) {
    const name = input.name?.trim();
    if (!name || name.length > 100) throw badRequest('PARAM_INVALID', '商户名称必填，最多 100 字 / name is required, at most 100 characters');
    if (input.notifyUrl && !/^https?:\/\/\S+$/.test(input.notifyUrl)) throw badRequest('PARAM_INVALID', 'notifyUrl must be an http(s) URL');
    const verdict = input.notifyUrl ? outbound.checkUrl(input.notifyUrl) : { ok: true as const };
    if (!verdict.ok) throw paymentErrors.notifyUrlForbidden(`notifyUrl 不能指向内网、本机或保留地址 / notifyUrl must be a public http(s) address (${verdict.reason})`);
    const signTypes = input.signTypes ?? [...SIGN_TYPES];
    for (const t of signTypes) if (!(SIGN_TYPES as readonly string[]).includes(t)) throw badRequest('PARAM_INVALID', `unknown signType ${t}; use ${SIGN_TYPES.join(', ')}`);
    for (const ip of input.ipAllowlist ?? []) if (isIP(ip) === 0) throw badRequest('PARAM_INVALID', `IP 白名单中有非法地址 / ${JSON.stringify(ip)} is not an IP address`);
    const appId = randomBytes(12).toString('hex');
    const appSecret = randomBytes(24).toString('base64url');
    // M + time in ms + 4 random digits (like Jeepay's M1621873433953); a clash draws again.
    let mchNo = input.mchNo ?? '';
    await withRetry(() => {
      mchNo = input.mchNo ?? `M${Date.now()}${randomInt(0, 10_000).toString().padStart(4, '0')}`;
      return db.kysely.transaction().execute(async (tx) => {
        await repo.insertMerchant(tx, mchNo, name);
        await repo.insertApp(tx, {
          app_id: appId, mch_no: mchNo, name: `${name} 默认应用`, secret_sealed: box.seal(appSecret), sign_types: signTypes.join(','),
          notify_url: input.notifyUrl ?? null, ip_allowlist: input.ipAllowlist?.join(',') ?? null,
        });
      });
    }, input.mchNo ? 1 : 4);
    return { mchNo, appId, appSecret };
  }

  /** `q`: the caller's transaction when it holds one (PGlite has a single session: a second handle would wait forever). */
  async function getApp(appId: string, q: Kdb | Tx = db.kysely): Promise<App | null> {
    const hit = cache.get(appId);
    if (hit && hit.until > Date.now()) return hit.app;
    const row = await repo.findApp(q, appId);
    const app: App | null = row && {
      appId: row.app_id, mchNo: row.mch_no, name: row.name, secret: box.open(row.secret_sealed),
      signTypes: row.sign_types.split(',') as SignType[], notifyUrl: row.notify_url,
      ipAllowlist: row.ip_allowlist ? row.ip_allowlist.split(',') : null, active: row.state === 1,
    };
    if (cache.size >= APP_CACHE_MAX) cache.clear();
    cache.set(appId, { app, until: Date.now() + APP_CACHE_MS });
    return app;
  }

  async function setRoute(mchNo: string, wayCode: string, ifCode: string, fallbackIfCode: string | null) {
    if (!(await repo.findMerchant(db.kysely, mchNo))) throw paymentErrors.merchantNotFound(`商户不存在 / no merchant ${mchNo}`);
    if (wayCode !== '*' && !(WAY_CODES as readonly string[]).includes(wayCode)) throw paymentErrors.unknownWay(`unknown wayCode ${wayCode}`);
    await repo.upsertRoute(db.kysely, { mch_no: mchNo, way_code: wayCode, if_code: ifCode, fallback_if_code: fallbackIfCode });
  }

  return { createMerchant, getApp, setRoute };
}
