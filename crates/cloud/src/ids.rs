//! Identifiers in AWS's formats: resource ids with 17 hex digits, 12-digit
//! account numbers, `AKIA…` access keys and their secrets.

use rand::Rng;
use rand::distributions::{Distribution, Uniform};

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn pick(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    let index = Uniform::from(0..alphabet.len());
    (0..len)
        .map(|_| char::from(alphabet[index.sample(&mut rng)]))
        .collect()
}

/// A resource id: `prefix-` and 17 lowercase hex digits (`key-0a1b…`).
pub fn resource_id(prefix: &str) -> String {
    format!("{prefix}-{}", pick(b"0123456789abcdef", 17))
}

/// A 12-digit account number that does not start with 0.
pub fn account_id() -> String {
    let first = rand::thread_rng().gen_range(1..=9u8);
    format!("{first}{}", pick(b"0123456789", 11))
}

/// An access key id (`AKIA` and 16 base-32 characters).
pub fn access_key_id() -> String {
    format!("AKIA{}", pick(BASE32, 16))
}

/// A temporary access key id (`ASIA` and 16 base-32 characters).
pub fn session_key_id() -> String {
    format!("ASIA{}", pick(BASE32, 16))
}

/// An STS session token: 64 random bytes' worth of the secret alphabet.
pub fn session_token() -> String {
    pick(SECRET_CHARS, 172)
}

/// A 40-character secret access key.
pub fn secret_access_key() -> String {
    pick(SECRET_CHARS, 40)
}

/// A user id (`AIDA` and 17 base-32 characters).
pub fn user_id() -> String {
    format!("AIDA{}", pick(BASE32, 17))
}

/// The current time in milliseconds since the epoch.
pub fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Formats a timestamp as EC2 does (`2024-01-02T03:04:05.000Z`).
pub fn iso8601(millis: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let id = resource_id("key");
        assert_eq!(id.len(), 4 + 17);
        assert!(
            id[4..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let account = account_id();
        assert_eq!(account.len(), 12);
        assert!(!account.starts_with('0') && account.bytes().all(|b| b.is_ascii_digit()));
        assert!(access_key_id().starts_with("AKIA") && access_key_id().len() == 20);
        assert_eq!(secret_access_key().len(), 40);
        assert_ne!(resource_id("i"), resource_id("i"));
    }
}
