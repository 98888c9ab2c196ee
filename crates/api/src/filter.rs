//! The one filter engine every Describe action uses: `Filter.N.Name` with
//! `Filter.N.Value.M`, exact values with `*` and `?` wildcards (`\` escapes
//! them), `tag:Key` and `tag-key` / `tag-value`. Values of one filter are
//! OR-ed, filters are AND-ed, as AWS documents.

use super::query::{QueryError, QueryParams};

/// One `Filter.N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Filter name (`key-name`, `tag:env`, …).
    pub name: String,
    /// Accepted values, any of which may match.
    pub values: Vec<String>,
}

/// Reasons a filter list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A filter name the action does not support.
    #[error("The filter '{0}' is invalid")]
    UnknownName(String),
    /// The parameters of a filter are malformed.
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// Reads `Filter.N.Name` / `Filter.N.Value.M` from request parameters.
pub fn parse_filters(params: &QueryParams) -> Result<Vec<Filter>, QueryError> {
    params
        .structs("Filter")?
        .into_iter()
        .map(|f| {
            Ok(Filter {
                name: f.required_non_empty("Name")?.to_owned(),
                values: f.list("Value")?,
            })
        })
        .collect()
}

/// What a resource offers to filters.
pub trait Filterable {
    /// The values of a named (non-tag) filter attribute, or `None` when this
    /// resource type has no such filter.
    fn filter_values(&self, name: &str) -> Option<Vec<String>>;
    /// The resource's tags as (key, value).
    fn tags(&self) -> &[(String, String)] {
        &[]
    }
    /// Whether this resource type can be tagged, enabling tag filters.
    fn taggable(&self) -> bool {
        false
    }
}

/// Checks filter names against what the action supports, before any resource
/// is read, so an unknown filter fails even when nothing would be listed.
pub fn validate_names(
    filters: &[Filter],
    supported: &[&str],
    taggable: bool,
) -> Result<(), FilterError> {
    for filter in filters {
        let is_tag = filter.name.starts_with("tag:")
            || filter.name == "tag-key"
            || filter.name == "tag-value";
        if !(supported.contains(&filter.name.as_str()) || (taggable && is_tag)) {
            return Err(FilterError::UnknownName(filter.name.clone()));
        }
    }
    Ok(())
}

/// Whether `item` passes every filter.
pub fn matches(filters: &[Filter], item: &impl Filterable) -> bool {
    filters.iter().all(|filter| {
        let candidates: Vec<String> = if let Some(key) = filter.name.strip_prefix("tag:") {
            item.tags()
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect()
        } else if filter.name == "tag-key" {
            item.tags().iter().map(|(k, _)| k.clone()).collect()
        } else if filter.name == "tag-value" {
            item.tags().iter().map(|(_, v)| v.clone()).collect()
        } else {
            item.filter_values(&filter.name).unwrap_or_default()
        };
        filter
            .values
            .iter()
            .any(|pattern| candidates.iter().any(|c| wildcard_match(pattern, c)))
    })
}

/// Matches `text` against an AWS filter pattern: `*` any run, `?` one
/// character, `\*`, `\?` and `\\` literal. The store's matcher, so a filter
/// means the same whether the store or this layer applies it.
pub use mallee_store::pattern_matches as wildcard_match;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Item {
        name: String,
        tags: Vec<(String, String)>,
    }

    impl Filterable for Item {
        fn filter_values(&self, name: &str) -> Option<Vec<String>> {
            (name == "name").then(|| vec![self.name.clone()])
        }
        fn tags(&self) -> &[(String, String)] {
            &self.tags
        }
        fn taggable(&self) -> bool {
            true
        }
    }

    fn f(name: &str, values: &[&str]) -> Filter {
        Filter {
            name: name.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("web-*", "web-01"));
        assert!(wildcard_match("web-??", "web-01"));
        assert!(!wildcard_match("web-?", "web-01"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
        assert!(wildcard_match(r"a\*", "a*"));
        assert!(!wildcard_match(r"a\*", "ab"));
        assert!(wildcard_match(r"a\?", "a?"));
        assert!(!wildcard_match("abc", "ABC"));
    }

    #[test]
    fn filters_and_tags() {
        let item = Item {
            name: "web-1".into(),
            tags: vec![("env".into(), "prod".into())],
        };
        assert!(matches(&[f("name", &["db", "web-*"])], &item));
        assert!(matches(
            &[f("tag:env", &["prod"]), f("tag-key", &["e*"])],
            &item
        ));
        assert!(!matches(&[f("tag:env", &["dev"])], &item));
        assert!(!matches(&[f("tag:other", &["*"])], &item));
        assert!(matches(&[f("tag-value", &["p?od"])], &item));
        assert!(matches(&[], &item));
    }

    #[test]
    fn unknown_names_are_refused() {
        let filters = [f("bogus", &["x"])];
        assert_eq!(
            validate_names(&filters, &["name"], true),
            Err(FilterError::UnknownName("bogus".into()))
        );
        assert!(validate_names(&[f("tag:x", &["y"])], &["name"], true).is_ok());
        assert!(validate_names(&[f("tag:x", &["y"])], &["name"], false).is_err());
    }

    fn naive(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => naive(&p[1..], t) || (!t.is_empty() && naive(p, &t[1..])),
            (Some('?'), Some(_)) => naive(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => naive(&p[1..], &t[1..]),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn agrees_with_naive_matcher(p in "[ab*?]{0,8}", t in "[ab]{0,8}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(wildcard_match(&p, &t), naive(&pc, &tc));
        }
    }
}
