// Owners' id numbers and phones at rest: sealed with AES-256-GCM (the platform's secret
// box, under a key derived from the master key) beside a keyed hash (HMAC-SHA256, another
// derived key) that lookups compare. The register's `owners` column holds StoredOwner;
// only the fund center's views open the sealed fields.
import { createHmac } from 'node:crypto';
import { createSecretBox, type SecretBox } from '../../platform/secrets.ts';
import type { Owner } from './model.ts';

/** An owner as the register stores it: the name in clear, id number and phone sealed. */
export interface StoredOwner {
  name: string;
  idNoEnc?: string | null;
  idNoHash?: string | null;
  phoneEnc?: string | null;
  phoneHash?: string | null;
  /** Legacy rows only (before 0010): sealed at start-up by sealLegacyOwners. */
  idNo?: string | null;
  phone?: string | null;
}

export type PiiKind = 'idNo' | 'phone';

export interface Pii {
  seal(owners: readonly Owner[]): StoredOwner[];
  open(owner: StoredOwner): Owner;
  hash(kind: PiiKind, value: string): string;
  /** A keyed HMAC for other secrets of the fund (voting codes, SMS codes), by purpose. */
  mac(purpose: string, value: string): string;
}

const normalize = (kind: PiiKind, value: string) => (kind === 'idNo' ? value.trim().toUpperCase() : value.trim());

export function createPii(masterKey: Buffer): Pii {
  const derive = (label: string) => createHmac('sha256', masterKey).update(label).digest();
  const box: SecretBox = createSecretBox(derive('custos/fund/pii-enc/v1'));
  const hashKey = derive('custos/fund/pii-hash/v1');
  const macKey = derive('custos/fund/proof-mac/v1');
  const hash = (kind: PiiKind, value: string) => createHmac('sha256', hashKey).update(`${kind}\u0000${normalize(kind, value)}`).digest('hex');
  const sealOne = (o: Owner | StoredOwner): StoredOwner => {
    if (!('idNo' in o) && !('phone' in o)) return { ...o } as StoredOwner;
    const idNo = o.idNo ?? null;
    const phone = o.phone ?? null;
    const stored = o as StoredOwner;
    return {
      name: o.name,
      idNoEnc: idNo === null ? (stored.idNoEnc ?? null) : box.seal(normalize('idNo', idNo)),
      idNoHash: idNo === null ? (stored.idNoHash ?? null) : hash('idNo', idNo),
      phoneEnc: phone === null ? (stored.phoneEnc ?? null) : box.seal(normalize('phone', phone)),
      phoneHash: phone === null ? (stored.phoneHash ?? null) : hash('phone', phone),
    };
  };
  return {
    seal: (owners) => owners.map(sealOne),
    open(o) {
      const idNo = o.idNoEnc ? box.open(o.idNoEnc) : (o.idNo ?? null);
      const phone = o.phoneEnc ? box.open(o.phoneEnc) : (o.phone ?? null);
      return { name: o.name, idNo, phone };
    },
    hash,
    mac: (purpose, value) => createHmac('sha256', macKey).update(`${purpose}\u0000${value}`).digest('hex'),
  };
}

/** Rewrites legacy owners (clear idNo/phone) into StoredOwner; null when nothing is clear. */
export function sealLegacy(pii: Pii, owners: readonly StoredOwner[]): StoredOwner[] | null {
  if (!owners.some((o) => (o.idNo ?? null) !== null || (o.phone ?? null) !== null || 'idNo' in o || 'phone' in o)) return null;
  return pii.seal(owners.map((o) => ({ name: o.name, idNo: o.idNo ?? null, phone: o.phone ?? null, ...keep(o) })) as Owner[]);
}

function keep(o: StoredOwner) {
  // Already-sealed fields survive when the clear field is null.
  const out: Partial<StoredOwner> = {};
  if (o.idNoEnc) Object.assign(out, { idNoEnc: o.idNoEnc, idNoHash: o.idNoHash });
  if (o.phoneEnc) Object.assign(out, { phoneEnc: o.phoneEnc, phoneHash: o.phoneHash });
  return out;
}

/** 13800000000 → 138****0000. */
export const maskPhone = (phone: string) => (phone.length >= 7 ? `${phone.slice(0, 3)}${'*'.repeat(phone.length - 7)}${phone.slice(-4)}` : '*'.repeat(phone.length));
