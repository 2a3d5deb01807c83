-- Agent sessions (shared::session::sql). One row per session, one row per
-- stored event; app- and user-scoped state in their own tables. Ids compare
-- byte for byte (utf8mb4_bin): `Alice` and `alice` are different users.
CREATE TABLE IF NOT EXISTS adk_sessions (
    app_name    VARCHAR(64)  NOT NULL,
    user_id     VARCHAR(256) NOT NULL,
    id          VARCHAR(256) NOT NULL,
    state       LONGTEXT     NOT NULL,
    seq         BIGINT       NOT NULL,
    create_time DOUBLE       NOT NULL,
    update_time DOUBLE       NOT NULL,
    PRIMARY KEY (app_name, user_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS adk_events (
    app_name   VARCHAR(64)  NOT NULL,
    user_id    VARCHAR(256) NOT NULL,
    session_id VARCHAR(256) NOT NULL,
    seq        BIGINT       NOT NULL,
    ts         DOUBLE       NOT NULL,
    event      LONGTEXT     NOT NULL,
    PRIMARY KEY (app_name, user_id, session_id, seq),
    KEY adk_events_by_time (app_name, user_id, session_id, ts)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS adk_app_states (
    app_name  VARCHAR(64)  NOT NULL,
    state_key VARCHAR(256) NOT NULL,
    value     LONGTEXT     NOT NULL,
    PRIMARY KEY (app_name, state_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS adk_user_states (
    app_name  VARCHAR(64)  NOT NULL,
    user_id   VARCHAR(256) NOT NULL,
    state_key VARCHAR(256) NOT NULL,
    value     LONGTEXT     NOT NULL,
    PRIMARY KEY (app_name, user_id, state_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
