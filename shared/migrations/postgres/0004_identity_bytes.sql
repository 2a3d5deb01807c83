-- Issue 15: identities compare byte for byte. PostgreSQL's deterministic
-- collations already compare equal only what is byte-for-byte equal, and
-- keep trailing spaces (VARCHAR does not pad); this pins the identity
-- columns to the "C" collation so that holds whatever collation the
-- database was created with, and their order and indexes are bytewise too.
-- (The same number as MySQL's 0004, which changes the column types.)
ALTER TABLE adk_sessions
    ALTER COLUMN app_name TYPE VARCHAR(64)  COLLATE "C",
    ALTER COLUMN user_id  TYPE VARCHAR(256) COLLATE "C",
    ALTER COLUMN id       TYPE VARCHAR(256) COLLATE "C";

ALTER TABLE adk_events
    ALTER COLUMN app_name   TYPE VARCHAR(64)  COLLATE "C",
    ALTER COLUMN user_id    TYPE VARCHAR(256) COLLATE "C",
    ALTER COLUMN session_id TYPE VARCHAR(256) COLLATE "C",
    ALTER COLUMN event_id   TYPE VARCHAR(256) COLLATE "C";

ALTER TABLE adk_app_states
    ALTER COLUMN app_name  TYPE VARCHAR(64)  COLLATE "C",
    ALTER COLUMN state_key TYPE VARCHAR(256) COLLATE "C";

ALTER TABLE adk_user_states
    ALTER COLUMN app_name  TYPE VARCHAR(64)  COLLATE "C",
    ALTER COLUMN user_id   TYPE VARCHAR(256) COLLATE "C",
    ALTER COLUMN state_key TYPE VARCHAR(256) COLLATE "C";

ALTER TABLE memory_entries
    ALTER COLUMN app_name   TYPE VARCHAR(64)  COLLATE "C",
    ALTER COLUMN user_id    TYPE VARCHAR(256) COLLATE "C",
    ALTER COLUMN session_id TYPE VARCHAR(256) COLLATE "C",
    ALTER COLUMN event_id   TYPE VARCHAR(256) COLLATE "C";

ALTER TABLE memory_words
    ALTER COLUMN app_name TYPE VARCHAR(64)  COLLATE "C",
    ALTER COLUMN user_id  TYPE VARCHAR(256) COLLATE "C",
    ALTER COLUMN word     TYPE VARCHAR(64)  COLLATE "C";
