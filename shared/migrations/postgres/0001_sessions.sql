-- Agent sessions (shared::session::sql). One row per session, one row per
-- stored event; app- and user-scoped state in their own tables.
CREATE TABLE IF NOT EXISTS adk_sessions (
    app_name    VARCHAR(64)      NOT NULL,
    user_id     VARCHAR(256)     NOT NULL,
    id          VARCHAR(256)     NOT NULL,
    state       TEXT             NOT NULL,
    seq         BIGINT           NOT NULL,
    create_time DOUBLE PRECISION NOT NULL,
    update_time DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (app_name, user_id, id)
);

CREATE TABLE IF NOT EXISTS adk_events (
    app_name   VARCHAR(64)      NOT NULL,
    user_id    VARCHAR(256)     NOT NULL,
    session_id VARCHAR(256)     NOT NULL,
    seq        BIGINT           NOT NULL,
    ts         DOUBLE PRECISION NOT NULL,
    event      TEXT             NOT NULL,
    PRIMARY KEY (app_name, user_id, session_id, seq)
);

CREATE INDEX IF NOT EXISTS adk_events_by_time ON adk_events (app_name, user_id, session_id, ts);

CREATE TABLE IF NOT EXISTS adk_app_states (
    app_name  VARCHAR(64)  NOT NULL,
    state_key VARCHAR(256) NOT NULL,
    value     TEXT         NOT NULL,
    PRIMARY KEY (app_name, state_key)
);

CREATE TABLE IF NOT EXISTS adk_user_states (
    app_name  VARCHAR(64)  NOT NULL,
    user_id   VARCHAR(256) NOT NULL,
    state_key VARCHAR(256) NOT NULL,
    value     TEXT         NOT NULL,
    PRIMARY KEY (app_name, user_id, state_key)
);
