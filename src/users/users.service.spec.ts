import { EntityManager, QueryFailedError, Repository } from 'typeorm';
import type { TransactionRunner } from '../common/transaction-runner';
import { UserChanges } from './user-changes';
import { User } from './user.entity';
import { canonicalUsername, NewUser, normalizeEmail, UserAlreadyExistsError, UsersService } from './users.service';

function newUser(overrides: Partial<NewUser> = {}): NewUser {
  return { email: ' Ada@Example.com ', username: 'Ada', fullName: null, hashedPassword: '$argon2id$hash', ...overrides };
}

function uniqueViolation(code: string): QueryFailedError {
  return new QueryFailedError('INSERT INTO "users" ...', [], Object.assign(new Error('duplicate key'), { code }));
}

function repositoryMock() {
  return {
    insert: jest.fn(),
    findOneBy: jest.fn(),
    existsBy: jest.fn().mockResolvedValue(false),
    update: jest.fn().mockResolvedValue({ affected: 1 }),
    createQueryBuilder: jest.fn(() => {
      const builder: Record<string, jest.Mock> = { execute: jest.fn().mockResolvedValue({ affected: 1 }) };
      for (const step of ['update', 'set', 'where', 'andWhere']) builder[step] = jest.fn(() => builder);
      return builder;
    }),
  };
}

describe(normalizeEmail.name, () => {
  it.each([
    ['ada@example.com', 'ada@example.com'],
    ['Ada@Example.COM', 'ada@example.com'],
    ['  ada@example.com\t\n', 'ada@example.com'],
    [' ADA.Lovelace+Tag@Example.com ', 'ada.lovelace+tag@example.com'],
    ['ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ', 'ada@example.com'],
    ['ＡＤＡ@example.com', 'ada@example.com'],
    ['ada@example。com', 'ada@example.com'],
    ['ada@BÜCHER.example', 'ada@bücher.example'],
    ['ada@xn--bcher-kva.example', 'ada@bücher.example'],
    ['e\u0301lise@example.com', 'élise@example.com'],
    ['ﬁona@example.com', 'fiona@example.com'],
  ])('normalises %p to %p', (email, expected) => {
    expect(normalizeEmail(email)).toBe(expected);
  });

  it.each([' Ada@Example.COM ', 'ＩＳＴＡＮＢＵＬ@İstanbul.example', 'ada@xn--bcher-kva.example', 'Straße@STRASSE.example'])(
    'is idempotent on %p',
    (email) => {
      const once = normalizeEmail(email);

      expect(normalizeEmail(once)).toBe(once);
    },
  );
});

describe(canonicalUsername.name, () => {
  it.each([
    ['ada', 'ada'],
    ['Ada', 'ada'],
    ['ADA', 'ada'],
    ['ＡＤＡ', 'ada'],
    ['Ａda', 'ada'],
    ['ada_l-1.x', 'ada_l-1.x'],
  ])('maps %p to %p', (username, expected) => {
    expect(canonicalUsername(username)).toBe(expected);
  });

  it('makes fullwidth and ASCII spellings collide', () => {
    expect(canonicalUsername('ＡＤＡ')).toBe(canonicalUsername('Ada'));
  });

  it('makes composed and decomposed accents collide', () => {
    expect(canonicalUsername('Ren\u00e9')).toBe(canonicalUsername('Rene\u0301'));
  });

  it('keeps different names apart', () => {
    expect(canonicalUsername('ada')).not.toBe(canonicalUsername('adb'));
    expect(canonicalUsername('Élise')).not.toBe(canonicalUsername('Elise'));
  });

  it('can be longer than what was typed (NFKC expands U+FDFA to 18 characters), which SignUpDto bounds', () => {
    expect(canonicalUsername('\uFDFA')).toHaveLength(18);
  });
});

describe(UsersService.name, () => {
  let repository: ReturnType<typeof repositoryMock>;
  let manager: EntityManager;
  let transactions: { run: jest.Mock; afterCommit: jest.Mock; isPostgres: boolean };
  let sut: UsersService;
  let changed: number[];

  beforeEach(() => {
    repository = repositoryMock();
    manager = { getRepository: () => repository, createQueryBuilder: repository.createQueryBuilder } as unknown as EntityManager;
    transactions = {
      run: jest.fn((work: (m: EntityManager) => Promise<unknown>) => work(manager)),
      afterCommit: jest.fn((_m: EntityManager, callback: () => void) => callback()),
      isPostgres: false,
    };
    const changes = new UserChanges();
    changed = [];
    changes.subscribe((id) => changed.push(id));
    sut = new UsersService(repository as unknown as Repository<User>, transactions as unknown as TransactionRunner, changes);
  });

  describe('change notices', () => {
    it('tells subscribers when a password changes, so cached copies of the user are dropped', async () => {
      await expect(sut.changePassword(manager, 7, 'hash')).resolves.toBe(true);
      expect(changed).toEqual([7]);
      expect(transactions.afterCommit).toHaveBeenCalledWith(manager, expect.any(Function));
    });

    it('stores nothing and tells no one when the hash it was to replace is no longer the stored one', async () => {
      const builder = { execute: jest.fn().mockResolvedValue({ affected: 0 }) } as Record<string, jest.Mock>;
      for (const step of ['update', 'set', 'where', 'andWhere']) builder[step] = jest.fn(() => builder);
      repository.createQueryBuilder.mockReturnValue(builder);

      await expect(sut.changePassword(manager, 7, 'new hash', 'old hash')).resolves.toBe(false);
      expect(builder.andWhere).toHaveBeenCalledWith('hashed_password = :replacing', { replacing: 'old hash' });
      expect(changed).toEqual([]);
    });

    it('tells subscribers when the account is activated or deactivated', async () => {
      await sut.setActive(8, false);
      expect(changed).toEqual([8]);
      expect(repository.update).toHaveBeenCalledWith({ id: 8 }, { isActive: false });
    });
  });

  describe('findTakenField', () => {
    it('answers null when both are free', async () => {
      await expect(sut.findTakenField('ada@example.com', 'ada')).resolves.toBeNull();
    });

    it('looks up the normalised email and the canonical username', async () => {
      await sut.findTakenField(' Ada@Example.com ', 'ＡＤＡ');

      expect(repository.existsBy).toHaveBeenCalledWith({ email: 'ada@example.com' });
      expect(repository.existsBy).toHaveBeenCalledWith({ usernameCanonical: 'ada' });
    });

    it('names the email first when both are taken', async () => {
      repository.existsBy.mockResolvedValue(true);

      await expect(sut.findTakenField('ada@example.com', 'ada')).resolves.toBe('email');
    });

    it('names the username when only it is taken', async () => {
      repository.existsBy.mockImplementation(async (where: object) => 'usernameCanonical' in where);

      await expect(sut.findTakenField('ada@example.com', 'ada')).resolves.toBe('username');
    });
  });

  describe('create', () => {
    const alongside = jest.fn().mockResolvedValue(undefined);

    it('stores the normalised email and the canonical username, and runs `alongside` in the same transaction', async () => {
      const stored = Object.assign(new User(), { id: 3 });
      repository.insert.mockResolvedValue({ identifiers: [{ id: 3 }] });
      repository.findOneBy.mockResolvedValue(stored);

      await expect(sut.create(newUser({ username: 'ＡＤＡ' }), alongside)).resolves.toBe(stored);
      expect(transactions.run).toHaveBeenCalledTimes(1);
      expect(alongside).toHaveBeenCalledWith(manager, stored);
      expect(repository.insert).toHaveBeenCalledWith({
        email: 'ada@example.com',
        username: 'ＡＤＡ',
        usernameCanonical: 'ada',
        fullName: null,
        hashedPassword: '$argon2id$hash',
        hasPassword: true,
      });
      expect(repository.findOneBy).toHaveBeenCalledWith({ id: 3 });
    });

    it.each(['23505', 'SQLITE_CONSTRAINT_UNIQUE'])('turns the unique violation %s into the field that was taken', async (code) => {
      repository.insert.mockRejectedValue(uniqueViolation(code));
      repository.existsBy.mockImplementation(async (where: object) => 'usernameCanonical' in where);

      const promise = sut.create(newUser(), alongside);

      await expect(promise).rejects.toBeInstanceOf(UserAlreadyExistsError);
      await expect(promise).rejects.toHaveProperty('field', 'username');
    });

    it('blames the email when the winner of the race is no longer found', async () => {
      repository.insert.mockRejectedValue(uniqueViolation('23505'));

      await expect(sut.create(newUser(), alongside)).rejects.toHaveProperty('field', 'email');
    });

    it.each([
      ['another database error', uniqueViolation('23502')],
      ['an error that is not a query failure', Object.assign(new Error('unique'), { code: '23505' })],
    ])('lets %s through', async (_case, failure) => {
      repository.insert.mockRejectedValue(failure);

      await expect(sut.create(newUser(), alongside)).rejects.toBe(failure);
    });

    it('lets a failure of `alongside` undo the sign-up', async () => {
      const failure = new Error('outbox unavailable');
      repository.insert.mockResolvedValue({ identifiers: [{ id: 3 }] });
      repository.findOneBy.mockResolvedValue(Object.assign(new User(), { id: 3 }));

      await expect(sut.create(newUser(), jest.fn().mockRejectedValue(failure))).rejects.toBe(failure);
    });
  });

  describe('replacePasswordHash', () => {
    it('updates only the hash, and only while the old one is still stored', async () => {
      repository.update.mockResolvedValue({ affected: 1 });
      await sut.replacePasswordHash(3, '$argon2id$old', '$argon2id$new');

      expect(transactions.run).toHaveBeenCalledTimes(1);
      expect(repository.update).toHaveBeenCalledWith({ id: 3, hashedPassword: '$argon2id$old' }, { hashedPassword: '$argon2id$new' });
    });
  });
});
