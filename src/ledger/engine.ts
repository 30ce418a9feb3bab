// The ledger's decision core: given the locked accounts and the transfer rows a batch
// refers to, decide every transfer's result in order and compute the new state.
// Pure and synchronous (no I/O), so the same code runs inside a database transaction
// and in tests; the repository loads its input and persists its output set-wise.
import { assert } from '../platform/assert.ts';
import { INT8_MAX } from '../platform/money.ts';
import {
  EXPIRY_ID_PREFIX,
  ID_PATTERN,
  PENDING_STATUS,
  TIMEOUT_S_MAX,
  TRANSFER_FLAGS as F,
  TRANSFER_FLAGS_ALL,
  ACCOUNT_FLAGS,
  type Account,
  type Balances,
  type TransferInput,
  type TransferResultCode,
  type TransferRow,
} from './types.ts';

export interface EngineState {
  /** Every account the batch names or its pending transfers name, locked by the caller. */
  readonly accounts: Map<string, Account>;
  /** Existing rows for the batch's ids and pending ids (applied or failed). Mutated. */
  readonly rows: Map<string, TransferRow>;
}

export interface EngineOutput {
  results: TransferResultCode[];
  /** New rows in application order; the caller stamps ts in this order. */
  newRows: TransferRow[];
  /** Pending transfers whose status changed: id → new status. */
  statusChanges: Map<string, number>;
  /** Accounts whose balances, version or closed flag changed. */
  dirtyAccounts: Set<string>;
}

const NS_PER_S = 1_000_000_000n;
const KIND_MASK = F.pending | F.post_pending | F.void_pending;

type Undo = Array<() => void>;

/** Codes that leave the id unrecorded (it already has a row, or it is unusable). */
function recordsFailure(code: TransferResultCode): boolean {
  return code !== 'exists' && code !== 'exists_with_different_fields' && code !== 'id_already_failed' && code !== 'id_invalid';
}

export function isSuccess(code: TransferResultCode): boolean {
  return code === 'ok' || code === 'exists';
}

export class Engine {
  private readonly state: EngineState;
  private readonly nowNs: bigint;
  private readonly out: EngineOutput;

  constructor(state: EngineState, nowNs: bigint) {
    this.state = state;
    this.nowNs = nowNs;
    this.out = { results: [], newRows: [], statusChanges: new Map(), dirtyAccounts: new Set() };
  }

  /** Voids pending transfers whose timeout has passed (the ledger's own void). */
  expire(due: TransferRow[]): number {
    let expired = 0;
    for (const pending of due) {
      const current = this.state.rows.get(pending.id) ?? pending;
      if (current.status !== PENDING_STATUS.pending) continue;
      if (current.expires_at === 0n || current.expires_at > this.nowNs) continue;
      const id = EXPIRY_ID_PREFIX + current.id;
      if (this.state.rows.has(id)) continue;
      this.resolvePending(current, PENDING_STATUS.expired, current.amount, id, F.void_pending, null, null);
      expired += 1;
    }
    return expired;
  }

  /**
   * Applies transfers in order. segmentEnds are the exclusive end indexes of the
   * callers' requests that group commit put together: a linked chain never crosses one.
   */
  apply(items: TransferInput[], segmentEnds: number[]): EngineOutput {
    let start = 0;
    for (const end of segmentEnds) {
      assert(end >= start && end <= items.length, 'segment ends are ordered and in range');
      this.applySegment(items, start, end);
      start = end;
    }
    assert(start === items.length, 'segments cover every item');
    assert(this.out.results.length === items.length, 'one result per transfer');
    return this.out;
  }

  private applySegment(items: TransferInput[], start: number, end: number): void {
    let i = start;
    while (i < end) {
      let j = i;
      while (j < end - 1 && (items[j].flags & F.linked) !== 0) j += 1;
      const open = (items[j].flags & F.linked) !== 0;
      if (i === j && !open) this.applySingle(items[i]);
      else this.applyChain(items, i, j, open);
      i = j + 1;
    }
  }

  private applySingle(t: TransferInput): void {
    const code = this.applyOne(t, null);
    this.out.results.push(code);
    if (code !== 'ok' && code !== 'exists' && recordsFailure(code)) this.recordFailure(t, code);
  }

  private applyChain(items: TransferInput[], first: number, last: number, open: boolean): void {
    const undo: Undo = [];
    // Which ids had a row before the chain: only those can still answer 'exists' if
    // the chain fails (a row made inside the chain is undone with it).
    const preexisting: boolean[] = [];
    for (let k = first; k <= last; k += 1) preexisting.push(this.state.rows.has(items[k].id));
    const codes: TransferResultCode[] = [];
    let failedAt = -1;
    let failure: TransferResultCode = 'ok';
    for (let k = first; k <= last; k += 1) {
      const code = open && k === last ? 'linked_event_chain_open' : this.applyOne(items[k], undo);
      codes.push(code);
      if (!isSuccess(code)) {
        failedAt = k;
        failure = code;
        break;
      }
    }
    if (failedAt < 0) {
      for (const code of codes) this.out.results.push(code);
      return;
    }
    for (let u = undo.length - 1; u >= 0; u -= 1) undo[u]();
    for (let k = first; k <= last; k += 1) {
      const before = codes[k - first];
      let code: TransferResultCode;
      if (k === failedAt) code = failure;
      else if (before === 'exists' && preexisting[k - first]) code = 'exists';
      else code = 'linked_event_failed';
      this.out.results.push(code);
      const t = items[k];
      if (code === 'exists' || !recordsFailure(code)) continue;
      if (!ID_PATTERN.test(t.id) || this.state.rows.has(t.id)) continue;
      this.recordFailure(t, code);
    }
  }

  private recordFailure(t: TransferInput, code: TransferResultCode): void {
    const row: TransferRow = {
      id: t.id,
      ts: 0n,
      debit_account_id: null,
      credit_account_id: null,
      amount: 0n,
      ledger: t.ledger,
      code: t.code,
      flags: t.flags & TRANSFER_FLAGS_ALL,
      pending_id: t.pending_id,
      timeout_s: 0,
      expires_at: 0n,
      status: null,
      ref: t.ref,
      metadata: t.metadata,
      failure: code,
      dr: null,
      cr: null,
    };
    this.state.rows.set(t.id, row);
    this.out.newRows.push(row);
  }

  /** Decides one transfer; on success mutates state (and logs undo steps if given). */
  private applyOne(t: TransferInput, undo: Undo | null): TransferResultCode {
    if (!ID_PATTERN.test(t.id)) return 'id_invalid';
    const existing = this.state.rows.get(t.id);
    if (existing) {
      if (existing.failure !== null) return 'id_already_failed';
      return sameFields(t, existing) ? 'exists' : 'exists_with_different_fields';
    }
    const invalid = validate(t);
    if (invalid) return invalid;
    const kind = t.flags & (F.post_pending | F.void_pending);
    if (kind !== 0) return this.applyResolve(t, undo);
    return this.applyNew(t, undo);
  }

  private applyNew(t: TransferInput, undo: Undo | null): TransferResultCode {
    const dr = this.state.accounts.get(t.debit_account_id as string);
    const cr = this.state.accounts.get(t.credit_account_id as string);
    if (!dr || !cr) return 'account_not_found';
    if (dr.ledger !== t.ledger || cr.ledger !== t.ledger) return 'ledger_mismatch';
    if (dr.closed || cr.closed) return 'account_closed';
    const amount = t.amount as bigint;
    const pending = (t.flags & F.pending) !== 0;
    if (pending) {
      if (dr.debits_pending + amount > INT8_MAX || cr.credits_pending + amount > INT8_MAX) return 'overflows';
    } else if (dr.debits_posted + amount > INT8_MAX || cr.credits_posted + amount > INT8_MAX) return 'overflows';
    if ((dr.flags & ACCOUNT_FLAGS.debits_must_not_exceed_credits) !== 0 &&
        dr.debits_pending + dr.debits_posted + amount > dr.credits_posted) return 'exceeds_credits';
    if ((cr.flags & ACCOUNT_FLAGS.credits_must_not_exceed_debits) !== 0 &&
        cr.credits_pending + cr.credits_posted + amount > cr.debits_posted) return 'exceeds_debits';

    if (undo) {
      this.saveAccount(dr, undo);
      this.saveAccount(cr, undo);
    }
    if (pending) {
      dr.debits_pending += amount;
      cr.credits_pending += amount;
      if ((t.flags & F.closing_debit) !== 0) dr.closed = true;
      if ((t.flags & F.closing_credit) !== 0) cr.closed = true;
    } else {
      dr.debits_posted += amount;
      cr.credits_posted += amount;
    }
    const row = this.newRow(t.id, t, dr, cr, amount);
    if (pending) {
      row.status = PENDING_STATUS.pending;
      row.timeout_s = t.timeout_s;
      row.expires_at = t.timeout_s > 0 ? this.nowNs + BigInt(t.timeout_s) * NS_PER_S : 0n;
    }
    this.addRow(row, undo);
    return 'ok';
  }

  private applyResolve(t: TransferInput, undo: Undo | null): TransferResultCode {
    const p = this.state.rows.get(t.pending_id as string);
    if (!p || p.failure !== null) return 'pending_not_found';
    if ((p.flags & F.pending) === 0) return 'pending_transfer_not_pending';
    if ((t.debit_account_id !== null && t.debit_account_id !== p.debit_account_id) ||
        (t.credit_account_id !== null && t.credit_account_id !== p.credit_account_id) ||
        (t.ledger !== 0 && t.ledger !== p.ledger) ||
        (t.code !== 0 && t.code !== p.code)) return 'pending_mismatch';
    if (p.status === PENDING_STATUS.expired) return 'pending_expired';
    if (p.status !== PENDING_STATUS.pending) return 'pending_already_resolved';
    if (p.expires_at > 0n && p.expires_at <= this.nowNs) return 'pending_expired';
    const post = (t.flags & F.post_pending) !== 0;
    let amount = p.amount;
    if (post) {
      if (t.amount !== null) {
        if (t.amount <= 0n) return 'amount_must_be_positive';
        if (t.amount > p.amount) return 'exceeds_pending_amount';
        amount = t.amount;
      }
      const dr = this.account(p.debit_account_id);
      const cr = this.account(p.credit_account_id);
      // A side closed by this very pending transfer may still be posted to; any other closed side may not.
      if (dr.closed && (p.flags & F.closing_debit) === 0) return 'account_closed';
      if (cr.closed && (p.flags & F.closing_credit) === 0) return 'account_closed';
      if (dr.debits_posted + amount > INT8_MAX || cr.credits_posted + amount > INT8_MAX) return 'overflows';
    } else if (t.amount !== null && t.amount !== p.amount) return 'pending_amount_mismatch';
    const status = post ? PENDING_STATUS.posted : PENDING_STATUS.voided;
    this.resolvePending(p, status, amount, t.id, t.flags, t, undo);
    return 'ok';
  }

  /** Releases a pending transfer's hold and posts `amount` if it is a post. */
  private resolvePending(
    p: TransferRow, status: number, amount: bigint, id: string, flags: number,
    t: TransferInput | null, undo: Undo | null,
  ): void {
    const dr = this.account(p.debit_account_id);
    const cr = this.account(p.credit_account_id);
    if (undo) {
      this.saveAccount(dr, undo);
      this.saveAccount(cr, undo);
      const before = p.status;
      const hadChange = this.out.statusChanges.has(p.id);
      const previous = this.out.statusChanges.get(p.id);
      undo.push(() => {
        p.status = before;
        if (hadChange) this.out.statusChanges.set(p.id, previous as number);
        else this.out.statusChanges.delete(p.id);
      });
    }
    dr.debits_pending -= p.amount;
    cr.credits_pending -= p.amount;
    assert(dr.debits_pending >= 0n && cr.credits_pending >= 0n, 'pending balances never go negative');
    if (status === PENDING_STATUS.posted) {
      dr.debits_posted += amount;
      cr.credits_posted += amount;
    } else {
      // A void or expiry of a closing transfer reopens what it closed.
      if ((p.flags & F.closing_debit) !== 0) dr.closed = false;
      if ((p.flags & F.closing_credit) !== 0) cr.closed = false;
    }
    p.status = status;
    this.out.statusChanges.set(p.id, status);
    const row = this.newRow(id, t, dr, cr, amount);
    row.flags = flags & TRANSFER_FLAGS_ALL;
    row.pending_id = p.id;
    row.ledger = p.ledger;
    row.code = p.code;
    this.addRow(row, undo);
  }

  private account(id: string | null): Account {
    const account = this.state.accounts.get(id as string);
    assert(account !== undefined, `account ${id} of a pending transfer is loaded`);
    return account;
  }

  private newRow(id: string, t: TransferInput | null, dr: Account, cr: Account, amount: bigint): TransferRow {
    dr.version += 1n;
    cr.version += 1n;
    this.out.dirtyAccounts.add(dr.id);
    this.out.dirtyAccounts.add(cr.id);
    return {
      id,
      ts: 0n,
      debit_account_id: dr.id,
      credit_account_id: cr.id,
      amount,
      ledger: t ? t.ledger : dr.ledger,
      code: t ? t.code : 0,
      flags: t ? t.flags & TRANSFER_FLAGS_ALL : 0,
      pending_id: null,
      timeout_s: 0,
      expires_at: 0n,
      status: null,
      ref: t ? t.ref : null,
      metadata: t ? t.metadata : null,
      failure: null,
      dr: (dr.flags & ACCOUNT_FLAGS.history) !== 0 ? balancesOf(dr) : null,
      cr: (cr.flags & ACCOUNT_FLAGS.history) !== 0 ? balancesOf(cr) : null,
    };
  }

  private addRow(row: TransferRow, undo: Undo | null): void {
    this.state.rows.set(row.id, row);
    this.out.newRows.push(row);
    if (undo) {
      undo.push(() => {
        this.state.rows.delete(row.id);
        const popped = this.out.newRows.pop();
        assert(popped === row, 'undo pops rows in reverse order');
      });
    }
  }

  private saveAccount(account: Account, undo: Undo): void {
    const saved = { ...account };
    const wasDirty = this.out.dirtyAccounts.has(account.id);
    undo.push(() => {
      Object.assign(account, saved);
      if (!wasDirty) this.out.dirtyAccounts.delete(account.id);
    });
  }
}

function balancesOf(a: Account): Balances {
  return {
    debits_posted: a.debits_posted,
    credits_posted: a.credits_posted,
    debits_pending: a.debits_pending,
    credits_pending: a.credits_pending,
  };
}

/** Checks that need no state. Returns the failure, or null when the transfer is well formed. */
export function validate(t: TransferInput): TransferResultCode | null {
  if ((t.flags & ~TRANSFER_FLAGS_ALL) !== 0) return 'flags_invalid';
  const kind = t.flags & KIND_MASK;
  if (kind !== 0 && kind !== F.pending && kind !== F.post_pending && kind !== F.void_pending) {
    return 'flags_are_mutually_exclusive';
  }
  if ((t.flags & (F.closing_debit | F.closing_credit)) !== 0 && kind !== F.pending) {
    return 'closing_transfer_must_be_pending';
  }
  if (kind === F.post_pending || kind === F.void_pending) {
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
  if (t.timeout_s !== 0 && kind !== F.pending) return 'timeout_reserved_for_pending_transfer';
  if (t.timeout_s < 0 || t.timeout_s > TIMEOUT_S_MAX) return 'timeout_reserved_for_pending_transfer';
  return null;
}

/**
 * Is a retried transfer the same as the stored one? For post/void the optional
 * fields (accounts, ledger, code, amount) match when left empty or equal.
 */
export function sameFields(t: TransferInput, row: TransferRow): boolean {
  if ((t.flags & TRANSFER_FLAGS_ALL) !== row.flags || t.flags !== (t.flags & TRANSFER_FLAGS_ALL)) return false;
  if (t.pending_id !== row.pending_id || t.ref !== row.ref || t.metadata !== row.metadata) return false;
  if (t.timeout_s !== row.timeout_s) return false;
  const resolve = (t.flags & (F.post_pending | F.void_pending)) !== 0;
  if (resolve) {
    return (t.debit_account_id === null || t.debit_account_id === row.debit_account_id) &&
      (t.credit_account_id === null || t.credit_account_id === row.credit_account_id) &&
      (t.ledger === 0 || t.ledger === row.ledger) &&
      (t.code === 0 || t.code === row.code) &&
      (t.amount === null || t.amount === row.amount);
  }
  return t.debit_account_id === row.debit_account_id && t.credit_account_id === row.credit_account_id &&
    t.amount === row.amount && t.ledger === row.ledger && t.code === row.code;
}
