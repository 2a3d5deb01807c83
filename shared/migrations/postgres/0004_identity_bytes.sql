-- Issue 15: identities compare byte for byte. PostgreSQL does already:
-- VARCHAR keeps trailing spaces, and under a deterministic collation (every
-- database default is one) equality is byte equality, so `alice `, `Alice`
-- and a decomposed `é` are other ids. Nothing changes here but the record
-- of it (MySQL's 0004 changes the column types). Changing the columns'
-- collation was tried and rejected: it changes the result type of cached
-- plans, so during a rolling deploy the old revision's prepared statements
-- would fail (SQLSTATE 0A000) until it reconnected.
COMMENT ON COLUMN adk_sessions.user_id IS 'compared byte for byte (issue 15)';
COMMENT ON COLUMN adk_sessions.id IS 'compared byte for byte (issue 15)';
COMMENT ON COLUMN adk_user_states.state_key IS 'compared byte for byte (issue 15)';
COMMENT ON COLUMN adk_app_states.state_key IS 'compared byte for byte (issue 15)';
COMMENT ON COLUMN memory_entries.event_id IS 'compared byte for byte (issue 15)';
