-- STS temporary credentials: an `ASIA…` key, its secret and session
-- token, whose identity it carries (a user's own session, or a role
-- session), until when.
CREATE TABLE sts_sessions (
    access_key_id     TEXT PRIMARY KEY NOT NULL,
    secret_access_key TEXT NOT NULL,
    session_token     TEXT NOT NULL,
    account_id        TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    user_name         TEXT NOT NULL,
    role_name         TEXT,
    session_name      TEXT NOT NULL,
    details           TEXT NOT NULL DEFAULT '{}',
    expires_at        INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE INDEX sts_sessions_by_expiry ON sts_sessions(expires_at);
