// Which tables are access tables (spec §4–§5, §8, §9.4). Their templates may only set the access
// flags of §4.2–§4.3; other tables (site tables reached through $|TABLE;arg|) may use any letter.

const ACCESS_TABLES = new Set([
  'PORT_ACCESS',
  'INTERNAL_IP',
  'FROM_ACCESS',
  'SEND_ACCESS',
  'ORIG_SEND_ACCESS',
  'MAIL_ACCESS',
  'ORIG_MAIL_ACCESS',
  'IP_ACCESS',
  'DEQUEUE_ACCESS',
  'LOG_ACTION',
]);

/** Output flags of the access tables: §4.2 (no argument), §4.3 (arguments) and DEQUEUE_ACCESS's $S. */
export const ACCESS_OUTPUT_FLAGS = 'YNFBHVZ!UJKI<>DTAXS';

export function isAccessTable(key: string): boolean {
  return ACCESS_TABLES.has(key) || key.startsWith('FILTER_');
}
