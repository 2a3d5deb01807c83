-- Searchable memory (shared::memory_store::sql): one row per remembered
-- event, one row per distinct word of it (the inverted index).
CREATE TABLE IF NOT EXISTS memory_entries (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    app_name   VARCHAR(64)  NOT NULL,
    user_id    VARCHAR(256) NOT NULL,
    session_id VARCHAR(256) NOT NULL,
    event_id   VARCHAR(256) NOT NULL,
    author     VARCHAR(256) NOT NULL,
    ts         DOUBLE       NOT NULL,
    text       LONGTEXT     NOT NULL,
    KEY memory_entries_by_session (app_name, user_id, session_id),
    KEY memory_entries_by_time (app_name, user_id, ts)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS memory_words (
    app_name VARCHAR(64)  NOT NULL,
    user_id  VARCHAR(256) NOT NULL,
    word     VARCHAR(64)  NOT NULL,
    ts       DOUBLE       NOT NULL,
    entry_id BIGINT       NOT NULL,
    PRIMARY KEY (app_name, user_id, word, entry_id),
    KEY memory_words_by_entry (entry_id),
    CONSTRAINT memory_words_entry FOREIGN KEY (entry_id) REFERENCES memory_entries (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
