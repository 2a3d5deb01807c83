-- Searchable memory (shared::memory_store::sql): one row per remembered
-- event, one row per distinct word of it (the inverted index).
CREATE TABLE IF NOT EXISTS memory_entries (
    id         BIGSERIAL        PRIMARY KEY,
    app_name   VARCHAR(64)      NOT NULL,
    user_id    VARCHAR(256)     NOT NULL,
    session_id VARCHAR(256)     NOT NULL,
    event_id   VARCHAR(256)     NOT NULL,
    author     VARCHAR(256)     NOT NULL,
    ts         DOUBLE PRECISION NOT NULL,
    text       TEXT             NOT NULL
);

CREATE INDEX IF NOT EXISTS memory_entries_by_session ON memory_entries (app_name, user_id, session_id);
CREATE INDEX IF NOT EXISTS memory_entries_by_time ON memory_entries (app_name, user_id, ts);

CREATE TABLE IF NOT EXISTS memory_words (
    app_name VARCHAR(64)      NOT NULL,
    user_id  VARCHAR(256)     NOT NULL,
    word     VARCHAR(64)      NOT NULL,
    ts       DOUBLE PRECISION NOT NULL,
    entry_id BIGINT           NOT NULL REFERENCES memory_entries (id) ON DELETE CASCADE,
    PRIMARY KEY (app_name, user_id, word, entry_id)
);

CREATE INDEX IF NOT EXISTS memory_words_by_entry ON memory_words (entry_id);
