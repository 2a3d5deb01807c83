-- Issue 16: an event's timestamp is stored as given, and after_timestamp
-- reads a separate index time (adk_events.ts keeps it; adk_sessions.index_time
-- is the last event's, so the next one never goes below it). Event ids are
-- looked up on append (a repeated id is a retry; appends to one session are
-- serialised by its row lock, so the index need not be unique, and a prefix
-- keeps it under InnoDB's 3072-byte key limit). Memory entries keep the
-- event's content and are found by event id for deletion.
ALTER TABLE adk_sessions ADD COLUMN index_time DOUBLE NULL;
ALTER TABLE adk_events ADD COLUMN event_id VARCHAR(256) NULL;
CREATE INDEX adk_events_by_id ON adk_events (app_name, user_id, session_id, event_id(100));
ALTER TABLE memory_entries ADD COLUMN content LONGTEXT NULL;
CREATE INDEX memory_entries_by_event ON memory_entries (app_name, user_id, event_id);
