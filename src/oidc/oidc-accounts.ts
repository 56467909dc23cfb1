import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { TransactionRunner } from '../common/transaction-runner';
import { MailOutbox } from '../outbox/mail-outbox.service';
import { OutboxWorker } from '../outbox/outbox.worker';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { User } from '../users/user.entity';
import { canonicalEmail, canonicalUsername, UserAlreadyExistsError, UsersService } from '../users/users.service';
import type { SessionClient } from '../sessions/sessions.service';
import { Identity } from './oidc.entities';

/** What the provider said about the account, from a validated ID token. */
export interface ProviderAccount {
  provider: string;
  issuer: string;
  subject: string;
  email: string | null;
  emailVerified: boolean;
  preferredUsername: string | null;
  name: string | null;
}

/** Where a sign-in through a provider leads; each refusal is an `error=` code of the contract. */
export type SignInDecision =
  | { outcome: 'user'; user: User }
  | { outcome: 'account_exists' | 'email_not_verified' | 'account_inactive' };

export type LinkDecision = { outcome: 'linked' } | { outcome: 'account_exists' };

const USERNAME_MAX = 50;

/**
 * The linking rules. Identities are found by `(issuer, subject)` only; an email claim never leads to an
 * existing account (a provider account carrying a victim's address must not become the victim), and an
 * unverified one creates nothing, so no pre-registered account waits for its owner to be taken over.
 */
@Injectable()
export class OidcAccounts {
  constructor(
    @InjectRepository(Identity) private readonly identities: Repository<Identity>,
    private readonly users: UsersService,
    private readonly transactions: TransactionRunner,
    private readonly outbox: MailOutbox,
    private readonly mailWorker: OutboxWorker,
    private readonly auditLog: AuditService,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  async signIn(account: ProviderAccount, client: SessionClient): Promise<SignInDecision> {
    const linked = await this.identities.findOneBy({ issuer: account.issuer, subject: account.subject });
    if (linked) {
      const user = await this.users.findById(linked.userId);
      if (!user) return { outcome: 'account_exists' };
      return user.isActive ? { outcome: 'user', user } : { outcome: 'account_inactive' };
    }
    // Before any look-up by email, so that this answer says nothing about which addresses have accounts.
    const email = account.email === null ? null : canonicalEmail(account.email);
    if (!account.emailVerified || email === null) return { outcome: 'email_not_verified' };
    if (await this.users.findByEmail(email)) {
      // The same provider account may have signed up through a racing callback since the look-up above:
      // then the account found is its own, linked in the same commit.
      if (await this.identities.existsBy({ issuer: account.issuer, subject: account.subject })) return this.signIn(account, client);
      return { outcome: 'account_exists' };
    }
    return this.createUser(account, email, client);
  }

  /** Links the provider account to `userId` (a signed-in owner asked for it); refused when another user holds it. */
  async link(userId: number, account: ProviderAccount, client: SessionClient): Promise<LinkDecision> {
    const existing = await this.identities.findOneBy({ issuer: account.issuer, subject: account.subject });
    if (existing) return existing.userId === userId ? { outcome: 'linked' } : { outcome: 'account_exists' };
    const user = await this.users.findById(userId);
    if (!user) return { outcome: 'account_exists' };
    try {
      await this.transactions.run(async (manager) => {
        await this.insertIdentity(manager, userId, account);
        await this.outbox.enqueue(manager, 'identity-linked', user);
        await this.auditLog.record(manager, { type: 'identity_linked', userId, client, details: { provider: account.provider } });
      });
    } catch (error) {
      // Two callbacks racing for one identity: the unique index decides, the loser is told it is taken.
      if (await this.identities.existsBy({ issuer: account.issuer, subject: account.subject, userId })) return { outcome: 'linked' };
      if (await this.identities.existsBy({ issuer: account.issuer, subject: account.subject })) return { outcome: 'account_exists' };
      throw error;
    }
    this.mailWorker.wake();
    return { outcome: 'linked' };
  }

  private async createUser(account: ProviderAccount, email: string, client: SessionClient): Promise<SignInDecision> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const username = await this.freeUsername(account, email);
      try {
        const user = await this.users.create(
          { email, username, fullName: account.name ? [...account.name].slice(0, 100).join('') : null, hashedPassword: null, verifiedAt: this.config.clock() },
          async (manager, created) => {
            await this.insertIdentity(manager, created.id, account);
            await this.auditLog.record(manager, { type: 'signup', userId: created.id, client, details: { method: 'oidc', provider: account.provider } });
          },
        );
        return { outcome: 'user', user };
      } catch (error) {
        if (!(error instanceof UserAlreadyExistsError)) throw error;
        // The same provider account signing up twice at once: the identity's unique index failed the loser.
        if (await this.identities.existsBy({ issuer: account.issuer, subject: account.subject })) return this.signIn(account, client);
        if (error.field === 'email') return { outcome: 'account_exists' };
        // The username was taken in between: look for the next free one.
      }
    }
    throw new Error('no free username found for a new OIDC account');
  }

  private async insertIdentity(manager: EntityManager, userId: number, account: ProviderAccount): Promise<void> {
    await manager.getRepository(Identity).insert({
      userId,
      issuer: account.issuer,
      subject: account.subject,
      provider: account.provider,
      email: account.email?.slice(0, 254) ?? null,
    });
  }

  /** `preferred_username`, else the email's local part, fitted to sign-up's pattern; `-2`, `-3`… until free. */
  private async freeUsername(account: ProviderAccount, email: string): Promise<string> {
    const base = fitUsername(account.preferredUsername) ?? fitUsername(email.slice(0, email.lastIndexOf('@'))) ?? 'user';
    for (let n = 1; ; n++) {
      const suffix = n === 1 ? '' : `-${n}`;
      const candidate = `${base.slice(0, USERNAME_MAX - suffix.length)}${suffix}`;
      if (!(await this.users.usernameTaken(candidate))) return candidate;
      if (n > 1000) return `${base.slice(0, 30)}-${Date.now().toString(36)}`;
    }
  }
}

/** Letters, digits, `.`, `_` and `-` only (others become `-`), at least 3 characters, at most 50 once normalised. */
export function fitUsername(raw: string | null): string | null {
  if (!raw) return null;
  let fitted = raw.normalize('NFKC').replace(/[^\p{L}\p{N}._-]+/gu, '-').replace(/^-+|-+$/g, '');
  while ([...canonicalUsername(fitted)].length > USERNAME_MAX) fitted = [...fitted].slice(0, -1).join('');
  if ([...fitted].length < 3) return null;
  return fitted;
}
