-- Leadership leases (issue 18): the same table as SQLite's 0031. Expiry
-- is computed from the server's clock (clock_timestamp()), so the
-- controllers' clocks never decide who holds a lease.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    generation BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);
