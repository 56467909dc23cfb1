import { Injectable } from '@nestjs/common';
import { domainToASCII, domainToUnicode } from 'node:url';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, IsNull, QueryFailedError, Repository } from 'typeorm';
import { TransactionRunner } from '../common/transaction-runner';
import { UserChanges } from './user-changes';
import { User } from './user.entity';

export interface NewUser {
  email: string;
  username: string;
  fullName: string | null;
  /** Null for an account created through an OpenID Connect provider: it has no password until one is set. */
  hashedPassword: string | null;
  /** Set at once for an address the provider vouched for. */
  verifiedAt?: Date;
}

/** Which unique value a sign-up collided with. */
export type TakenField = 'email' | 'username';

/** Thrown by `UsersService.create` when the email or username is already in use. */
export class UserAlreadyExistsError extends Error {
  constructor(readonly field: TakenField) {
    super(`${field} already in use`);
  }
}

/**
 * One spelling per mailbox, so that look-alikes cannot become separate accounts: NFKC (fullwidth and
 * other compatibility forms become the plain ones), the local part lower-cased, the domain through IDNA
 * (UTS #46: case, width, the ideographic full stop, `xn--` forms) and kept in its Unicode form, as
 * addresses were stored before. Null when the domain is not a usable one.
 */
export function canonicalEmail(email: string): string | null {
  const folded = email.trim().normalize('NFKC');
  const at = folded.lastIndexOf('@');
  if (at < 0) return null;
  const ascii = domainToASCII(folded.slice(at + 1));
  if (!ascii) return null;
  return `${folded.slice(0, at).toLowerCase().normalize('NFKC')}@${domainToUnicode(ascii)}`;
}

/** The stored form of an email (see `canonicalEmail`); one that has none (the DTOs refuse it) only lower-cased. */
export function normalizeEmail(email: string): string {
  return canonicalEmail(email) ?? email.trim().normalize('NFKC').toLowerCase();
}

/** Usernames are unique regardless of case and of Unicode compatibility forms (fullwidth letters and so on). */
export function canonicalUsername(username: string): string {
  return username.normalize('NFKC').toLowerCase();
}

/** `LIKE` reads `%`, `_` and the escape character itself as patterns: a search for `a_b` means those three characters. */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (char) => `\\${char}`);
}

function isUniqueViolation(error: unknown): boolean {
  if (!(error instanceof QueryFailedError)) return false;
  const driverError = error.driverError as { code?: string } | undefined;
  // 23505: PostgreSQL unique_violation; SQLITE_CONSTRAINT_UNIQUE: better-sqlite3.
  return driverError?.code === '23505' || driverError?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/**
 * The only code that touches the users table (the access check's read joins the user's session).
 * Writes take the caller's transaction (an `EntityManager` from `TransactionRunner.run`) when they
 * belong with other changes, or open their own.
 */
@Injectable()
export class UsersService {
  constructor(
    @InjectRepository(User) private readonly users: Repository<User>,
    private readonly transactions: TransactionRunner,
    private readonly changes: UserChanges,
  ) {}

  /** Reads through `manager` when given, so a transaction sees its own writes. */
  findById(id: number, manager?: EntityManager): Promise<User | null> {
    return (manager?.getRepository(User) ?? this.users).findOneBy({ id });
  }

  findByEmail(email: string): Promise<User | null> {
    return this.users.findOneBy({ email: normalizeEmail(email) });
  }

  /** The user with the stored password hash, which ordinary reads never select. */
  findByEmailWithPassword(email: string): Promise<User | null> {
    return this.users
      .createQueryBuilder('user')
      .addSelect('user.hashedPassword')
      .where('user.email = :email', { email: normalizeEmail(email) })
      .getOne();
  }

  findByIdWithPassword(id: number): Promise<User | null> {
    return this.users
      .createQueryBuilder('user')
      .addSelect('user.hashedPassword')
      .where('user.id = :id', { id })
      .getOne();
  }

  /** Whether an account holds this username, in any case. */
  usernameTaken(username: string): Promise<boolean> {
    return this.users.existsBy({ usernameCanonical: canonicalUsername(username) });
  }

  /** The first of email, username that another account already uses, or null. */
  async findTakenField(email: string, username: string): Promise<TakenField | null> {
    if (await this.users.existsBy({ email: normalizeEmail(email) })) return 'email';
    if (await this.users.existsBy({ usernameCanonical: canonicalUsername(username) })) return 'username';
    return null;
  }

  /**
   * Inserts the user and runs `alongside` (its welcome mail) in the same transaction: both happen or
   * neither does. The unique indexes are the real guard: when two sign-ups race past the pre-check, the
   * loser's violation becomes the same `UserAlreadyExistsError` the pre-check would have raised.
   */
  async create(newUser: NewUser, alongside: (manager: EntityManager, user: User) => Promise<void>): Promise<User> {
    try {
      return await this.transactions.run(async (manager) => {
        const result = await manager.getRepository(User).insert({
          email: normalizeEmail(newUser.email),
          username: newUser.username,
          usernameCanonical: canonicalUsername(newUser.username),
          fullName: newUser.fullName,
          hashedPassword: newUser.hashedPassword,
          hasPassword: newUser.hashedPassword !== null,
          ...(newUser.verifiedAt ? { isVerified: true, verifiedAt: newUser.verifiedAt } : {}),
        });
        const user = (await this.findById(result.identifiers[0].id as number, manager))!;
        await alongside(manager, user);
        return user;
      });
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      // Asked after the rollback: a failed PostgreSQL transaction answers no more queries.
      throw new UserAlreadyExistsError((await this.findTakenField(newUser.email, newUser.username)) ?? 'email');
    }
  }

  /**
   * Changes the username and/or full name (`null` clears it). A username another account holds, in any
   * case, is refused with `UserAlreadyExistsError`; the unique index decides a race.
   */
  async updateProfile(
    id: number,
    changes: { username?: string; fullName?: string | null },
    alongside: (manager: EntityManager) => Promise<void>,
  ): Promise<User> {
    const set: Partial<User> = {};
    if (changes.fullName !== undefined) set.fullName = changes.fullName;
    if (changes.username !== undefined) {
      const canonical = canonicalUsername(changes.username);
      const holder = await this.users.findOne({ select: { id: true }, where: { usernameCanonical: canonical } });
      if (holder && holder.id !== id) throw new UserAlreadyExistsError('username');
      set.username = changes.username;
      set.usernameCanonical = canonical;
    }
    try {
      const user = await this.transactions.run(async (manager) => {
        if (Object.keys(set).length > 0) await manager.getRepository(User).update({ id }, set);
        await alongside(manager);
        return (await this.findById(id, manager))!;
      });
      this.changes.notify(id);
      return user;
    } catch (error) {
      if (isUniqueViolation(error)) throw new UserAlreadyExistsError('username');
      throw error;
    }
  }

  /**
   * Locks the user's row until the caller's transaction ends, so requests for one account that count
   * and then write (the mail caps) take turns. SQLite needs no lock: its transactions already run one
   * at a time.
   */
  async lockForUpdate(manager: EntityManager, id: number): Promise<void> {
    if (!this.transactions.isPostgres) return;
    await manager
      .getRepository(User)
      .createQueryBuilder('user')
      .select('user.id')
      .setLock('pessimistic_write')
      .where('user.id = :id', { id })
      .getRawOne();
  }

  /**
   * Stores a new password hash and ends every access token issued before it. With `replacing`, only while
   * that is still the stored hash: two changes that both checked the same current password must not both
   * go through, the later silently undoing the earlier. Returns whether the hash was stored.
   */
  async changePassword(manager: EntityManager, id: number, hashedPassword: string, replacing?: string): Promise<boolean> {
    const update = manager
      .createQueryBuilder()
      .update(User)
      .set({ hashedPassword, hasPassword: true, tokenVersion: () => 'token_version + 1' })
      .where('id = :id', { id });
    if (replacing !== undefined) update.andWhere('hashed_password = :replacing', { replacing });
    if ((await update.execute()).affected !== 1) return false;
    // Announced after the commit: a cache refilled before it would keep the old token version alive.
    this.transactions.afterCommit(manager, () => this.changes.notify(id));
    return true;
  }

  /** Tells the holders of copies of users (the access-check cache) that this one changed. */
  changed(id: number): void {
    this.changes.notify(id);
  }

  /**
   * Activates or deactivates the account in the caller's transaction; false when there is no such user.
   * Announced after the commit, so every instance's access check sees it on its next request.
   */
  async setActiveIn(manager: EntityManager, id: number, isActive: boolean): Promise<boolean> {
    const result = await manager.getRepository(User).update({ id }, { isActive });
    if (!result.affected) return false;
    this.transactions.afterCommit(manager, () => this.changes.notify(id));
    return true;
  }

  /** Replaces the user's roles in the caller's transaction; announced after the commit like `setActiveIn`. */
  async setRoles(manager: EntityManager, id: number, roles: string[]): Promise<void> {
    await manager.getRepository(User).update({ id }, { roles });
    this.transactions.afterCommit(manager, () => this.changes.notify(id));
  }

  /**
   * A page of users in id order after `afterId`, those whose email or username starts with `query`
   * (compared in their stored forms: canonical email, lower-cased NFKC username) when one is given.
   */
  async page(options: { query?: string; afterId?: number; limit: number }): Promise<User[]> {
    const query = this.users.createQueryBuilder('user').where('1 = 1');
    if (options.query) {
      const prefix = `${escapeLike(canonicalUsername(options.query.trim()))}%`;
      query.andWhere("(user.email LIKE :prefix ESCAPE '\\' OR user.usernameCanonical LIKE :prefix ESCAPE '\\')", { prefix });
    }
    if (options.afterId !== undefined) query.andWhere('user.id > :afterId', { afterId: options.afterId });
    return query.orderBy('user.id', 'ASC').limit(options.limit).getMany();
  }

  /** Activates or deactivates the account; a deactivated user gets 403 on sign-in and every guarded route. */
  async setActive(id: number, isActive: boolean): Promise<void> {
    await this.transactions.run((manager) => manager.getRepository(User).update({ id }, { isActive }));
    this.changes.notify(id);
  }

  /** Whether an account other than `exceptId` has this address (compared in its stored form), read in the caller's transaction. */
  async emailTakenIn(manager: EntityManager, email: string, exceptId: number): Promise<boolean> {
    const holder = await manager.getRepository(User).findOne({ select: { id: true }, where: { email: normalizeEmail(email) } });
    return holder !== null && holder.id !== exceptId;
  }

  /**
   * Moves the account to `email` (stored form), verified at `at`: the owner just followed a link mailed
   * there. Another account taking the address meanwhile makes the unique index refuse it:
   * `UserAlreadyExistsError`, recognised by `UsersService.isUniqueViolation` on the error the caller's transaction ended with.
   */
  async changeEmail(manager: EntityManager, id: number, email: string, at: Date): Promise<void> {
    await manager.getRepository(User).update({ id }, { email: normalizeEmail(email), isVerified: true, verifiedAt: at });
    this.transactions.afterCommit(manager, () => this.changes.notify(id));
  }

  /** Whether a failed transaction failed on the unique email (or username) index. */
  static isUniqueViolation(error: unknown): boolean {
    return isUniqueViolation(error);
  }

  /**
   * Deletes the account's row in the caller's transaction; false when it was already gone. Announced
   * after the commit, so that no instance's access check keeps a copy of it.
   */
  async deleteIn(manager: EntityManager, id: number): Promise<boolean> {
    const result = await manager.getRepository(User).delete({ id });
    if (!result.affected) return false;
    this.transactions.afterCommit(manager, () => this.changes.notify(id));
    return true;
  }

  /** Records that the owner proved control of the address; the first proof's time is kept. */
  async markVerified(manager: EntityManager, id: number, at: Date): Promise<void> {
    await manager.getRepository(User).update({ id, verifiedAt: IsNull() }, { isVerified: true, verifiedAt: at });
  }

  /** Replaces the hash of an unchanged password (new cost parameters); existing tokens stay valid. */
  /**
   * Stores a stronger hash of the same password, only while `previousHash` is still the stored one: a
   * password change that committed meanwhile must not be overwritten by a hash of the old password.
   */
  async replacePasswordHash(id: number, previousHash: string, hashedPassword: string): Promise<boolean> {
    const result = await this.transactions.run((manager) =>
      manager.getRepository(User).update({ id, hashedPassword: previousHash }, { hashedPassword }),
    );
    return result.affected === 1;
  }
}
