import { Index } from 'typeorm';
import { AuthEntity } from '../options/table-prefix';
import { OneTimeToken } from './one-time-token.entity';

/** One outstanding password reset. */
@AuthEntity('password_reset_tokens')
@Index('UQ_password_reset_tokens_token_hash', ['tokenHash'], { unique: true })
@Index('IDX_password_reset_tokens_user_id', ['userId'])
export class PasswordResetToken extends OneTimeToken {}
