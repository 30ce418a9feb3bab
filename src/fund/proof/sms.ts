// Sending SMS to owners. The fund talks to an SmsSender; the default, for development
// and tests, writes each message to the fund_sms_outbox table (the operator or a test
// reads it: GET /v1/fund/sms-outbox). A real provider (阿里云短信, 腾讯云短信, an
// operator's gateway) plugs in as another SmsSender through FundOptions.sms.
import type { Database } from '../../platform/db.ts';
import type { Clock } from '../../platform/clock.ts';
import type { Pii } from '../register/pii.ts';
import { maskPhone } from '../register/pii.ts';
import * as repo from './proof.repo.ts';

export interface SmsMessage {
  /** The phone number on record, in clear (only the sender sees it). */
  phone: string;
  text: string;
  /** What the message is about (a unit id), for the outbox and logs. */
  ref: string;
}

export interface SmsSender {
  readonly name: string;
  /** Resolves once the provider accepted the message; throws when it did not. */
  send(message: SmsMessage): Promise<void>;
}

/** The development/test sender: the message lands in fund_sms_outbox (phone masked and hashed, text in clear). */
export function outboxSmsSender(deps: { db: Database; pii: Pii; clock: Clock; echo?: (line: string) => void }): SmsSender {
  return {
    name: 'outbox',
    async send(m) {
      const at = new Date(Number(deps.clock.nowNs() / 1_000_000n));
      await repo.insertOutbox(deps.db.kysely, { phoneMasked: maskPhone(m.phone), phoneHash: deps.pii.hash('phone', m.phone), ref: m.ref, body: m.text, at });
      // The embedded demo has no SMS gateway: its terminal stands in for the owner's phone.
      deps.echo?.(`演示短信 / demo SMS to ${maskPhone(m.phone)}: ${m.text}`);
    },
  };
}
