// Optional outer layers around a statement, by configuration: decryption with a key
// agreed offline (SM4-CBC, SM4-ECB, AES-256-CBC, AES-256-GCM; node:crypto, PKCS#7
// padding for the block modes), then a zip with a single statement entry. Both work on
// a bounded buffer. A wrong key is BILL_DECRYPT_FAILED and nothing is parsed. CBC and
// ECB carry no integrity check: a wrong key is caught by the padding check (all but
// ~1/256 of the time) and otherwise by the statement's own checks; GCM always catches it.
import { createDecipheriv, createCipheriv, randomBytes } from 'node:crypto';
import iconv from 'iconv-lite';
import { readZip, ZipError } from '../../platform/zip.ts';
import { BillRejected } from './wechat.ts';

export type CipherName = 'sm4-cbc' | 'sm4-ecb' | 'aes-256-cbc' | 'aes-256-gcm';

export interface DecryptLayer {
  algorithm: CipherName;
  /** The key, hex (SM4: 16 bytes, AES-256: 32 bytes). */
  keyHex: string;
  /** CBC/GCM IV, hex; when absent it is the file's first 16 (CBC) or 12 (GCM) bytes. GCM's tag is the last 16 bytes. */
  ivHex?: string;
}

export interface OuterLayers {
  decrypt?: DecryptLayer;
  /** The (decrypted) file is a zip: take its single entry, or the one whose name matches. */
  unzip?: boolean | { entryNamePattern: string };
}

const KEY_BYTES: Record<CipherName, number> = { 'sm4-cbc': 16, 'sm4-ecb': 16, 'aes-256-cbc': 32, 'aes-256-gcm': 32 };
const IV_BYTES: Record<CipherName, number> = { 'sm4-cbc': 16, 'sm4-ecb': 0, 'aes-256-cbc': 16, 'aes-256-gcm': 12 };
const TAG_BYTES = 16;
const ENTRY_BYTES_MAX = 512 * 1024 * 1024;

function keyOf(layer: DecryptLayer): Buffer {
  if (!(layer.algorithm in KEY_BYTES)) throw new BillRejected('BILL_DECRYPT_FAILED', `unknown algorithm ${JSON.stringify(layer.algorithm)}: use sm4-cbc, sm4-ecb, aes-256-cbc or aes-256-gcm`);
  const key = /^[0-9a-fA-F]*$/.test(layer.keyHex) ? Buffer.from(layer.keyHex, 'hex') : Buffer.alloc(0);
  if (key.length !== KEY_BYTES[layer.algorithm]) throw new BillRejected('BILL_DECRYPT_FAILED', `the ${layer.algorithm} key must be ${KEY_BYTES[layer.algorithm]} bytes (${KEY_BYTES[layer.algorithm] * 2} hex digits)`);
  return key;
}

export function decrypt(data: Buffer, layer: DecryptLayer): Buffer {
  const key = keyOf(layer);
  const ivBytes = IV_BYTES[layer.algorithm];
  let iv: Buffer | null = null;
  let body = data;
  if (ivBytes > 0) {
    if (layer.ivHex !== undefined) iv = Buffer.from(layer.ivHex, 'hex');
    else {
      iv = data.subarray(0, ivBytes);
      body = data.subarray(ivBytes);
    }
    if (iv.length !== ivBytes) throw new BillRejected('BILL_DECRYPT_FAILED', `the ${layer.algorithm} IV must be ${ivBytes} bytes`);
  }
  try {
    if (layer.algorithm === 'aes-256-gcm') {
      if (body.length < TAG_BYTES) throw new Error('shorter than the GCM tag');
      const decipher = createDecipheriv('aes-256-gcm', key, iv as Buffer);
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
    }
    const decipher = createDecipheriv(layer.algorithm, key, iv);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch (error) {
    throw new BillRejected('BILL_DECRYPT_FAILED', `the file does not decrypt with the configured ${layer.algorithm} key (wrong key, or a damaged file): ${(error as Error).message}`);
  }
}

/** The inverse of decrypt (IV, when not configured, is random and prefixed): for senders, the sandbox and tests. */
export function encrypt(data: Buffer, layer: DecryptLayer): Buffer {
  const key = keyOf(layer);
  const ivBytes = IV_BYTES[layer.algorithm];
  const iv = ivBytes === 0 ? null : layer.ivHex !== undefined ? Buffer.from(layer.ivHex, 'hex') : randomBytes(ivBytes);
  const prefix = ivBytes > 0 && layer.ivHex === undefined ? (iv as Buffer) : Buffer.alloc(0);
  if (layer.algorithm === 'aes-256-gcm') {
    const cipher = createCipheriv('aes-256-gcm', key, iv as Buffer);
    const body = Buffer.concat([cipher.update(data), cipher.final()]);
    return Buffer.concat([prefix, body, cipher.getAuthTag()]);
  }
  const cipher = createCipheriv(layer.algorithm, key, iv);
  return Buffer.concat([prefix, cipher.update(data), cipher.final()]);
}

/** The zip's single entry (or the one whose decoded name matches the pattern). */
export function unzipOne(data: Buffer, entryNamePattern: string | null, bytesMax: number = ENTRY_BYTES_MAX): { name: string; data: Buffer } {
  let entries;
  try {
    entries = readZip(data, { entriesMax: 64, uncompressedBytesMax: bytesMax });
  } catch (error) {
    if (error instanceof ZipError) {
      const code = error.code === 'ZIP_TRUNCATED' ? 'BILL_TRUNCATED' : error.code === 'ZIP_TOO_LARGE' ? 'BILL_TOO_LARGE' : 'BILL_ARCHIVE_INVALID';
      throw new BillRejected(code, `not a readable zip (${error.code}): ${error.message}`);
    }
    throw error;
  }
  const named = entries.map((e) => ({ name: e.utf8Name ? e.name.toString('utf8') : iconv.decode(e.name, 'gbk'), data: e.data })).filter((e) => !e.name.endsWith('/'));
  const pattern = entryNamePattern === null ? null : new RegExp(entryNamePattern);
  const chosen = pattern === null ? named : named.filter((e) => pattern.test(e.name));
  if (chosen.length !== 1) {
    throw new BillRejected('BILL_ARCHIVE_INVALID', `the zip must hold exactly one ${pattern ? `entry matching ${pattern}` : 'file'}; it holds ${named.map((e) => e.name).join(', ') || 'nothing'}`);
  }
  return chosen[0];
}
