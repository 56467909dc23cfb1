import { domainToASCII, domainToUnicode } from 'node:url';
import { MigrationInterface, QueryRunner } from 'typeorm';
import { authName } from '../options/table-prefix';

/**
 * The canonical form as this migration was written (NFKC, lower-cased local part, IDNA domain in its
 * Unicode form): a copy, so that a later change to `normalizeEmail` cannot change what it did.
 */
function canonical(email: string): string | null {
  const folded = email.trim().normalize('NFKC');
  const at = folded.lastIndexOf('@');
  const ascii = at < 0 ? '' : domainToASCII(folded.slice(at + 1));
  return ascii ? `${folded.slice(0, at).toLowerCase().normalize('NFKC')}@${domainToUnicode(ascii)}` : null;
}

/**
 * Emails are now stored in their canonical form, so that look-alikes (fullwidth letters, `xn--` and
 * Unicode spellings of one domain) are one account. Rows stored before keep working when their
 * canonical form is free: they are rewritten to it. Only addresses with a non-ASCII character or an
 * `xn--` label can change (the others were already lower-cased). A row whose canonical form another account already has
 * is a look-alike of it and is left as it is; sign-in finds the other one.
 */
export class CanonicalEmails1764130000000 implements MigrationInterface {
  name = 'CanonicalEmails1764130000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const users = authName('users');
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    const bytes = postgres ? 'octet_length(email)' : 'length(CAST(email AS BLOB))';
    const param = (n: number) => (postgres ? `$${n}` : '?');
    const rows = (await queryRunner.query(`SELECT id, email FROM ${users} WHERE length(email) <> ${bytes} OR email LIKE '%xn--%' ORDER BY id`)) as {
      id: number;
      email: string;
    }[];
    for (const row of rows) {
      const email = canonical(row.email);
      if (email === null || email === row.email || [...email].length > 254) continue;
      const taken = (await queryRunner.query(`SELECT 1 FROM ${users} WHERE email = ${param(1)}`, [email])) as unknown[];
      if (taken.length === 0) await queryRunner.query(`UPDATE ${users} SET email = ${param(1)} WHERE id = ${param(2)}`, [email, row.id]);
    }
  }

  /** Nothing to undo: the canonical spellings are valid addresses under the earlier rules too. */
  async down(): Promise<void> {}
}
