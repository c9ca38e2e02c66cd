export { AuditConfigSchema, noAuditIndex, type AuditConfig } from './config.js';
export { AuditDb, csvCell, recordsToCsv, type DownloadScope, type TagMoveRow } from './db.js';
export { AuditLog, type AuditLogOptions, type RecordExtra } from './log.js';
export { JournalApplier, readShared } from './journal.js';
export type { AuditAction, AuditRecord, AuditFilter, DownloadEventRow, DownloadRow, SharedJournal, TopRow } from './types.js';
export { ID_SLOTS, nextAuditId, setAuditIdSlot } from './ids.js';
export { auditFilter } from './filter.js';
