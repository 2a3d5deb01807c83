-- Issue 15: identities compare byte for byte. utf8mb4_bin (0001-0003) is a
-- PAD SPACE collation: `alice ` equalled `alice`, so a user id with a
-- trailing space read alice's sessions, state and memories. Binary columns
-- compare and index bytes on MariaDB and MySQL 8 alike (MariaDB's
-- utf8mb4_nopad_bin does not exist on MySQL, MySQL's utf8mb4_0900_bin not
-- on MariaDB). Lengths are in bytes now, the ids' own limit (256; app 64,
-- a memory word 64). No stored row changes: values that were distinct
-- stay distinct (the primary keys had already refused `alice ` beside
-- `alice`). The event-id index no longer needs a prefix: every key fits.
ALTER TABLE adk_sessions
    MODIFY app_name VARBINARY(64)  NOT NULL,
    MODIFY user_id  VARBINARY(256) NOT NULL,
    MODIFY id       VARBINARY(256) NOT NULL;

DROP INDEX adk_events_by_id ON adk_events;
ALTER TABLE adk_events
    MODIFY app_name   VARBINARY(64)  NOT NULL,
    MODIFY user_id    VARBINARY(256) NOT NULL,
    MODIFY session_id VARBINARY(256) NOT NULL,
    MODIFY event_id   VARBINARY(256) NULL;
CREATE INDEX adk_events_by_id ON adk_events (app_name, user_id, session_id, event_id);

ALTER TABLE adk_app_states
    MODIFY app_name  VARBINARY(64)  NOT NULL,
    MODIFY state_key VARBINARY(256) NOT NULL;

ALTER TABLE adk_user_states
    MODIFY app_name  VARBINARY(64)  NOT NULL,
    MODIFY user_id   VARBINARY(256) NOT NULL,
    MODIFY state_key VARBINARY(256) NOT NULL;

ALTER TABLE memory_entries
    MODIFY app_name   VARBINARY(64)  NOT NULL,
    MODIFY user_id    VARBINARY(256) NOT NULL,
    MODIFY session_id VARBINARY(256) NOT NULL,
    MODIFY event_id   VARBINARY(256) NOT NULL;

ALTER TABLE memory_words
    MODIFY app_name VARBINARY(64)  NOT NULL,
    MODIFY user_id  VARBINARY(256) NOT NULL,
    MODIFY word     VARBINARY(64)  NOT NULL;
