import { Injectable, NotFoundException } from '@nestjs/common';
import { AuditService, EventFilter } from '../audit/audit.service';
import { AuthErrors, AuthMessages } from '../common/auth.errors';
import { TransactionRunner } from '../common/transaction-runner';
import { SessionsService } from '../sessions/sessions.service';
import { User } from '../users/user.entity';
import { UsersService } from '../users/users.service';
import type { RequestContext } from './decorators';
import { AuthEventResponse, DEFAULT_PAGE_SIZE, EventFilterQueryDto, EventPageResponse, PageQueryDto, UserPageResponse, UserSearchQueryDto } from './dto/admin.dto';
import { SuccessResponse, UserResponse } from './dto/responses.dto';

const USER_ID = /^[1-9][0-9]{0,9}$/;
const MAX_USER_ID = 2 ** 31 - 1;

/**
 * What an admin may do to accounts, and the audit log's pages. Each change commits with its event and
 * is announced through `UserChanges` once committed, so every instance's access check (through Redis
 * pub/sub) refuses a locked user, an ended session or a revoked role on its next request.
 */
@Injectable()
export class AdminService {
  constructor(
    private readonly users: UsersService,
    private readonly sessions: SessionsService,
    private readonly auditLog: AuditService,
    private readonly transactions: TransactionRunner,
  ) {}

  async listUsers(query: UserSearchQueryDto): Promise<UserPageResponse> {
    const limit = pageSize(query);
    const rows = await this.users.page({ query: query.query, afterId: query.cursor ? Number(query.cursor) : undefined, limit: limit + 1 });
    const items = rows.slice(0, limit);
    return { items: items.map((user) => UserResponse.from(user)), next_cursor: rows.length > limit ? String(items[items.length - 1].id) : null };
  }

  async getUser(id: string): Promise<UserResponse> {
    return UserResponse.from(await this.existing(id));
  }

  /** Inactive, and every session ends: refused on the next request on every instance. */
  async lock(admin: User, id: string, ctx: RequestContext): Promise<SuccessResponse> {
    const user = await this.existing(id);
    await this.transactions.run(async (manager) => {
      if (!(await this.users.setActiveIn(manager, user.id, false))) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
      await this.sessions.revokeAll(manager, user.id);
      await this.auditLog.record(manager, { type: 'user_locked', userId: user.id, client: clientOf(ctx), details: { actor_id: admin.id } });
    });
    return { message: AuthMessages.USER_LOCKED };
  }

  async unlock(admin: User, id: string, ctx: RequestContext): Promise<SuccessResponse> {
    const user = await this.existing(id);
    await this.transactions.run(async (manager) => {
      if (!(await this.users.setActiveIn(manager, user.id, true))) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
      await this.auditLog.record(manager, { type: 'user_unlocked', userId: user.id, client: clientOf(ctx), details: { actor_id: admin.id } });
    });
    return { message: AuthMessages.USER_UNLOCKED };
  }

  async signOutAll(admin: User, id: string, ctx: RequestContext): Promise<SuccessResponse> {
    const user = await this.existing(id);
    await this.transactions.run(async (manager) => {
      await this.sessions.revokeAll(manager, user.id);
      await this.auditLog.record(manager, { type: 'signout', userId: user.id, client: clientOf(ctx), details: { scope: 'all', actor_id: admin.id } });
    });
    return { message: AuthMessages.USER_SIGNED_OUT };
  }

  /** Replaces the user's roles; one `role_granted` or `role_revoked` event per role that changed. */
  async setRoles(admin: User, id: string, roles: string[], ctx: RequestContext): Promise<UserResponse> {
    const target = await this.existing(id);
    const wanted = [...new Set(roles)].sort();
    const updated = await this.transactions.run(async (manager) => {
      await this.users.lockForUpdate(manager, target.id);
      const current = await this.users.findById(target.id, manager);
      if (!current) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
      const granted = wanted.filter((role) => !current.roles.includes(role));
      const revoked = current.roles.filter((role) => !wanted.includes(role));
      if (granted.length + revoked.length > 0) await this.users.setRoles(manager, current.id, wanted);
      for (const role of granted) {
        await this.auditLog.record(manager, { type: 'role_granted', userId: current.id, client: clientOf(ctx), details: { role, actor_id: admin.id } });
      }
      for (const role of revoked) {
        await this.auditLog.record(manager, { type: 'role_revoked', userId: current.id, client: clientOf(ctx), details: { role, actor_id: admin.id } });
      }
      return Object.assign(current, { roles: wanted });
    });
    return UserResponse.from(updated);
  }

  /**
   * Grants or revokes one role of the account with `email`, from the operator's command line (the
   * first admin): the event names no actor and no client. False when there is no such account.
   */
  async changeRoleByEmail(email: string, role: string, grant: boolean): Promise<{ found: boolean; changed: boolean }> {
    const user = await this.users.findByEmail(email);
    if (!user) return { found: false, changed: false };
    return this.transactions.run(async (manager) => {
      await this.users.lockForUpdate(manager, user.id);
      const current = (await this.users.findById(user.id, manager))!;
      const has = current.roles.includes(role);
      if (has === grant) return { found: true, changed: false };
      const roles = grant ? [...current.roles, role].sort() : current.roles.filter((held) => held !== role);
      await this.users.setRoles(manager, current.id, roles);
      await this.auditLog.record(manager, { type: grant ? 'role_granted' : 'role_revoked', userId: current.id, client: null, details: { role, actor: 'cli' } });
      return { found: true, changed: true };
    });
  }

  events(query: EventFilterQueryDto): Promise<EventPageResponse> {
    return this.eventPage({
      userId: query.user_id ? Number(query.user_id) : undefined,
      type: query.type,
      from: query.from ? new Date(query.from) : undefined,
      to: query.to ? new Date(query.to) : undefined,
      before: query.cursor ? Number(query.cursor) : undefined,
      limit: pageSize(query),
    });
  }

  /** The caller's own history (`GET /events`). */
  ownEvents(user: User, query: PageQueryDto): Promise<EventPageResponse> {
    return this.eventPage({ userId: user.id, before: query.cursor ? Number(query.cursor) : undefined, limit: pageSize(query) });
  }

  private async eventPage(filter: EventFilter): Promise<EventPageResponse> {
    const page = await this.auditLog.page(filter);
    return { items: page.items.map((event) => AuthEventResponse.from(event)), next_cursor: page.nextCursor };
  }

  /** The user `id` names; a malformed or unknown id is the same 404. */
  private async existing(id: string): Promise<User> {
    const user = USER_ID.test(id) && Number(id) <= MAX_USER_ID ? await this.users.findById(Number(id)) : null;
    if (!user) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
    return user;
  }
}

function pageSize(query: PageQueryDto): number {
  return query.limit ? Number(query.limit) : DEFAULT_PAGE_SIZE;
}

function clientOf(ctx: RequestContext): { ip: string; userAgent: string | null } {
  return { ip: ctx.ip, userAgent: ctx.userAgent };
}
