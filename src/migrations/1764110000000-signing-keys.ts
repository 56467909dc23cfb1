import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { authName } from '../options/table-prefix';

/** Key pairs for EdDSA / ES256 access tokens (empty with HS256). */
export class SigningKeys1764110000000 implements MigrationInterface {
  name = 'SigningKeys1764110000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const timestamp = queryRunner.connection.driver.options.type === 'postgres' ? 'timestamptz' : 'datetime';
    await queryRunner.createTable(
      new Table({
        name: authName('signing_keys'),
        columns: [
          { name: 'kid', type: 'varchar', length: '64', isPrimary: true },
          { name: 'algorithm', type: 'varchar', length: '16' },
          { name: 'public_jwk', type: 'text' },
          { name: 'private_key', type: 'text' },
          { name: 'created_at', type: timestamp },
          { name: 'activates_at', type: timestamp },
          { name: 'revoked_at', type: timestamp, isNullable: true },
        ],
      }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropTable(authName('signing_keys'));
  }
}
