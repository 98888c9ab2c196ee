//! `MaxResults` / `NextToken` pagination over an ordered list. The token is
//! opaque to clients: the sort key of the last item returned, so a page is
//! stable even when items are added or removed between calls.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::query::{QueryError, QueryParams};

/// A page request read from the parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Most items to return; `None` means all.
    pub max_results: Option<usize>,
    /// Sort key after which to continue.
    pub after: Option<String>,
}

/// Errors in pagination parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// MaxResults outside the action's range.
    #[error(
        "Value ( {value} ) for parameter maxResults is invalid. Expecting a value between {min} and {max}."
    )]
    MaxResults {
        /// Given.
        value: i64,
        /// Lowest allowed.
        min: i64,
        /// Highest allowed.
        max: i64,
    },
    /// A NextToken this server did not issue.
    #[error("The token '{0}' is invalid.")]
    InvalidToken(String),
    /// Malformed parameter.
    #[error(transparent)]
    Query(#[from] QueryError),
}

const TOKEN_PREFIX: &str = "mallee1:";

impl PageRequest {
    /// Reads `MaxResults` (allowed `min..=max`) and `NextToken`.
    pub fn parse(params: &QueryParams, min: i64, max: i64) -> Result<Self, PageError> {
        let max_results = match params.int("MaxResults")? {
            None => None,
            Some(v) if (min..=max).contains(&v) => Some(v as usize),
            Some(value) => return Err(PageError::MaxResults { value, min, max }),
        };
        let after = match params.get("NextToken") {
            None | Some("") => None,
            Some(token) => {
                Some(decode_token(token).ok_or_else(|| PageError::InvalidToken(token.into()))?)
            }
        };
        Ok(Self { max_results, after })
    }

    /// Reads `MaxResults` (at least `min`; anything above `cap` returns
    /// `cap` items, as AWS does for DescribeVolumes) and `NextToken`.
    pub fn parse_capped(params: &QueryParams, min: i64, cap: usize) -> Result<Self, PageError> {
        let mut page = Self::parse(params, min, i64::MAX)?;
        page.max_results = page.max_results.map(|m| m.min(cap));
        Ok(page)
    }

    /// Applies the page to `items` (already sorted by `key`), returning the
    /// page and the token for the next one.
    pub fn apply<T>(&self, items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        let start = match &self.after {
            Some(after) => items.partition_point(|item| key(item).as_str() <= after.as_str()),
            None => 0,
        };
        let mut page: Vec<T> = items.into_iter().skip(start).collect();
        let Some(max) = self.max_results else {
            return (page, None);
        };
        if page.len() <= max {
            return (page, None);
        }
        page.truncate(max);
        let token = page.last().map(|last| encode_token(&key(last)));
        (page, token)
    }
}

fn encode_token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{key}"))
}

fn decode_token(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix(TOKEN_PREFIX)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::query::test_params as params;

    #[test]
    fn pages_through_everything_once() {
        let items: Vec<String> = (0..23).map(|i| format!("k{i:03}")).collect();
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut pairs = vec![("MaxResults", "5")];
            if let Some(t) = &token {
                pairs.push(("NextToken", t));
            }
            let req = PageRequest::parse(&params(&pairs), 5, 1000).expect("parse");
            let (page, next) = req.apply(items.clone(), |s| s.clone());
            assert!(page.len() <= 5);
            seen.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn capped_pages_take_any_size_above_the_minimum() {
        let big = PageRequest::parse_capped(&params(&[("MaxResults", "1000")]), 5, 500);
        assert_eq!(big.expect("capped").max_results, Some(500));
        let small = PageRequest::parse_capped(&params(&[("MaxResults", "7")]), 5, 500);
        assert_eq!(small.expect("kept").max_results, Some(7));
        assert!(matches!(
            PageRequest::parse_capped(&params(&[("MaxResults", "4")]), 5, 500),
            Err(PageError::MaxResults { .. })
        ));
    }

    #[test]
    fn bad_values() {
        assert!(matches!(
            PageRequest::parse(&params(&[("MaxResults", "4")]), 5, 1000),
            Err(PageError::MaxResults { .. })
        ));
        assert!(matches!(
            PageRequest::parse(&params(&[("MaxResults", "x")]), 5, 1000),
            Err(PageError::Query(_))
        ));
        assert!(matches!(
            PageRequest::parse(&params(&[("NextToken", "zzz")]), 5, 1000),
            Err(PageError::InvalidToken(_))
        ));
    }
}
