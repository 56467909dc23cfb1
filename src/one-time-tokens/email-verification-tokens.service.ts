import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { TransactionRunner } from '../common/transaction-runner';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { EmailVerificationToken } from './email-verification-token.entity';
import { OneTimeTokens } from './one-time-tokens';

/** Single-use email verification tokens, valid for `emailVerificationTokenTtlSeconds`. */
@Injectable()
export class EmailVerificationTokensService extends OneTimeTokens {
  constructor(
    @InjectRepository(EmailVerificationToken) tokens: Repository<EmailVerificationToken>,
    transactions: TransactionRunner,
    @Inject(AUTH_CONFIG) config: AuthConfig,
  ) {
    super(tokens, transactions, config.emailVerificationTokenTtlSeconds, config.clock);
  }
}
