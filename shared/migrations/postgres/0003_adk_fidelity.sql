-- Issue 16: an event's timestamp is stored as given, and after_timestamp
-- reads a separate index time (adk_events.ts keeps it; adk_sessions.index_time
-- is the last event's, so the next one never goes below it). Event ids are
-- looked up on append (a repeated id is a retry). Memory entries keep the
-- event's content and are found by event id for deletion.
ALTER TABLE adk_sessions ADD COLUMN IF NOT EXISTS index_time DOUBLE PRECISION;
ALTER TABLE adk_events ADD COLUMN IF NOT EXISTS event_id VARCHAR(256);
CREATE INDEX IF NOT EXISTS adk_events_by_id ON adk_events (app_name, user_id, session_id, event_id);
ALTER TABLE memory_entries ADD COLUMN IF NOT EXISTS content TEXT;
CREATE INDEX IF NOT EXISTS memory_entries_by_event ON memory_entries (app_name, user_id, event_id);
