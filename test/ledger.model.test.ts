// Model-based property test of the ledger. fast-check generates random command
// sequences (account batches, transfer requests — alone or several at once — clock
// advances, expiry runs); each sequence runs against the real ledger (a fresh database:
// PGlite in memory, or PostgreSQL with DATABASE_URL) and against the small in-memory
// model below, written from the rules of engine.ts but sharing no code with it.
// After every step the result codes, every account (four balances, closed), every
// transfer row (applied or failed) and the per-ledger totals must agree; at the end
// verify(), getAccount, listEntries (paged) and balanceAt are checked against the model.
//
//   FC_SEED=<n> [FC_PATH=<path>] reproduces a failure; FC_RUNS=<n> changes the number
//   of runs; FC_NO_SHRINK=1 stops at the first failure; FC_TIME_LIMIT_S=<s> caps the
//   whole property, shrinking included (default 300).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createLedger, type Ledger } from '../src/ledger/ledger.service.ts';
import type { AccountInput, Balances, TransferInput } from '../src/ledger/types.ts';
import { ManualClock } from '../src/platform/clock.ts';
import { sql, type Database } from '../src/platform/db.ts';
import { openTestDb } from './helpers.ts';

// ---------------------------------------------------------------------------------
// The model's own constants (deliberately not imported).

const LINKED = 1;
const PENDING = 2;
const POST = 4;
const VOID = 8;
const CLOSING_DEBIT = 16;
const CLOSING_CREDIT = 32;
const TRANSFER_FLAGS = 63;
const DEBITS_LIMITED = 1; // debits_must_not_exceed_credits
const CREDITS_LIMITED = 2; // credits_must_not_exceed_debits
const HISTORY = 4;
const I8_MAX = (1n << 63n) - 1n;
const TIMEOUT_MAX = 366 * 24 * 3600;
const NS = 1_000_000_000n;
const ID_OK = /^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$/;
const ST_PENDING = 1;
const ST_POSTED = 2;
const ST_VOIDED = 3;
const ST_EXPIRED = 4;
const ACCOUNT_IDS = 8;
const FAR_FUTURE = 1n << 62n;

type Code = string;

interface MAccount {
  id: string; ledger: number; code: number; flags: number; ref: string | null; metadata: string | null;
  dp: bigint; cp: bigint; dpe: bigint; cpe: bigint; closed: boolean;
}

interface MRow {
  id: string; failure: Code | null; debit: string | null; credit: string | null; amount: bigint;
  ledger: number; code: number; flags: number; pending_id: string | null; timeout_s: number;
  expires_at: bigint; status: number | null; ref: string | null; metadata: string | null;
}

// ---------------------------------------------------------------------------------
// Generated commands. Transfer specs are resolved into TransferInputs by the model at
// run time (so "post a pending transfer" can pick one that exists in this run).

type NewSpec = {
  t: 'new'; linked: boolean; smart: boolean; dr: number; cr: number; amount: bigint;
  ledger: 'auto' | 1 | 2; code: number; pending: boolean; timeout: number; closing: number;
};
type PostSpec = {
  t: 'post'; linked: boolean; ref: number; live: boolean;
  amount: 'null' | 'full' | 'partial' | 'over' | 'zero'; fields: 'none' | 'match' | 'mismatch';
};
type VoidSpec = {
  t: 'void'; linked: boolean; ref: number; live: boolean;
  amount: 'null' | 'exact' | 'wrong'; fields: 'none' | 'match' | 'mismatch';
};
/** The same id again: an earlier transfer of the run, same body or a changed one. */
type DupSpec = { t: 'dup'; ref: number; mode: 'same' | 'amount' | 'ref' };
/** A failed id again (same body or changed). */
type RetrySpec = { t: 'retry'; ref: number; mode: 'same' | 'amount' };
/** An earlier item of the same request again (duplicates inside a batch or a chain). */
type InnerSpec = { t: 'inner'; back: number; mode: 'same' | 'amount' };
const BAD = [
  'zero', 'negative', 'same', 'unknown_account', 'ledger_mismatch', 'ledger0', 'code0', 'flags', 'post_and_void',
  'pending_and_post', 'closing_plain', 'pending_id_on_plain', 'timeout_plain', 'timeout_big', 'timeout_negative',
  'empty_account', 'bad_id', 'unknown_pending', 'pending_id_self', 'pending_id_empty', 'resolve_timeout',
  'resolve_same_accounts', 'post_not_pending', 'post_failed',
] as const;
type BadSpec = { t: 'bad'; linked: boolean; what: (typeof BAD)[number]; n: number };
type TSpec = NewSpec | PostSpec | VoidSpec | DupSpec | RetrySpec | InnerSpec | BadSpec;

interface CatalogEntry { ledger: number; code: number; flags: number }
interface AccountSpec { idx: number; change: null | CatalogEntry }
type Cmd =
  | { k: 'accounts'; items: AccountSpec[] }
  /** no: one request after the other; split: at once, each request on its own share of
   *  the accounts; mixed: at once, anything goes (PostgreSQL sends them one by one
   *  unless they turn out disjoint). */
  | { k: 'transfers'; requests: TSpec[][]; together: 'no' | 'split' | 'mixed' }
  | { k: 'advance'; seconds: number }
  | { k: 'expire' };

// ---------------------------------------------------------------------------------
// The model.

const isSuccess = (c: Code) => c === 'ok' || c === 'exists';
/** Codes after which the id is recorded as failed. */
const recorded = (c: Code) =>
  c !== 'ok' && c !== 'exists' && c !== 'exists_with_different_fields' && c !== 'id_already_failed' && c !== 'id_invalid';

class Model {
  accounts = new Map<string, MAccount>();
  rows = new Map<string, MRow>();
  now: bigint;
  /** Every transfer input handed to the ledger, for duplicates and retries. */
  submitted: TransferInput[] = [];
  private seq = 0;
  /** While resolving a request's specs for 'split': use only accounts aN with N % n = k. */
  private part: { k: number; n: number } | null = null;

  constructor(now: bigint) {
    this.now = now;
  }

  // -- accounts -------------------------------------------------------------------

  createAccounts(inputs: AccountInput[]): Code[] {
    return inputs.map((a) => {
      if (!ID_OK.test(a.id)) return 'id_invalid';
      if ((a.flags & ~7) !== 0) return 'flags_invalid';
      if ((a.flags & 3) === 3) return 'flags_are_mutually_exclusive';
      if (!Number.isInteger(a.ledger) || a.ledger <= 0) return 'ledger_must_not_be_zero';
      if (!Number.isInteger(a.code) || a.code <= 0) return 'code_must_not_be_zero';
      const prior = this.accounts.get(a.id);
      if (prior) {
        const same = prior.ledger === a.ledger && prior.code === a.code && prior.flags === a.flags &&
          prior.ref === a.ref && prior.metadata === a.metadata;
        return same ? 'exists' : 'exists_with_different_fields';
      }
      this.accounts.set(a.id, {
        id: a.id, ledger: a.ledger, code: a.code, flags: a.flags, ref: a.ref, metadata: a.metadata,
        dp: 0n, cp: 0n, dpe: 0n, cpe: 0n, closed: false,
      });
      return 'ok';
    });
  }

  // -- transfers ------------------------------------------------------------------

  /** Expires every pending transfer whose time has come (the ledger's own void). */
  expire(): number {
    const due = [...this.rows.values()]
      .filter((r) => r.failure === null && r.status === ST_PENDING && r.expires_at > 0n && r.expires_at <= this.now)
      .sort((a, b) => (a.expires_at < b.expires_at ? -1 : a.expires_at > b.expires_at ? 1 : a.id < b.id ? -1 : 1));
    for (const p of due) this.release(p, ST_EXPIRED, p.amount, `#expire:${p.id}`, VOID, null);
    return due.length;
  }

  /** One caller's request (one segment of a group-committed batch). */
  applyRequest(specs: TSpec[], part: { k: number; n: number } | null = null): { inputs: TransferInput[]; results: Code[] } {
    this.part = part;
    try {
      return this.applySegment(specs);
    } finally {
      this.part = null;
    }
  }

  private applySegment(specs: TSpec[]): { inputs: TransferInput[]; results: Code[] } {
    this.expire();
    const inputs: TransferInput[] = [];
    const results: Code[] = [];
    const n = specs.length;
    const next = (): TransferInput => {
      const t = this.resolveSpec(specs[inputs.length], inputs);
      inputs.push(t);
      this.submitted.push(t);
      return t;
    };
    while (inputs.length < n) {
      const first = next();
      if ((first.flags & LINKED) === 0) {
        const code = this.decide(first);
        if (recorded(code)) this.recordFailure(first, code);
        results.push(code);
        continue;
      }
      // A chain: linked items up to the first one without the flag; if the request
      // ends first, its last item reports the chain open.
      const saved = this.snapshot();
      const chain = [first];
      const codes: Code[] = [];
      let failedAt = -1;
      for (let k = 0; ; k += 1) {
        const t = chain[k];
        const linked = (t.flags & LINKED) !== 0;
        const code = linked && inputs.length === n ? 'linked_event_chain_open' : this.decide(t);
        codes.push(code);
        if (!isSuccess(code)) {
          failedAt = k;
          break;
        }
        if (!linked) break;
        chain.push(next());
      }
      if (failedAt < 0) {
        results.push(...codes);
        continue;
      }
      while ((chain[chain.length - 1].flags & LINKED) !== 0 && inputs.length < n) chain.push(next());
      this.restore(saved);
      // after restore, rows are as they were before the chain: only an id that had a row then still 'exists'
      const preexisting = chain.map((t) => this.rows.has(t.id));
      chain.forEach((t, k) => {
        const code = k === failedAt ? codes[k] : k < failedAt && codes[k] === 'exists' && preexisting[k] ? 'exists' : 'linked_event_failed';
        results.push(code);
        if (!recorded(code) || !ID_OK.test(t.id) || this.rows.has(t.id)) return;
        this.recordFailure(t, code);
      });
    }
    return { inputs, results };
  }

  private snapshot(): { accounts: Map<string, MAccount>; rows: Map<string, MRow> } {
    return {
      accounts: new Map([...this.accounts].map(([k, v]) => [k, { ...v }])),
      rows: new Map([...this.rows].map(([k, v]) => [k, { ...v }])),
    };
  }

  private restore(s: { accounts: Map<string, MAccount>; rows: Map<string, MRow> }): void {
    this.accounts = s.accounts;
    this.rows = s.rows;
  }

  private recordFailure(t: TransferInput, code: Code): void {
    this.rows.set(t.id, {
      id: t.id, failure: code, debit: null, credit: null, amount: 0n, ledger: t.ledger, code: t.code,
      flags: t.flags & TRANSFER_FLAGS, pending_id: t.pending_id, timeout_s: 0, expires_at: 0n, status: null,
      ref: t.ref, metadata: t.metadata,
    });
  }

  /** One transfer's result; applies it when it is ok. */
  private decide(t: TransferInput): Code {
    if (!ID_OK.test(t.id)) return 'id_invalid';
    const old = this.rows.get(t.id);
    if (old) {
      if (old.failure !== null) return 'id_already_failed';
      return this.sameAs(t, old) ? 'exists' : 'exists_with_different_fields';
    }
    const bad = this.wellFormed(t);
    if (bad !== null) return bad;
    return (t.flags & (POST | VOID)) !== 0 ? this.resolvePending(t) : this.createNew(t);
  }

  private sameAs(t: TransferInput, r: MRow): boolean {
    if ((t.flags & ~TRANSFER_FLAGS) !== 0 || t.flags !== r.flags) return false;
    if (t.pending_id !== r.pending_id || t.ref !== r.ref || t.metadata !== r.metadata || t.timeout_s !== r.timeout_s) return false;
    if ((t.flags & (POST | VOID)) !== 0) {
      return (t.debit_account_id === null || t.debit_account_id === r.debit) &&
        (t.credit_account_id === null || t.credit_account_id === r.credit) &&
        (t.ledger === 0 || t.ledger === r.ledger) && (t.code === 0 || t.code === r.code) &&
        (t.amount === null || t.amount === r.amount);
    }
    return t.debit_account_id === r.debit && t.credit_account_id === r.credit && t.amount === r.amount &&
      t.ledger === r.ledger && t.code === r.code;
  }

  private wellFormed(t: TransferInput): Code | null {
    if ((t.flags & ~TRANSFER_FLAGS) !== 0) return 'flags_invalid';
    const kinds = [PENDING, POST, VOID].filter((f) => (t.flags & f) !== 0);
    if (kinds.length > 1) return 'flags_are_mutually_exclusive';
    const kind = kinds[0] ?? 0;
    if ((t.flags & (CLOSING_DEBIT | CLOSING_CREDIT)) !== 0 && kind !== PENDING) return 'closing_transfer_must_be_pending';
    if (kind === POST || kind === VOID) {
      if (t.pending_id === null || t.pending_id === '') return 'pending_id_must_not_be_empty';
      if (t.pending_id === t.id) return 'pending_id_must_be_different';
      if (t.timeout_s !== 0) return 'timeout_reserved_for_pending_transfer';
      if (t.debit_account_id !== null && t.debit_account_id === t.credit_account_id) return 'accounts_must_be_different';
      return null;
    }
    if (t.pending_id !== null) return 'pending_id_must_be_empty';
    if (!t.debit_account_id || !t.credit_account_id) return 'account_id_must_not_be_empty';
    if (t.debit_account_id === t.credit_account_id) return 'accounts_must_be_different';
    if (t.amount === null || t.amount <= 0n) return 'amount_must_be_positive';
    if (t.ledger === 0) return 'ledger_must_not_be_zero';
    if (t.code === 0) return 'code_must_not_be_zero';
    if (t.timeout_s !== 0 && kind !== PENDING) return 'timeout_reserved_for_pending_transfer';
    if (t.timeout_s < 0 || t.timeout_s > TIMEOUT_MAX) return 'timeout_reserved_for_pending_transfer';
    return null;
  }

  private createNew(t: TransferInput): Code {
    const d = this.accounts.get(t.debit_account_id as string);
    const c = this.accounts.get(t.credit_account_id as string);
    if (d === undefined || c === undefined) return 'account_not_found';
    if (d.ledger !== t.ledger || c.ledger !== t.ledger) return 'ledger_mismatch';
    if (d.closed || c.closed) return 'account_closed';
    const amount = t.amount as bigint;
    const pending = (t.flags & PENDING) !== 0;
    const dNext = pending ? d.dpe + amount : d.dp + amount;
    const cNext = pending ? c.cpe + amount : c.cp + amount;
    if (dNext > I8_MAX || cNext > I8_MAX) return 'overflows';
    if ((d.flags & DEBITS_LIMITED) !== 0 && d.dp + d.dpe + amount > d.cp) return 'exceeds_credits';
    if ((c.flags & CREDITS_LIMITED) !== 0 && c.cp + c.cpe + amount > c.dp) return 'exceeds_debits';
    if (pending) {
      d.dpe += amount;
      c.cpe += amount;
      if ((t.flags & CLOSING_DEBIT) !== 0) d.closed = true;
      if ((t.flags & CLOSING_CREDIT) !== 0) c.closed = true;
    } else {
      d.dp += amount;
      c.cp += amount;
    }
    this.rows.set(t.id, {
      id: t.id, failure: null, debit: d.id, credit: c.id, amount, ledger: t.ledger, code: t.code,
      flags: t.flags, pending_id: null, timeout_s: pending ? t.timeout_s : 0,
      expires_at: pending && t.timeout_s > 0 ? this.now + BigInt(t.timeout_s) * NS : 0n,
      status: pending ? ST_PENDING : null, ref: t.ref, metadata: t.metadata,
    });
    return 'ok';
  }

  private resolvePending(t: TransferInput): Code {
    const p = this.rows.get(t.pending_id as string);
    if (p === undefined || p.failure !== null) return 'pending_not_found';
    if ((p.flags & PENDING) === 0) return 'pending_transfer_not_pending';
    if (t.debit_account_id !== null && t.debit_account_id !== p.debit) return 'pending_mismatch';
    if (t.credit_account_id !== null && t.credit_account_id !== p.credit) return 'pending_mismatch';
    if (t.ledger !== 0 && t.ledger !== p.ledger) return 'pending_mismatch';
    if (t.code !== 0 && t.code !== p.code) return 'pending_mismatch';
    if (p.status === ST_EXPIRED) return 'pending_expired';
    if (p.status !== ST_PENDING) return 'pending_already_resolved';
    if (p.expires_at > 0n && p.expires_at <= this.now) return 'pending_expired';
    const d = this.accounts.get(p.debit as string) as MAccount;
    const c = this.accounts.get(p.credit as string) as MAccount;
    if ((t.flags & POST) !== 0) {
      let amount = p.amount;
      if (t.amount !== null) {
        if (t.amount <= 0n) return 'amount_must_be_positive';
        if (t.amount > p.amount) return 'exceeds_pending_amount';
        amount = t.amount;
      }
      if (d.closed && (p.flags & CLOSING_DEBIT) === 0) return 'account_closed';
      if (c.closed && (p.flags & CLOSING_CREDIT) === 0) return 'account_closed';
      if (d.dp + amount > I8_MAX || c.cp + amount > I8_MAX) return 'overflows';
      this.release(p, ST_POSTED, amount, t.id, t.flags, t);
      return 'ok';
    }
    if (t.amount !== null && t.amount !== p.amount) return 'pending_amount_mismatch';
    this.release(p, ST_VOIDED, p.amount, t.id, t.flags, t);
    return 'ok';
  }

  /** Ends a pending transfer: releases the hold, posts `amount` when posting. */
  private release(p: MRow, status: number, amount: bigint, id: string, flags: number, t: TransferInput | null): void {
    const d = this.accounts.get(p.debit as string) as MAccount;
    const c = this.accounts.get(p.credit as string) as MAccount;
    d.dpe -= p.amount;
    c.cpe -= p.amount;
    assert.ok(d.dpe >= 0n && c.cpe >= 0n, 'model: pending balances stay non-negative');
    if (status === ST_POSTED) {
      d.dp += amount;
      c.cp += amount;
    } else {
      if ((p.flags & CLOSING_DEBIT) !== 0) d.closed = false;
      if ((p.flags & CLOSING_CREDIT) !== 0) c.closed = false;
    }
    p.status = status;
    this.rows.set(id, {
      id, failure: null, debit: d.id, credit: c.id, amount, ledger: p.ledger, code: p.code,
      flags: flags & TRANSFER_FLAGS, pending_id: p.id, timeout_s: 0, expires_at: 0n, status: null,
      ref: t ? t.ref : null, metadata: t ? t.metadata : null,
    });
  }

  // -- turning specs into inputs ----------------------------------------------------

  private freshId(): string {
    this.seq += 1;
    return `t${this.seq}`;
  }

  private inPart(id: string | null): boolean {
    if (this.part === null || id === null) return true;
    const m = /^a(\d+)$/.exec(id);
    return m === null || Number(m[1]) % this.part.n === this.part.k;
  }

  /** Account id number x (created or not), inside the current share. */
  private rawAccount(x: number): string {
    if (this.part === null) return `a${x % ACCOUNT_IDS}`;
    const { k, n } = this.part;
    return `a${k + n * (x % Math.ceil((ACCOUNT_IDS - k) / n))}`;
  }

  private touchesOnlyPart(t: TransferInput): boolean {
    const p = t.pending_id === null ? undefined : this.rows.get(t.pending_id);
    return [t.debit_account_id, t.credit_account_id, p?.debit ?? null, p?.credit ?? null].every((id) => this.inPart(id));
  }

  private createdIds(): string[] {
    return [...this.accounts.keys()].filter((id) => this.inPart(id)).sort();
  }

  /** An existing account, open ones first; a raw id when there are none. */
  private pickAccount(n: number): string {
    const ids = this.createdIds();
    const open = ids.filter((id) => !(this.accounts.get(id) as MAccount).closed);
    const from = open.length > 0 ? open : ids;
    return from.length > 0 ? from[n % from.length] : this.rawAccount(n);
  }

  /** Another account on the same ledger as `dr` when there is one. */
  private pickPeer(dr: string, n: number): string {
    const ledger = this.accounts.get(dr)?.ledger;
    const others = this.createdIds().filter((id) => id !== dr);
    const open = others.filter((id) => !(this.accounts.get(id) as MAccount).closed);
    for (const from of [
      open.filter((id) => this.accounts.get(id)?.ledger === ledger),
      others.filter((id) => this.accounts.get(id)?.ledger === ledger),
      others,
    ]) {
      if (from.length > 0) return from[n % from.length];
    }
    return this.rawAccount(n + 1);
  }

  private ledgerOf(id: string): number {
    return this.accounts.get(id)?.ledger ?? 1;
  }

  private pendings(live: boolean): MRow[] {
    const all = [...this.rows.values()]
      .filter((r) => r.failure === null && (r.flags & PENDING) !== 0 && this.inPart(r.debit) && this.inPart(r.credit));
    const open = all.filter((r) => r.status === ST_PENDING);
    return live && open.length > 0 ? open : all;
  }

  private resolveSpec(s: TSpec, earlier: TransferInput[]): TransferInput {
    const base = (flags: number): TransferInput => ({
      id: this.freshId(), debit_account_id: null, credit_account_id: null, amount: null, ledger: 0, code: 0,
      flags, pending_id: null, timeout_s: 0, ref: null, metadata: null,
    });
    const linked = 'linked' in s && s.linked ? LINKED : 0;
    switch (s.t) {
      case 'new': {
        const dr = s.smart ? this.pickAccount(s.dr) : this.rawAccount(s.dr);
        const cr = s.smart ? this.pickPeer(dr, s.cr) : this.rawAccount(s.cr);
        const flags = linked | (s.pending ? PENDING | s.closing : 0);
        return {
          ...base(flags), debit_account_id: dr, credit_account_id: cr, amount: s.amount,
          ledger: s.ledger === 'auto' ? this.ledgerOf(dr) : s.ledger, code: s.code, timeout_s: s.pending ? s.timeout : 0,
        };
      }
      case 'post':
      case 'void': {
        const t = base(linked | (s.t === 'post' ? POST : VOID));
        const ps = this.pendings(s.live);
        if (ps.length === 0) {
          // Nothing to resolve yet: hold something instead, for later posts and voids.
          const dr = this.pickAccount(s.ref);
          return {
            ...t, flags: linked | PENDING, debit_account_id: dr, credit_account_id: this.pickPeer(dr, s.ref + 1),
            amount: BigInt(1 + (s.ref % 40)), ledger: this.ledgerOf(dr), code: 1, timeout_s: s.ref % 3 === 0 ? 0 : 1 + (s.ref % 17),
          };
        }
        const p = ps[s.ref % ps.length];
        t.pending_id = p.id;
        if (s.fields !== 'none') {
          t.debit_account_id = p.debit;
          t.credit_account_id = p.credit;
          t.ledger = p.ledger;
          t.code = s.fields === 'match' ? p.code : p.code + 1;
        }
        const amounts: Record<string, bigint | null> = {
          null: null, full: p.amount, exact: p.amount, partial: p.amount > 1n ? p.amount / 2n : 1n,
          over: p.amount + 1n, wrong: p.amount + 1n, zero: 0n,
        };
        t.amount = amounts[s.amount];
        return t;
      }
      case 'dup': {
        // Mostly applied ids ('retry' is the one for failed ids).
        const all = this.submitted.filter((t) => this.touchesOnlyPart(t));
        const applied = all.filter((t) => this.rows.get(t.id)?.failure === null);
        const pool = applied.length > 0 && s.ref % 4 !== 0 ? applied : all;
        if (pool.length === 0) return { ...base(0), pending_id: 'nope' };
        return this.variant(pool[s.ref % pool.length], s.mode);
      }
      case 'retry': {
        const failedIds = new Set([...this.rows.values()].filter((r) => r.failure !== null).map((r) => r.id));
        const failed = this.submitted.filter((t) => failedIds.has(t.id) && this.touchesOnlyPart(t));
        if (failed.length === 0) return base(0);
        return this.variant(failed[s.ref % failed.length], s.mode);
      }
      case 'inner': {
        if (earlier.length === 0) {
          return { ...base(0), debit_account_id: this.rawAccount(0), credit_account_id: this.rawAccount(1), amount: 1n, ledger: 1, code: 1 };
        }
        return this.variant(earlier[earlier.length - 1 - (s.back % earlier.length)], s.mode);
      }
      case 'bad':
        return this.badInput(s, base(linked));
    }
  }

  private variant(t: TransferInput, mode: 'same' | 'amount' | 'ref'): TransferInput {
    if (mode === 'amount') return { ...t, amount: (t.amount ?? 0n) + 1n };
    if (mode === 'ref') return { ...t, ref: 'changed' };
    return { ...t };
  }

  private badInput(s: BadSpec, t: TransferInput): TransferInput {
    const dr = this.pickAccount(s.n);
    const cr = this.pickPeer(dr, s.n + 1);
    const plain: TransferInput = { ...t, debit_account_id: dr, credit_account_id: cr, amount: 5n, ledger: this.ledgerOf(dr), code: 1 };
    const somePending = this.pendings(false)[s.n % Math.max(1, this.pendings(false).length)]?.id ?? 'nope';
    const resolve = (flags: number, pending_id: string | null): TransferInput => ({ ...t, flags: t.flags | flags, pending_id });
    switch (s.what) {
      case 'zero': return { ...plain, amount: 0n };
      case 'negative': return { ...plain, amount: -5n };
      case 'same': return { ...plain, credit_account_id: dr };
      case 'unknown_account': return { ...plain, credit_account_id: `zz${s.n}` };
      case 'ledger_mismatch': return { ...plain, ledger: 3 - plain.ledger };
      case 'ledger0': return { ...plain, ledger: 0 };
      case 'code0': return { ...plain, code: 0 };
      case 'flags': return { ...plain, flags: plain.flags | 64 };
      case 'post_and_void': return resolve(POST | VOID, somePending);
      case 'pending_and_post': return { ...plain, flags: plain.flags | PENDING | POST, pending_id: somePending };
      case 'closing_plain': return { ...plain, flags: plain.flags | CLOSING_DEBIT };
      case 'pending_id_on_plain': return { ...plain, pending_id: somePending };
      case 'timeout_plain': return { ...plain, timeout_s: 5 };
      case 'timeout_big': return { ...plain, flags: plain.flags | PENDING, timeout_s: TIMEOUT_MAX + 1 };
      case 'timeout_negative': return { ...plain, flags: plain.flags | PENDING, timeout_s: -1 };
      case 'empty_account': return { ...plain, debit_account_id: null };
      case 'bad_id': return { ...plain, id: s.n % 2 === 0 ? '' : `#x${s.n}` };
      case 'unknown_pending': return resolve(POST, `nope${s.n}`);
      case 'pending_id_self': return resolve(VOID, t.id);
      case 'pending_id_empty': return resolve(VOID, s.n % 2 === 0 ? null : '');
      case 'resolve_timeout': return { ...resolve(POST, somePending), timeout_s: 5 };
      case 'resolve_same_accounts': return { ...resolve(POST, somePending), debit_account_id: dr, credit_account_id: dr };
      case 'post_not_pending': {
        const applied = [...this.rows.values()]
          .filter((r) => r.failure === null && (r.flags & PENDING) === 0 && this.inPart(r.debit) && this.inPart(r.credit));
        return resolve(POST, applied.length > 0 ? applied[s.n % applied.length].id : `nope${s.n}`);
      }
      case 'post_failed': {
        const failed = [...this.rows.values()].filter((r) => r.failure !== null);
        return resolve(VOID, failed.length > 0 ? failed[s.n % failed.length].id : `nope${s.n}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// Arbitraries.

const chance = (weightTrue: number, weightFalse: number) =>
  fc.oneof({ weight: weightTrue, arbitrary: fc.constant(true) }, { weight: weightFalse, arbitrary: fc.constant(false) });
const linkedArb = chance(1, 3);
const amountArb = fc.oneof(
  { weight: 40, arbitrary: fc.bigInt(1n, 60n) },
  { weight: 1, arbitrary: fc.constant(1n << 62n) },
  { weight: 1, arbitrary: fc.constant(I8_MAX) },
);
const accountFlagsArb = fc.constantFrom(0, 0, 0, DEBITS_LIMITED, CREDITS_LIMITED, HISTORY, HISTORY, HISTORY | DEBITS_LIMITED, HISTORY | CREDITS_LIMITED);
const catalogArb: fc.Arbitrary<CatalogEntry[]> = fc.array(
  fc.record({ ledger: fc.constantFrom(1, 1, 2), code: fc.integer({ min: 1, max: 3 }), flags: accountFlagsArb }),
  { minLength: ACCOUNT_IDS, maxLength: ACCOUNT_IDS },
);
const accountSpecArb: fc.Arbitrary<AccountSpec> = fc.record({
  idx: fc.nat(ACCOUNT_IDS - 1),
  change: fc.oneof(
    { weight: 4, arbitrary: fc.constant(null) },
    {
      weight: 1,
      arbitrary: fc.record({
        ledger: fc.integer({ min: 1, max: 2 }), code: fc.integer({ min: 1, max: 3 }),
        flags: fc.oneof({ weight: 5, arbitrary: accountFlagsArb }, { weight: 1, arbitrary: fc.constantFrom(3, 7, 8) }),
      }),
    },
  ),
});

const newArb: fc.Arbitrary<TSpec> = fc.record({
  t: fc.constant('new' as const),
  linked: linkedArb,
  smart: chance(5, 1),
  dr: fc.nat(15),
  cr: fc.nat(15),
  amount: amountArb,
  ledger: fc.constantFrom<'auto' | 1 | 2>('auto', 'auto', 'auto', 'auto', 'auto', 'auto', 'auto', 1, 2),
  code: fc.integer({ min: 1, max: 2 }),
  pending: chance(2, 3),
  timeout: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 20 }) }),
  closing: fc.oneof(
    { weight: 6, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.constantFrom(CLOSING_DEBIT, CLOSING_CREDIT, CLOSING_DEBIT | CLOSING_CREDIT) },
  ),
});
const postArb: fc.Arbitrary<TSpec> = fc.record({
  t: fc.constant('post' as const),
  linked: linkedArb,
  ref: fc.nat(50),
  live: chance(2, 1),
  amount: fc.constantFrom<PostSpec['amount']>('null', 'null', 'full', 'partial', 'partial', 'over', 'zero'),
  fields: fc.constantFrom<PostSpec['fields']>('none', 'none', 'match', 'mismatch'),
});
const voidArb: fc.Arbitrary<TSpec> = fc.record({
  t: fc.constant('void' as const),
  linked: linkedArb,
  ref: fc.nat(50),
  live: chance(2, 1),
  amount: fc.constantFrom<VoidSpec['amount']>('null', 'null', 'exact', 'wrong'),
  fields: fc.constantFrom<VoidSpec['fields']>('none', 'none', 'match', 'mismatch'),
});
const dupArb: fc.Arbitrary<TSpec> = fc.record({
  t: fc.constant('dup' as const), ref: fc.nat(100), mode: fc.constantFrom<DupSpec['mode']>('same', 'same', 'amount', 'ref'),
});
const retryArb: fc.Arbitrary<TSpec> = fc.record({
  t: fc.constant('retry' as const), ref: fc.nat(100), mode: fc.constantFrom<RetrySpec['mode']>('same', 'amount'),
});
const innerArb: fc.Arbitrary<TSpec> = fc.record({
  t: fc.constant('inner' as const), back: fc.nat(4), mode: fc.constantFrom<InnerSpec['mode']>('same', 'same', 'amount'),
});
const badArb: fc.Arbitrary<TSpec> = fc.record({
  t: fc.constant('bad' as const), linked: linkedArb, what: fc.constantFrom(...BAD), n: fc.nat(20),
});
const tspecArb: fc.Arbitrary<TSpec> = fc.oneof(
  { weight: 12, arbitrary: newArb },
  { weight: 5, arbitrary: postArb },
  { weight: 3, arbitrary: voidArb },
  { weight: 2, arbitrary: dupArb },
  { weight: 1, arbitrary: retryArb },
  { weight: 2, arbitrary: innerArb },
  { weight: 3, arbitrary: badArb },
);
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ k: fc.constant('accounts' as const), items: fc.array(accountSpecArb, { minLength: 1, maxLength: 4 }) }) },
  {
    weight: 8,
    arbitrary: fc.record({
      k: fc.constant('transfers' as const),
      requests: fc.array(fc.array(tspecArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 3 }),
      together: fc.constantFrom<'no' | 'split' | 'mixed'>('no', 'no', 'split', 'split', 'mixed'),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('advance' as const), seconds: fc.integer({ min: 1, max: 15 }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('expire' as const) }) },
);
const scenarioArb = fc.record({
  catalog: catalogArb,
  initial: fc.subarray([...Array(ACCOUNT_IDS).keys()], { minLength: 5 }),
  cmds: fc.array(cmdArb, { minLength: 8, maxLength: 30, size: 'max' }),
});

// ---------------------------------------------------------------------------------
// Running a scenario against the ledger and the model.

const show = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x));
const ZERO: Balances = { debits_posted: 0n, credits_posted: 0n, debits_pending: 0n, credits_pending: 0n };
const balancesOf = (a: MAccount): Balances => ({ debits_posted: a.dp, credits_posted: a.cp, debits_pending: a.dpe, credits_pending: a.cpe });

/** Coverage counters across runs (printed at the end). */
const seen = new Map<string, number>();
const count = (key: string, n = 1) => seen.set(key, (seen.get(key) ?? 0) + n);

const kindOf = (flags: number) =>
  (flags & POST) !== 0 ? 'post' : (flags & VOID) !== 0 ? 'void' : (flags & (CLOSING_DEBIT | CLOSING_CREDIT)) !== 0 ? 'closing'
    : (flags & PENDING) !== 0 ? 'pending' : 'plain';

function accountInput(catalog: CatalogEntry[], s: AccountSpec): AccountInput {
  const fields = s.change ?? catalog[s.idx];
  return { id: `a${s.idx}`, ledger: fields.ledger, code: fields.code, flags: fields.flags, ref: null, metadata: null };
}

/** What a request touches: ids, pending ids and accounts (a pending transfer's too). */
function footprint(model: Model, inputs: TransferInput[]): Set<string> {
  const keys = new Set<string>();
  for (const t of inputs) {
    keys.add(`t:${t.id}`);
    if (t.debit_account_id) keys.add(`a:${t.debit_account_id}`);
    if (t.credit_account_id) keys.add(`a:${t.credit_account_id}`);
    if (t.pending_id !== null) {
      keys.add(`t:${t.pending_id}`);
      const p = model.rows.get(t.pending_id);
      if (p?.debit) keys.add(`a:${p.debit}`);
      if (p?.credit) keys.add(`a:${p.credit}`);
    }
  }
  return keys;
}

function disjoint(sets: Set<string>[]): boolean {
  const all = new Set<string>();
  for (const s of sets) {
    for (const k of s) {
      if (all.has(k)) return false;
    }
    for (const k of s) all.add(k);
  }
  return true;
}

async function checkState(db: Database, model: Model, where: string): Promise<void> {
  const accounts = await sql<{
    id: string; ledger: number; code: number; flags: number; debits_posted: bigint; credits_posted: bigint;
    debits_pending: bigint; credits_pending: bigint; closed: boolean;
  }>`SELECT id, ledger, code, flags, debits_posted, credits_posted, debits_pending, credits_pending, closed
     FROM ledger_accounts`.execute(db.kysely);
  const real = accounts.rows
    .map((a) => ({
      id: a.id, ledger: a.ledger, code: a.code, flags: a.flags, debits_posted: a.debits_posted,
      credits_posted: a.credits_posted, debits_pending: a.debits_pending, credits_pending: a.credits_pending, closed: a.closed,
    }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  const expected = [...model.accounts.values()]
    .map((a) => ({ id: a.id, ledger: a.ledger, code: a.code, flags: a.flags, ...balancesOf(a), closed: a.closed }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  assert.deepEqual(real, expected, `${where}: accounts differ from the model`);

  // The double-entry invariant, per ledger, on the database's balances.
  const totals = new Map<number, { dp: bigint; cp: bigint; dpe: bigint; cpe: bigint }>();
  for (const a of real) {
    const t = totals.get(a.ledger) ?? { dp: 0n, cp: 0n, dpe: 0n, cpe: 0n };
    t.dp += a.debits_posted;
    t.cp += a.credits_posted;
    t.dpe += a.debits_pending;
    t.cpe += a.credits_pending;
    totals.set(a.ledger, t);
  }
  for (const [ledger, t] of totals) {
    assert.equal(t.dp, t.cp, `${where}: ledger ${ledger} Σ debits_posted ≠ Σ credits_posted`);
    assert.equal(t.dpe, t.cpe, `${where}: ledger ${ledger} Σ debits_pending ≠ Σ credits_pending`);
  }

  const transfers = await sql<{
    id: string; debit_account_id: string | null; credit_account_id: string | null; amount: bigint; ledger: number;
    code: number; flags: number; pending_id: string | null; timeout_s: number; expires_at: bigint; status: number | null;
    failure: string | null; ref: string | null;
  }>`SELECT id, debit_account_id, credit_account_id, amount, ledger, code, flags, pending_id, timeout_s, expires_at,
            status, failure, ref FROM ledger_transfers`.execute(db.kysely);
  const realRows = transfers.rows.map((r) => ({ ...r })).sort((a, b) => (a.id < b.id ? -1 : 1));
  const expectedRows = [...model.rows.values()]
    .map((r) => ({
      id: r.id, debit_account_id: r.debit, credit_account_id: r.credit, amount: r.amount, ledger: r.ledger, code: r.code,
      flags: r.flags, pending_id: r.pending_id, timeout_s: r.timeout_s, expires_at: r.expires_at, status: r.status,
      failure: r.failure, ref: r.ref,
    }))
    .sort((a, b) => (a.id < b.id ? -1 : 1));
  assert.deepEqual(realRows, expectedRows, `${where}: transfer rows differ from the model`);
}

async function checkEnd(ledger: Ledger, model: Model): Promise<void> {
  const report = await ledger.verify();
  assert.equal(report.balanced, true, `verify: ${show(report)}`);
  const rows = [...model.rows.values()];
  assert.equal(report.transfers_applied, String(rows.filter((r) => r.failure === null).length), 'verify: applied count');
  assert.equal(report.transfers_failed, String(rows.filter((r) => r.failure !== null).length), 'verify: failed count');

  for (const a of model.accounts.values()) {
    const where = `account ${a.id}`;
    const got = await ledger.getAccount(a.id);
    assert.deepEqual(
      { ...balancesOf(a), closed: a.closed },
      { debits_posted: got.debits_posted, credits_posted: got.credits_posted, debits_pending: got.debits_pending,
        credits_pending: got.credits_pending, closed: got.closed },
      `${where}: getAccount`,
    );
    const full = await ledger.listEntries(a.id, 1000, 0n);
    assert.equal(full.next_cursor, null, `${where}: one page holds every entry`);
    const paged: string[] = [];
    for (let after = 0n; ;) {
      const page = await ledger.listEntries(a.id, 3, after);
      paged.push(...page.entries.map((e) => e.transfer.id));
      if (page.next_cursor === null) break;
      after = BigInt(page.next_cursor);
    }
    const ids = full.entries.map((e) => e.transfer.id);
    assert.deepEqual(paged, ids, `${where}: paging with the cursor returns the same entries`);
    const mine = rows.filter((r) => r.failure === null && (r.debit === a.id || r.credit === a.id)).map((r) => r.id).sort();
    assert.deepEqual([...ids].sort(), mine, `${where}: entries are the model's transfers of the account`);

    // Replay the entries in ledger order: each balance_after (history accounts) and each
    // balanceAt(entry ts) must be the running balance; the last must be the model's.
    const history = (a.flags & HISTORY) !== 0;
    const b: Balances = { ...ZERO };
    const held = new Map<string, bigint>();
    let previousTs = -1n;
    assert.deepEqual(await ledger.balanceAt(a.id, got.ts - 1n), ZERO, `${where}: balance before it existed`);
    for (const e of full.entries) {
      const tr = e.transfer;
      assert.ok(tr.ts > previousTs, `${where}: entries are in ts order`);
      previousTs = tr.ts;
      const debit = tr.debit_account_id === a.id;
      assert.equal(e.side, debit ? 'debit' : 'credit', `${where}: side of ${tr.id}`);
      const m = model.rows.get(tr.id) as MRow;
      assert.equal(tr.amount, m.amount, `${where}: amount of ${tr.id}`);
      assert.equal(tr.status, m.status, `${where}: status of ${tr.id}`);
      if ((tr.flags & PENDING) !== 0) {
        held.set(tr.id, tr.amount);
        if (debit) b.debits_pending += tr.amount;
        else b.credits_pending += tr.amount;
      } else if ((tr.flags & (POST | VOID)) !== 0) {
        const h = held.get(tr.pending_id as string);
        assert.ok(h !== undefined, `${where}: ${tr.id} resolves ${tr.pending_id}, an earlier entry`);
        if (debit) b.debits_pending -= h;
        else b.credits_pending -= h;
        if ((tr.flags & POST) !== 0) {
          if (debit) b.debits_posted += tr.amount;
          else b.credits_posted += tr.amount;
        }
      } else if (debit) b.debits_posted += tr.amount;
      else b.credits_posted += tr.amount;
      if (history) assert.deepEqual(e.balance_after, b, `${where}: balance_after of ${tr.id}`);
      else assert.equal(e.balance_after, null, `${where}: no balance_after without history`);
      assert.deepEqual(await ledger.balanceAt(a.id, tr.ts), b, `${where}: balanceAt(ts of ${tr.id})`);
    }
    assert.deepEqual(b, balancesOf(a), `${where}: replayed entries end at the model's balances`);
    assert.deepEqual(await ledger.balanceAt(a.id, FAR_FUTURE), balancesOf(a), `${where}: balanceAt(now)`);
  }
}

async function runScenario(s: { catalog: CatalogEntry[]; initial: number[]; cmds: Cmd[] }): Promise<void> {
  const tdb = await openTestDb();
  try {
    const clock = new ManualClock();
    const ledger = createLedger({ db: tdb.db, clock });
    const model = new Model(clock.nowNs());
    const cmds: Cmd[] = [{ k: 'accounts', items: s.initial.map((idx) => ({ idx, change: null })) }, ...s.cmds];
    for (const [step, cmd] of cmds.entries()) {
      const where = `step ${step} (${cmd.k})`;
      switch (cmd.k) {
        case 'accounts': {
          const inputs = cmd.items.map((item) => accountInput(s.catalog, item));
          const expected = model.createAccounts(inputs);
          const real = await ledger.createAccounts(inputs);
          assert.deepEqual(real, expected, `${where}: account results for ${show(inputs)}`);
          break;
        }
        case 'transfers': {
          const n = cmd.requests.length;
          const split = cmd.together === 'split' && n > 1;
          const requests = cmd.requests.map((specs, k) => model.applyRequest(specs, split ? { k, n } : null));
          // Requests in flight at once commit in an order only PGlite fixes (one batch
          // at a time, in arrival order); on PostgreSQL only disjoint ones go together.
          const together = cmd.together !== 'no' && n > 1 &&
            (tdb.db.kind === 'pglite' || disjoint(requests.map((r) => footprint(model, r.inputs))));
          if (cmd.together !== 'no' && n > 1) count(together ? `together:${cmd.together}` : `one-by-one:${cmd.together}`);
          let real: string[][];
          if (together) {
            real = await Promise.all(requests.map((r) => ledger.createTransfers(r.inputs)));
          } else {
            real = [];
            for (const r of requests) real.push(await ledger.createTransfers(r.inputs));
          }
          requests.forEach((r, i) => {
            assert.deepEqual(real[i], r.results, `${where}: request ${i} results for ${show(r.inputs)}`);
            r.results.forEach((code, j) => {
              count(code);
              if (code === 'ok') count(`ok:${kindOf(r.inputs[j].flags)}`);
            });
          });
          break;
        }
        case 'advance':
          clock.advanceSeconds(cmd.seconds);
          model.now += BigInt(cmd.seconds) * NS;
          break;
        case 'expire': {
          const expected = model.expire();
          assert.equal(await ledger.expireDue(), expected, `${where}: expireDue count`);
          count('expired', expected);
          break;
        }
      }
      await checkState(tdb.db, model, where);
    }
    await checkEnd(ledger, model);
    const rows = [...model.rows.values()];
    count('expiry rows', rows.filter((r) => r.id.startsWith('#expire:')).length);
    count('pending with timeout', rows.filter((r) => r.failure === null && r.timeout_s > 0).length);
    count('closed accounts', [...model.accounts.values()].filter((a) => a.closed).length);
  } finally {
    await tdb.close();
  }
}

test('ledger agrees with an in-memory model on random command sequences', async () => {
  const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;
  await fc.assert(fc.asyncProperty(scenarioArb, runScenario), {
    numRuns: Number(process.env.FC_RUNS ?? 20),
    ...(seed !== undefined ? { seed } : {}),
    ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}),
    endOnFailure: process.env.FC_NO_SHRINK === '1',
    includeErrorInReport: true,
    // Every run opens a database, so shrinking a failure is slow: stop it after a while
    // and report the smallest counterexample found so far.
    plugins: [fc.interruptAfterTimeLimit(Number(process.env.FC_TIME_LIMIT_S ?? 300) * 1000)],
  });
  console.log(`coverage: ${[...seen].sort().map(([k, n]) => `${k}=${n}`).join(' ')}`);
});
