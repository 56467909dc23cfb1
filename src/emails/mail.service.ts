import { Inject, Injectable } from '@nestjs/common';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { EmailVerificationTokensService } from '../one-time-tokens/email-verification-tokens.service';
import { PasswordResetTokensService } from '../one-time-tokens/password-reset-tokens.service';
import { EmailChangeTokensService } from '../one-time-tokens/email-change-tokens.service';
import { UsersService } from '../users/users.service';
import {
  accountDeletedMail,
  emailChangeAddressTakenMail,
  emailChangeConfirmationMail,
  emailChangeRequestedMail,
  emailVerificationMail,
  MailContent,
  MailedLink,
  passwordChangedMail,
  passwordResetMail,
  secondFactorMail,
  welcomeMail,
} from './mail-templates';
import type { MailComposer } from '../outbox/mail-composer';
import type { OutboxMessage } from '../outbox/outbox-message.entity';

/**
 * The content side of mail: what an outbox message says, rendered when it is about to be sent. A message
 * that needs a link mints its token here, for this attempt: the outbox itself never holds a usable
 * token, a newer token voids the one of a failed attempt, and the link's lifetime starts when it leaves.
 * Every link comes from configuration, never from a request.
 */
@Injectable()
export class MailService implements MailComposer {
  constructor(
    private readonly users: UsersService,
    private readonly resetTokens: PasswordResetTokensService,
    private readonly verificationTokens: EmailVerificationTokensService,
    private readonly emailChangeTokens: EmailChangeTokensService,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  async compose(message: OutboxMessage): Promise<MailContent | null> {
    const { appName } = this.config;
    // The one message that outlives its account: it needs nothing of it.
    if (message.kind === 'account-deleted') return accountDeletedMail(appName, message.createdAt);
    const user = message.userId === null ? null : await this.users.findById(message.userId);
    if (!user) throw new Error('the account no longer exists');
    switch (message.kind) {
      case 'email-change-confirmation': {
        const link = await this.emailChangeLink(user.id, message.recipient);
        return link && emailChangeConfirmationMail(appName, user.username, link);
      }
      case 'email-change-requested':
        return emailChangeRequestedMail(appName, user.username, message.createdAt);
      case 'email-change-address-taken':
        return emailChangeAddressTakenMail(appName, user.username, message.createdAt);
      case 'welcome':
        return welcomeMail(appName, user.username, await this.verificationLink(user.id));
      case 'email-verification':
        return emailVerificationMail(appName, user.username, await this.verificationLink(user.id));
      case 'password-reset':
        return passwordResetMail(appName, user.username, await this.resetLink(user.id));
      case 'password-changed':
        return passwordChangedMail(appName, user.username, message.createdAt);
      case 'mfa-enabled':
      case 'mfa-disabled':
      case 'recovery-code-used':
      case 'identity-linked':
        return secondFactorMail(appName, user.username, message.kind, message.createdAt);
      default:
        throw new Error(`unknown message kind ${String(message.kind)}`);
    }
  }

  private async verificationLink(userId: number): Promise<MailedLink> {
    return {
      url: withToken(this.config.emailVerificationUrl, await this.verificationTokens.issue(userId)),
      validForSeconds: this.config.emailVerificationTokenTtlSeconds,
    };
  }

  /** Null when the change this message was for is no longer pending (a newer request replaced it). */
  private async emailChangeLink(userId: number, newEmail: string): Promise<MailedLink | null> {
    const token = await this.emailChangeTokens.mint(userId, newEmail);
    return token === null ? null : { url: withToken(this.config.emailChangeUrl, token), validForSeconds: this.config.emailChangeTokenTtlSeconds };
  }

  private async resetLink(userId: number): Promise<MailedLink> {
    return {
      url: withToken(this.config.passwordResetUrl, await this.resetTokens.issue(userId)),
      validForSeconds: this.config.passwordResetTokenTtlSeconds,
    };
  }
}

function withToken(page: URL, token: string): string {
  const link = new URL(page);
  link.searchParams.set('token', token);
  return link.toString();
}
