import type { OutboxMessage } from './outbox-message.entity';

/** What a message says once rendered. */
export interface ComposedMail {
  subject: string;
  text: string;
  html: string;
}

/**
 * The outbox's port for content: it stores only what a message is for and asks this, just before each
 * attempt, what it says. Whoever knows the wording (emails/) implements it; the outbox never imports it.
 */
export interface MailComposer {
  /** Null when the message has nothing left to say (a newer request replaced it): it is dropped unsent. */
  compose(message: OutboxMessage): Promise<ComposedMail | null>;
}

export const MAIL_COMPOSER = Symbol('MAIL_COMPOSER');
