import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { TransactionRunner } from '../common/transaction-runner';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { OneTimeTokens } from './one-time-tokens';
import { PasswordResetToken } from './password-reset-token.entity';

/** Single-use password reset tokens, valid for `passwordResetTokenTtlSeconds`. */
@Injectable()
export class PasswordResetTokensService extends OneTimeTokens {
  constructor(
    @InjectRepository(PasswordResetToken) tokens: Repository<PasswordResetToken>,
    transactions: TransactionRunner,
    @Inject(AUTH_CONFIG) config: AuthConfig,
  ) {
    super(tokens, transactions, config.passwordResetTokenTtlSeconds, config.clock);
  }
}
