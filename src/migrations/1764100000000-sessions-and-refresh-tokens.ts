import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';
import { authName } from '../options/table-prefix';

/** Sessions (one per signed-in device) and the refresh tokens each one was given. */
export class SessionsAndRefreshTokens1764100000000 implements MigrationInterface {
  name = 'SessionsAndRefreshTokens1764100000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const timestamp = queryRunner.connection.driver.options.type === 'postgres' ? 'timestamptz' : 'datetime';

    await queryRunner.createTable(
      new Table({
        name: authName('user_sessions'),
        columns: [
          { name: 'id', type: 'varchar', length: '36', isPrimary: true },
          { name: 'user_id', type: 'integer' },
          { name: 'created_at', type: timestamp },
          { name: 'last_used_at', type: timestamp },
          { name: 'expires_at', type: timestamp },
          { name: 'revoked_at', type: timestamp, isNullable: true },
          { name: 'user_agent', type: 'varchar', length: '512', isNullable: true },
          { name: 'ip', type: 'varchar', length: '45', isNullable: true },
        ],
        indices: [
          // The access check's and the session list's lookup: a user's sessions.
          new TableIndex({ name: authName('IDX_user_sessions_user_id'), columnNames: ['user_id'] }),
          // Pruning: sessions past their expiry.
          new TableIndex({ name: authName('IDX_user_sessions_expires_at'), columnNames: ['expires_at'] }),
        ],
        foreignKeys: [
          {
            name: authName('FK_user_sessions_user_id'),
            columnNames: ['user_id'],
            referencedTableName: authName('users'),
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          },
        ],
      }),
    );

    await queryRunner.createTable(
      new Table({
        name: authName('refresh_tokens'),
        columns: [
          { name: 'token_hash', type: 'varchar', length: '64', isPrimary: true },
          { name: 'session_id', type: 'varchar', length: '36' },
          { name: 'created_at', type: timestamp },
          { name: 'spent_at', type: timestamp, isNullable: true },
        ],
        indices: [new TableIndex({ name: authName('IDX_refresh_tokens_session_id'), columnNames: ['session_id'] })],
        foreignKeys: [
          {
            name: authName('FK_refresh_tokens_session_id'),
            columnNames: ['session_id'],
            referencedTableName: authName('user_sessions'),
            referencedColumnNames: ['id'],
            onDelete: 'CASCADE',
          },
        ],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable(authName('refresh_tokens'));
    await queryRunner.dropTable(authName('user_sessions'));
  }
}
