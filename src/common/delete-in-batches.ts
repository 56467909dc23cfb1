import { EntityTarget, FindOptionsSelect, FindOptionsWhere, In } from 'typeorm';
import type { TransactionRunner } from './transaction-runner';

const DELETE_BATCH = 1000;

/**
 * Deletes the rows of `entity` matching `where`, at most `DELETE_BATCH` per transaction, so clearing a
 * large backlog never holds the table (or SQLite's single connection) for long. Returns how many went.
 */
export async function deleteInBatches<T extends { id: string | number }>(
  transactions: TransactionRunner,
  entity: EntityTarget<T>,
  where: FindOptionsWhere<T> | FindOptionsWhere<T>[],
): Promise<number> {
  let deleted = 0;
  for (;;) {
    const batch = await transactions.run(async (manager) => {
      const repository = manager.getRepository(entity);
      const rows = await repository.find({ select: { id: true } as FindOptionsSelect<T>, where, take: DELETE_BATCH });
      if (rows.length > 0) await repository.delete({ id: In(rows.map((row) => row.id)) } as FindOptionsWhere<T>);
      return rows.length;
    });
    deleted += batch;
    if (batch < DELETE_BATCH) return deleted;
  }
}
