// 审批流 (approval chain) of a disbursement application, as a pure state machine. The
// nodes are configurable; the default follows the production flow in domain.md §3
// (wxzj2: 初审 → 审核 → 复核 → 审批). At a node the actor may approve (to the next
// node, or APPROVED after the last), return (to the previous node — from the first
// node that is the applicant — or straight to the applicant), or reject (terminal).
// The applicant resubmits a returned application to the first node. Every transition
// is listed by `listTransitions`; anything else is a typed CalcError
// ('invalid_transition', or 'role_not_allowed' when the node does not admit the role).
import { CalcError } from './errors.ts';

export interface ChainNode {
  key: string;
  label: string;
  /** Roles allowed to act at this node. */
  roles: readonly string[];
}

export const DEFAULT_CHAIN: readonly ChainNode[] = [
  { key: 'first_review', label: '初审 / first review', roles: ['committee', 'center'] },
  { key: 'review', label: '审核 / review', roles: ['center'] },
  { key: 'recheck', label: '复核 / recheck', roles: ['center'] },
  { key: 'final_approval', label: '审批 / final approval', roles: ['center'] },
];
export const CHAIN_NODES_MAX = 16;

export type ChainState =
  | { at: 'applicant' }
  | { at: 'node'; node: number }
  | { at: 'approved' }
  | { at: 'rejected' };

export type ChainAction =
  | { kind: 'submit' }
  | { kind: 'approve' }
  | { kind: 'return'; to: 'previous' | 'applicant' }
  | { kind: 'reject' };

export function validateChain(chain: readonly ChainNode[]): void {
  if (chain.length === 0 || chain.length > CHAIN_NODES_MAX) throw new CalcError('bad_chain', `审批节点数应为 1..${CHAIN_NODES_MAX} / a chain has 1..${CHAIN_NODES_MAX} nodes`);
  const keys = new Set<string>();
  for (const n of chain) {
    if (!/^[a-z][a-z0-9_]{0,31}$/.test(n.key) || keys.has(n.key)) throw new CalcError('bad_chain', `审批节点键无效或重复 / node key "${n.key}" is invalid or repeated`);
    if (n.roles.length === 0) throw new CalcError('bad_chain', `节点 ${n.key} 未配置角色 / node ${n.key} admits no role`);
    keys.add(n.key);
  }
}

export function stateName(chain: readonly ChainNode[], s: ChainState): string {
  return s.at === 'node' ? chain[s.node].key : s.at;
}

export function transition(chain: readonly ChainNode[], s: ChainState, action: ChainAction, role: string): ChainState {
  const invalid = () => new CalcError('invalid_transition',
    `当前状态 ${stateName(chain, s)} 不能执行 ${describe(action)} / ${describe(action)} is not allowed at ${stateName(chain, s)}`);
  if (s.at === 'applicant') {
    if (action.kind !== 'submit') throw invalid();
    return { at: 'node', node: 0 };
  }
  if (s.at !== 'node') throw invalid();
  if (s.node < 0 || s.node >= chain.length) throw new CalcError('bad_chain', `node ${s.node} is not in the chain`);
  const node = chain[s.node];
  if (action.kind === 'submit') throw invalid();
  if (!node.roles.includes(role)) {
    throw new CalcError('role_not_allowed', `角色 ${role} 不能在 ${node.label} 节点操作 / role ${role} cannot act at ${node.label}`);
  }
  if (action.kind === 'approve') return s.node + 1 < chain.length ? { at: 'node', node: s.node + 1 } : { at: 'approved' };
  if (action.kind === 'reject') return { at: 'rejected' };
  if (action.to === 'applicant' || s.node === 0) return { at: 'applicant' };
  return { at: 'node', node: s.node - 1 };
}

function describe(a: ChainAction): string {
  return a.kind === 'return' ? `return:${a.to}` : a.kind;
}

export const CHAIN_ACTIONS: readonly ChainAction[] = [
  { kind: 'submit' }, { kind: 'approve' }, { kind: 'return', to: 'previous' }, { kind: 'return', to: 'applicant' }, { kind: 'reject' },
];

/** Every allowed (from, action, to) of a chain, for documentation and exhaustive tests. */
export function listTransitions(chain: readonly ChainNode[]): Array<{ from: string; action: string; to: string }> {
  validateChain(chain);
  const states: ChainState[] = [{ at: 'applicant' }, ...chain.map((_, node) => ({ at: 'node' as const, node })), { at: 'approved' }, { at: 'rejected' }];
  const out: Array<{ from: string; action: string; to: string }> = [];
  for (const s of states) {
    for (const a of CHAIN_ACTIONS) {
      const role = s.at === 'node' ? chain[s.node].roles[0] : 'applicant';
      try {
        out.push({ from: stateName(chain, s), action: describe(a), to: stateName(chain, transition(chain, s, a, role)) });
      } catch (error) {
        if (!(error instanceof CalcError)) throw error;
      }
    }
  }
  return out;
}
