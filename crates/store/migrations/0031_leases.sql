-- Leadership leases (issue 18): controllers sharing one database run
-- background work only while they hold the lease of that name. Every
-- acquisition by a holder that did not hold it bumps `generation`, the
-- fencing token background writes are checked against (src/lease.rs).
-- `expires_at` is in milliseconds of the database's own clock.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    generation INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    acquired_at INTEGER NOT NULL
);
