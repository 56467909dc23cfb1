import { Index } from 'typeorm';
import { AuthEntity } from '../options/table-prefix';
import { OneTimeToken } from './one-time-token.entity';

/** One outstanding email verification. */
@AuthEntity('email_verification_tokens')
@Index('UQ_email_verification_tokens_token_hash', ['tokenHash'], { unique: true })
@Index('IDX_email_verification_tokens_user_id', ['userId'])
export class EmailVerificationToken extends OneTimeToken {}
