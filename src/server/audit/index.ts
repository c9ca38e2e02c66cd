export { AuditConfigSchema, type AuditConfig } from './config.js';
export { AuditDb, csvCell, recordsToCsv, type DownloadScope, type TagMoveRow } from './db.js';
export { AuditLog, type AuditLogOptions, type RecordExtra, type SharedJournal } from './log.js';
export type { AuditAction, AuditRecord, AuditFilter, DownloadEventRow, DownloadRow, TopRow } from './types.js';
export { ID_SLOTS, nextAuditId, setAuditIdSlot } from './ids.js';
export { auditFilter } from './filter.js';
