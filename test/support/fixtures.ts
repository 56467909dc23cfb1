import type TestAgent from 'supertest/lib/agent';

let counter = 0;

export interface NewAccount {
  email: string;
  username: string;
  password: string;
  full_name?: string;
}

/** A fresh, valid sign-up body; `overrides` replace any field. */
export function newAccount(overrides: Partial<NewAccount> = {}): NewAccount {
  counter += 1;
  const id = `${process.pid}x${counter}`;
  return { email: `user${id}@example.com`, username: `user${id}`, password: `pass phrase ${id}!`, ...overrides };
}

export interface SignedUp {
  account: NewAccount;
  token: string;
  userId: number;
}

export async function signUp(http: () => TestAgent, overrides: Partial<NewAccount> = {}): Promise<SignedUp> {
  const account = newAccount(overrides);
  const res = await http().post('/api/v1/auth/signup').send(account).expect(201);
  return { account, token: res.body.access_token, userId: res.body.user.id };
}

/** Expects an RFC 9457 problem body with this status and detail. */
export function expectProblem(res: { status: number; body: unknown; headers: Record<string, string> }, status: number, detail?: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ type: 'about:blank', status, title: expect.any(String), detail: expect.any(String) });
  if (detail !== undefined) expect((res.body as { detail: string }).detail).toBe(detail);
}

/** Resolves once `check` holds, polling every 20 ms; fails naming `what` after `timeoutMs`. */
export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Holds the next call of `object[method]` until `release()`, to make a race happen in a set order:
 * `reached` resolves when the call arrives, and the real method then runs with the same arguments.
 */
export function holdNextCall(object: object, method: string): { reached: Promise<void>; release: () => void; restore: () => void } {
  const target = object as Record<string, (...args: unknown[]) => Promise<unknown>>;
  const original = target[method].bind(object);
  let arrive!: () => void;
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const spy = jest.spyOn(target, method).mockImplementationOnce(async (...args: unknown[]) => {
    arrive();
    await released;
    return original(...args);
  });
  return { reached, release, restore: () => spy.mockRestore() };
}
