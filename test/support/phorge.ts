/**
 * Phorge's autopatch 20150916.drydock.slotlocks.1.sql as Phorge runs it, with
 * `{$COLLATE_TEXT}` = utf8mb4_bin: the reference the package's table is held to.
 * Kept apart from src/ on purpose, so a test compares the package with Phorge, not
 * with itself.
 */
export function phorgeDdl(table = 'drydock_slotlock'): string {
  return `CREATE TABLE ${table} (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ownerPHID VARBINARY(64) NOT NULL,
  lockIndex BINARY(12) NOT NULL,
  lockKey LONGTEXT NOT NULL COLLATE utf8mb4_bin,
  UNIQUE KEY \`key_lock\` (lockIndex),
  KEY \`key_owner\` (ownerPHID)
) ENGINE=InnoDB, COLLATE utf8mb4_bin`;
}
