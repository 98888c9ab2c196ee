//! Failed console sign-ins, counted per user: after a few in a row the
//! user's sign-ins are refused for a while, growing with each further
//! failure, so a password cannot be guessed at the speed the controller
//! can hash. A success clears the count.
//!
//! The count is kept by name as typed (account and user), whether or not
//! they exist, so a refusal does not tell a real user from a made-up one.
//! It lives in the controller's memory: a restart forgets it, and each of
//! several controllers counts its own attempts.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failures in a row allowed before sign-ins wait.
pub const FREE_FAILURES: u32 = 5;
/// The wait after the first failure past [`FREE_FAILURES`]; it doubles
/// with each further one.
const FIRST_WAIT: Duration = Duration::from_secs(30);
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Users tracked at most; past it the entries whose wait is over (or, if
/// none, the oldest) go, so made-up names cannot grow memory without bound.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// Until when sign-ins wait, if they do.
    fn locked_until(&self) -> Option<Instant> {
        let past = self.count.checked_sub(FREE_FAILURES)?;
        let wait = FIRST_WAIT
            .checked_mul(1u32.checked_shl(past).unwrap_or(u32::MAX))
            .map_or(MAX_WAIT, |w| w.min(MAX_WAIT));
        Some(self.last + wait)
    }
}

/// The failed sign-ins of every user, by (account as typed, user name).
#[derive(Debug, Default)]
pub struct SignInGuard {
    failures: Mutex<HashMap<(String, String), Failures>>,
}

impl SignInGuard {
    /// How long `user` of `account` must still wait before a sign-in is
    /// checked, or `None` when it may be checked now.
    pub fn wait(&self, account: &str, user: &str, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let until = failures.get(&key(account, user))?.locked_until()?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Records a wrong password (or unknown account or user).
    pub fn failed(&self, account: &str, user: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&key(account, user)) {
            failures.retain(|_, f| f.locked_until().is_some_and(|t| t > now));
            if failures.len() >= MAX_TRACKED
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone())
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(key(account, user)).or_insert(Failures {
            count: 0,
            last: now,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
    }

    /// Records a successful sign-in: the count starts again.
    pub fn succeeded(&self, account: &str, user: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures.remove(&key(account, user));
    }
}

/// The account as typed, folded to lower case so that retyping it in
/// another case does not start a fresh count; user names as typed.
fn key(account: &str, user: &str) -> (String, String) {
    (account.to_ascii_lowercase(), user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_are_free_then_the_wait_doubles_up_to_fifteen_minutes() {
        let guard = SignInGuard::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            guard.failed("acme", "alice", t0);
        }
        assert_eq!(guard.wait("acme", "alice", t0), None);
        guard.failed("acme", "alice", t0);
        assert_eq!(guard.wait("acme", "alice", t0), Some(FIRST_WAIT));
        assert_eq!(
            guard.wait("ACME", "alice", t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(20)),
            "account names as typed, case-insensitive"
        );
        assert_eq!(guard.wait("acme", "Alice", t0), None, "user names are not");
        assert_eq!(guard.wait("acme", "alice", t0 + FIRST_WAIT), None);
        guard.failed("acme", "alice", t0 + FIRST_WAIT);
        assert_eq!(
            guard.wait("acme", "alice", t0 + FIRST_WAIT),
            Some(FIRST_WAIT * 2)
        );
        for _ in 0..40 {
            guard.failed("acme", "alice", t0);
        }
        assert_eq!(guard.wait("acme", "alice", t0), Some(MAX_WAIT));
        guard.succeeded("acme", "alice");
        assert_eq!(guard.wait("acme", "alice", t0), None);
    }

    #[test]
    fn made_up_names_do_not_grow_without_bound() {
        let guard = SignInGuard::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED + 10 {
            guard.failed("acme", &format!("u{i}"), t0);
        }
        let tracked = guard.failures.lock().expect("lock").len();
        assert!(tracked <= MAX_TRACKED, "{tracked}");
        guard.failed("acme", "last", t0);
        assert!(
            guard
                .failures
                .lock()
                .expect("lock")
                .contains_key(&key("acme", "last"))
        );
    }
}
