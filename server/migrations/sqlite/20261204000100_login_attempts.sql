-- Login attempts per key (an account, or a client address) in the current throttling window,
-- kept in the database so that every instance counts the same attempts: several instances on
-- one database do not multiply what an attacker may try.
CREATE TABLE login_attempts (
    key          TEXT PRIMARY KEY,
    attempts     INTEGER NOT NULL,
    window_start INTEGER NOT NULL
);
CREATE INDEX login_attempts_window ON login_attempts (window_start);
