//! The request context: what the caller knows about a request, as condition
//! keys (`aws:SourceIp`, `aws:username`, `ec2:ResourceTag/env`, …) with one
//! or several string values each. Key names are case-insensitive, as in
//! AWS; values are kept as given. The engine knows no list of keys: services
//! put in whatever they know, and a key they leave out is simply absent.

use std::collections::HashMap;

/// Condition keys and their values for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Lowercased key → the key as first given, and its values (never
    /// empty).
    keys: HashMap<Box<str>, (Box<str>, Vec<String>)>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to the single value `value`, replacing earlier values.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.insert_many(key, [value.into()])
    }

    /// Sets `key` to several values (a multivalued key such as
    /// `aws:TagKeys`); no values removes the key.
    pub fn insert_many<I, S>(&mut self, key: &str, values: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        let lower = key.to_ascii_lowercase().into_boxed_str();
        if values.is_empty() {
            self.keys.remove(&lower);
        } else {
            self.keys.insert(lower, (key.into(), values));
        }
        self
    }

    /// Builder form of [`Context::insert`].
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.keys.remove(key.to_ascii_lowercase().as_str());
    }

    /// The values of `key` (any case), if present.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.get_lowercase(&key.to_ascii_lowercase())
    }

    /// The values of a key already lowercased (the engine's path: policy
    /// keys are lowercased once, when the policy is parsed).
    pub(crate) fn get_lowercase(&self, key: &str) -> Option<&[String]> {
        self.keys.get(key).map(|(_, v)| v.as_slice())
    }

    /// Every key (as given) and its values, sorted by key, for messages
    /// and logs.
    pub fn entries(&self) -> Vec<(&str, &[String])> {
        let mut out: Vec<(&str, &[String])> = self
            .keys
            .values()
            .map(|(k, v)| (&**k, v.as_slice()))
            .collect();
        out.sort_by_key(|e| e.0.to_ascii_lowercase());
        out
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_values_do_not() {
        let mut c = Context::new();
        c.insert("aws:SourceIp", "10.0.0.1");
        c.insert_many("aws:TagKeys", ["Env", "team"]);
        assert_eq!(c.get("AWS:SOURCEIP"), Some(&["10.0.0.1".to_string()][..]));
        assert_eq!(c.get("aws:tagkeys").map(<[String]>::len), Some(2));
        assert_eq!(
            c.get("aws:tagkeys")
                .and_then(|v| v.first())
                .map(String::as_str),
            Some("Env")
        );
        c.insert("aws:sourceip", "10.0.0.2");
        assert_eq!(c.get("aws:SourceIp"), Some(&["10.0.0.2".to_string()][..]));
        c.insert_many("aws:TagKeys", Vec::<String>::new());
        assert_eq!(c.get("aws:TagKeys"), None);
        c.remove("AWS:SourceIP");
        assert!(c.is_empty());
    }

    #[test]
    fn entries_sorted() {
        let c = Context::new().with("b:x", "2").with("a:y", "1");
        let keys: Vec<&str> = c.entries().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a:y", "b:x"]);
        let c = Context::new().with("aws:SourceIp", "1");
        assert_eq!(c.entries()[0].0, "aws:SourceIp");
    }
}
