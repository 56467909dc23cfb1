import { BadRequestException, ForbiddenException, Injectable, Logger, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import type { RequestContext } from '../auth/decorators';
import { AuditService } from '../audit/audit.service';
import { AuthErrors } from '../common/auth.errors';
import { TransactionRunner } from '../common/transaction-runner';
import { SessionsService } from '../sessions/sessions.service';
import { User } from '../users/user.entity';
import { UsersService } from '../users/users.service';
import { Identity } from './oidc.entities';

/** The identities of a signed-in user: list, unlink, and the check a new link needs. */
@Injectable()
export class IdentitiesService {
  private readonly logger = new Logger('AuthEvents');

  constructor(
    @InjectRepository(Identity) private readonly identities: Repository<Identity>,
    private readonly sessions: SessionsService,
    private readonly users: UsersService,
    private readonly transactions: TransactionRunner,
    private readonly auditLog: AuditService,
  ) {}

  list(user: User): Promise<Identity[]> {
    return this.listOf(user.id);
  }

  /** The user's identities, oldest first (also what `GET /me/export` hands over). */
  listOf(userId: number): Promise<Identity[]> {
    return this.identities.find({ where: { userId }, order: { createdAt: 'ASC', id: 'ASC' } });
  }

  /** 403 `Recent sign-in required` unless this session signed in within the last five minutes (a refresh does not count). */
  async assertRecentSignIn(user: User, sessionId: string): Promise<void> {
    if (!(await this.sessions.signedInRecently(user.id, sessionId))) throw new ForbiddenException(AuthErrors.RECENT_SIGNIN_REQUIRED);
  }

  /** Removes one of the user's identities, unless it is the account's last way in. */
  async unlink(user: User, rawId: string, ctx: RequestContext, sessionId?: string): Promise<void> {
    const id = /^[1-9][0-9]{0,9}$/.test(rawId) ? Number(rawId) : NaN;
    if (!Number.isSafeInteger(id) || id > 2_147_483_647) throw new NotFoundException(AuthErrors.IDENTITY_NOT_FOUND);
    const provider = await this.transactions.run(async (manager) => {
      // The lock makes two unlinks of the last two identities run one after the other: one of them is refused.
      await this.users.lockForUpdate(manager, user.id);
      const identities = manager.getRepository(Identity);
      const identity = await identities.findOneBy({ id, userId: user.id });
      if (!identity) throw new NotFoundException(AuthErrors.IDENTITY_NOT_FOUND);
      const current = await this.users.findById(user.id, manager);
      const others = await identities.countBy({ userId: user.id });
      if (!current?.hasPassword && others <= 1) throw new BadRequestException(AuthErrors.LAST_SIGNIN_METHOD);
      await identities.delete({ id });
      await this.auditLog.record(manager, {
        type: 'identity_unlinked',
        userId: user.id,
        sessionId,
        client: { ip: ctx.ip, userAgent: ctx.userAgent },
        details: { provider: identity.provider },
      });
      return identity.provider;
    });
    this.logger.log(`event=identity_unlinked user_id=${user.id} provider=${provider} request_id=${ctx.requestId} ip=${ctx.ip}`);
  }
}
