//! Building blocks shared by every signature version: percent-encoding and
//! decoding, query-string splitting, header lookup and normalisation, hashing,
//! HMAC, constant-time comparison and the date formats AWS uses.

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Hex SHA-256 of the empty string: the payload hash of a request without a body.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Everything but the RFC 3986 unreserved characters (`A-Z a-z 0-9 - _ . ~`).
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// [`STRICT`] with `/` kept as is.
const STRICT_KEEP_SLASH: &AsciiSet = &STRICT.remove(b'/');

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(bytes.as_ref()))
}

/// Percent-encodes `s` the way AWS signatures do: every byte except the RFC
/// 3986 unreserved characters becomes `%XY` (uppercase hex). `/` is kept when
/// `encode_slash` is false.
pub fn uri_encode(s: impl AsRef<[u8]>, encode_slash: bool) -> String {
    let set = if encode_slash {
        STRICT
    } else {
        STRICT_KEEP_SLASH
    };
    percent_encode(s.as_ref(), set).to_string()
}

/// Percent-decodes `s` into bytes (no `+` handling).
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    percent_decode_str(s).collect()
}

/// Decodes one query-string component: `+` is a space, then percent-decoding.
pub(crate) fn query_decode(s: &str) -> Vec<u8> {
    if s.contains('+') {
        percent_decode(&s.replace('+', " "))
    } else {
        percent_decode(s)
    }
}

/// One `name[=value]` item of a query string, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryParam {
    /// Decoded name bytes.
    pub name: Vec<u8>,
    /// Decoded value bytes (empty when there was no `=`).
    pub value: Vec<u8>,
    /// Whether the item had an `=` at all.
    pub has_value: bool,
}

impl QueryParam {
    /// The decoded name as text (lossy for invalid UTF-8).
    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// The decoded value as text (lossy for invalid UTF-8).
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

/// Splits a raw query string on `&` and decodes each item. Empty items are
/// skipped, as `application/x-www-form-urlencoded` parsers do.
pub(crate) fn parse_query(raw: &str) -> Vec<QueryParam> {
    raw.split('&')
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((n, v)) => QueryParam {
                name: query_decode(n),
                value: query_decode(v),
                has_value: true,
            },
            None => QueryParam {
                name: query_decode(item),
                value: Vec::new(),
                has_value: false,
            },
        })
        .collect()
}

/// The first value of the parameter named exactly `name`.
pub(crate) fn param<'p>(params: &'p [QueryParam], name: &str) -> Option<&'p QueryParam> {
    params.iter().find(|p| p.name == name.as_bytes())
}

/// All values of the header `name` (case-insensitive), in the order received.
pub(crate) fn header_values<'h>(
    headers: &'h [(String, String)],
    name: &str,
) -> impl Iterator<Item = &'h str> {
    let name = name.to_owned();
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
        .map(|(_, v)| v.as_str())
}

/// The first value of the header `name` (case-insensitive).
pub(crate) fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    header_values(headers, name).next()
}

/// Trims leading and trailing spaces and collapses runs of spaces into one, as
/// the SigV4 canonical headers require. Line folds (CR/LF followed by spaces or
/// tabs) count as spaces, the way HTTP parsers unfold them.
pub(crate) fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut pending_space = false;
    for c in value.chars() {
        if c == ' ' || c == '\r' || c == '\n' {
            pending_space = true;
        } else {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        }
    }
    out
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA1 of `data` under `key`.
pub(crate) fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Constant-time string equality (length is not hidden).
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Parses the ISO 8601 basic format of SigV4, `yyyyMMddTHHmmssZ`.
pub(crate) fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let day = u8::try_from(num(6..8)?).ok()?;
    let hour = u8::try_from(num(9..11)?).ok()?;
    let minute = u8::try_from(num(11..13)?).ok()?;
    let second = u8::try_from(num(13..15)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Formats a time in the ISO 8601 basic format of SigV4, `yyyyMMddTHHmmssZ`.
pub(crate) fn format_amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses an HTTP date: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), with
/// single-digit days and the `+0000` / `UTC` zone spellings some clients send,
/// or, failing that, the SigV4 basic format.
pub(crate) fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let imf = format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second]"
    );
    for zone in [" GMT", " UTC", " +0000", " Z"] {
        if let Some(rest) = s.strip_suffix(zone)
            && let Ok(t) = PrimitiveDateTime::parse(rest, &imf)
        {
            return Some(t.assume_utc());
        }
    }
    parse_amz_date(s)
}

/// Parses an ISO 8601 timestamp as the query APIs accept in `Timestamp` and
/// `Expires`: RFC 3339 (`2011-10-03T15:19:30Z`, fractions and offsets
/// allowed) or the same without a zone, taken as UTC.
pub(crate) fn parse_iso8601(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let local = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let local_frac =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");
    PrimitiveDateTime::parse(s, &local)
        .or_else(|_| PrimitiveDateTime::parse(s, &local_frac))
        .ok()
        .map(PrimitiveDateTime::assume_utc)
        .or_else(|| parse_amz_date(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_strict() {
        assert_eq!(uri_encode("a b/c~d", true), "a%20b%2Fc~d");
        assert_eq!(uri_encode("a b/c~d", false), "a%20b/c~d");
        assert_eq!(uri_encode("ሴ", true), "%E1%88%B4");
        assert_eq!(uri_encode("%2F", false), "%252F");
    }

    #[test]
    fn query_split() {
        let q = parse_query("a=1&b&c=&&d=x%20y+z");
        assert_eq!(q.len(), 4);
        assert!(!q[1].has_value);
        assert!(q[2].has_value);
        assert_eq!(q[3].value, b"x y z");
    }

    #[test]
    fn trimming() {
        assert_eq!(trim_all("  a   b  "), "a b");
        assert_eq!(
            trim_all("value1\r\n  value2\n   value3"),
            "value1 value2 value3"
        );
        assert_eq!(trim_all("a\tb"), "a\tb");
        assert_eq!(trim_all(""), "");
    }

    #[test]
    fn dates() {
        let t = parse_amz_date("20150830T123600Z").expect("parses");
        assert_eq!(format_amz_date(t), "20150830T123600Z");
        assert!(parse_amz_date("20150830T123600").is_none());
        assert!(parse_amz_date("2015083XT123600Z").is_none());
        assert!(parse_amz_date("20151330T123600Z").is_none());
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 +0000"), Some(t));
        assert_eq!(parse_iso8601("2015-08-30T12:36:00Z"), Some(t));
        assert_eq!(parse_iso8601("2015-08-30T12:36:00.000Z"), Some(t));
        assert_eq!(parse_iso8601("2015-08-30T12:36:00"), Some(t));
        assert_eq!(parse_iso8601("2015-08-30T14:36:00+02:00"), Some(t));
        assert!(parse_iso8601("yesterday").is_none());
    }
}
