import { MigrationInterface, QueryRunner, Table, TableColumn, TableIndex } from 'typeorm';
import { authName } from '../options/table-prefix';

/**
 * Roles on users, the audit log (`auth_events`), and on PostgreSQL the indexes that keep the admin's
 * prefix search on email and username fast (`varchar_pattern_ops`: `LIKE 'ada%'` under any collation).
 */
export class RolesAndAuditEvents1764140000000 implements MigrationInterface {
  name = 'RolesAndAuditEvents1764140000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const postgres = queryRunner.connection.driver.options.type === 'postgres';
    const timestamp = postgres ? 'timestamptz' : 'datetime';
    // Comma-separated role names (TypeORM's simple-array); roles are short names without commas.
    await queryRunner.addColumn(authName('users'), new TableColumn({ name: 'roles', type: 'text', default: "''" }));
    await queryRunner.createTable(
      new Table({
        name: authName('auth_events'),
        columns: [
          // bigserial on PostgreSQL; SQLite's INTEGER PRIMARY KEY is 64-bit already.
          { name: 'id', type: postgres ? 'bigint' : 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'type', type: 'varchar', length: '40' },
          { name: 'user_id', type: 'integer', isNullable: true },
          { name: 'session_id', type: 'varchar', length: '36', isNullable: true },
          { name: 'ip', type: 'varchar', length: '45', isNullable: true },
          { name: 'user_agent', type: 'varchar', length: '512', isNullable: true },
          { name: 'created_at', type: timestamp },
          { name: 'details', type: 'text', isNullable: true },
        ],
        indices: [
          new TableIndex({ name: authName('IDX_auth_events_user_id_id'), columnNames: ['user_id', 'id'] }),
          new TableIndex({ name: authName('IDX_auth_events_type_id'), columnNames: ['type', 'id'] }),
          new TableIndex({ name: authName('IDX_auth_events_created_at'), columnNames: ['created_at'] }),
        ],
      }),
    );
    if (postgres) {
      const users = authName('users');
      await queryRunner.query(`CREATE INDEX "${authName('IDX_users_email_prefix')}" ON "${users}" ("email" varchar_pattern_ops)`);
      await queryRunner.query(
        `CREATE INDEX "${authName('IDX_users_username_prefix')}" ON "${users}" ("username_canonical" varchar_pattern_ops)`,
      );
    }
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    if (queryRunner.connection.driver.options.type === 'postgres') {
      await queryRunner.query(`DROP INDEX "${authName('IDX_users_username_prefix')}"`);
      await queryRunner.query(`DROP INDEX "${authName('IDX_users_email_prefix')}"`);
    }
    await queryRunner.dropTable(authName('auth_events'));
    await queryRunner.dropColumn(authName('users'), 'roles');
  }
}
