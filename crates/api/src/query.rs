//! AWS Query protocol parameters: the flat `Name=value` pairs of a query
//! string or form body, with `.N` member lists and nested structures
//! (`Filter.1.Name`, `Filter.1.Value.1`, `TagSpecification.1.Tag.1.Key`).

use std::collections::BTreeMap;

/// Errors reading parameters; they become `MissingParameter` and
/// `InvalidParameterValue` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The request must contain the parameter {0}
    #[error("The request must contain the parameter {0}")]
    Missing(String),
    /// A value is not of the expected form.
    #[error("Value ({value}) for parameter {name} is invalid. {reason}")]
    Invalid {
        /// Parameter name.
        name: String,
        /// Value given.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// A parameter appears twice with different values.
    #[error("The parameter {0} is specified more than once")]
    Repeated(String),
}

/// Decoded parameters of one request (or one nested structure of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    prefix: String,
    values: BTreeMap<String, String>,
}

impl QueryParams {
    /// Builds parameters from decoded pairs; a name given twice must carry
    /// the same value.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, QueryError> {
        let mut values = BTreeMap::new();
        for (name, value) in pairs {
            if let Some(previous) = values.insert(name.clone(), value.clone())
                && previous != value
            {
                return Err(QueryError::Repeated(name));
            }
        }
        Ok(Self {
            prefix: String::new(),
            values,
        })
    }

    fn full_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A parameter that must be present.
    pub fn required(&self, name: &str) -> Result<&str, QueryError> {
        self.get(name)
            .ok_or_else(|| QueryError::Missing(self.full_name(name)))
    }

    /// A parameter that must be present and not empty.
    pub fn required_non_empty(&self, name: &str) -> Result<&str, QueryError> {
        match self.get(name) {
            Some("") | None => Err(QueryError::Missing(self.full_name(name))),
            Some(v) => Ok(v),
        }
    }

    /// A boolean (`true`/`false`, any case).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, QueryError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(self.invalid(name, v, "Expected a boolean (true or false).")),
        }
    }

    /// An integer.
    pub fn int(&self, name: &str) -> Result<Option<i64>, QueryError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(name, v, "Expected an integer.")),
        }
    }

    /// An error saying `name`'s `value` is invalid.
    pub fn invalid(&self, name: &str, value: &str, reason: &str) -> QueryError {
        QueryError::Invalid {
            name: self.full_name(name),
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Member indices N present under `name.N…`, in numeric order.
    fn indices(&self, name: &str) -> Result<Vec<u32>, QueryError> {
        let dotted = format!("{name}.");
        let mut indices = Vec::new();
        for key in self
            .values
            .range(dotted.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&dotted))
        {
            let rest = &key[dotted.len()..];
            let index = rest.split('.').next().unwrap_or_default();
            match index.parse::<u32>() {
                Ok(n) if n >= 1 => indices.push(n),
                _ => {
                    return Err(self.invalid(
                        key,
                        self.get(key).unwrap_or_default(),
                        "Expected a list index of 1 or more.",
                    ));
                }
            }
        }
        indices.sort_unstable();
        indices.dedup();
        Ok(indices)
    }

    /// A list of scalars `name.1`, `name.2`, … in index order.
    pub fn list(&self, name: &str) -> Result<Vec<String>, QueryError> {
        Ok(self
            .indices(name)?
            .into_iter()
            .filter_map(|i| self.get(&format!("{name}.{i}")).map(str::to_owned))
            .collect())
    }

    /// A list of structures `name.N.Field…`, each as its own parameters.
    pub fn structs(&self, name: &str) -> Result<Vec<QueryParams>, QueryError> {
        self.indices(name)?
            .into_iter()
            .map(|i| {
                let member = format!("{name}.{i}.");
                let values: BTreeMap<_, _> = self
                    .values
                    .range(member.clone()..)
                    .take_while(|(k, _)| k.starts_with(&member))
                    .map(|(k, v)| (k[member.len()..].to_owned(), v.clone()))
                    .collect();
                Ok(QueryParams {
                    prefix: format!("{}{member}", self.prefix),
                    values,
                })
            })
            .collect()
    }

    /// The structure `name.Field…` as its own parameters (empty when
    /// none of its fields is given).
    pub fn member(&self, name: &str) -> QueryParams {
        let dotted = format!("{name}.");
        QueryParams {
            prefix: format!("{}{dotted}", self.prefix),
            values: self
                .values
                .range(dotted.clone()..)
                .take_while(|(k, _)| k.starts_with(&dotted))
                .map(|(k, v)| (k[dotted.len()..].to_owned(), v.clone()))
                .collect(),
        }
    }

    /// Whether no parameter is given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every parameter name, for rejecting unknown ones.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

/// Parameters from literal pairs, for the crate's unit tests.
#[cfg(test)]
pub(crate) fn test_params(pairs: &[(&str, &str)]) -> QueryParams {
    QueryParams::from_pairs(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
    .expect("params")
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_params as params;

    #[test]
    fn lists_are_ordered_numerically() {
        let p = params(&[("KeyName.10", "j"), ("KeyName.2", "b"), ("KeyName.1", "a")]);
        assert_eq!(p.list("KeyName").expect("list"), ["a", "b", "j"]);
        assert!(p.list("Other").expect("empty").is_empty());
    }

    #[test]
    fn nested_structures() {
        let p = params(&[
            ("Filter.1.Name", "tag:env"),
            ("Filter.1.Value.1", "prod"),
            ("Filter.1.Value.2", "dev"),
            ("Filter.2.Name", "key-name"),
            ("TagSpecification.1.Tag.1.Key", "k"),
        ]);
        let filters = p.structs("Filter").expect("filters");
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].get("Name"), Some("tag:env"));
        assert_eq!(filters[0].list("Value").expect("values"), ["prod", "dev"]);
        let specs = p.structs("TagSpecification").expect("specs");
        let tags = specs[0].structs("Tag").expect("tags");
        assert_eq!(tags[0].get("Key"), Some("k"));
        assert_eq!(
            tags[0].required("Value"),
            Err(QueryError::Missing("TagSpecification.1.Tag.1.Value".into()))
        );
    }

    #[test]
    fn bad_index_and_repeats_are_errors() {
        assert!(params(&[("KeyName.x", "a")]).list("KeyName").is_err());
        assert!(params(&[("KeyName.0", "a")]).list("KeyName").is_err());
        let repeated = QueryParams::from_pairs([
            ("A".to_string(), "1".to_string()),
            ("A".to_string(), "2".to_string()),
        ]);
        assert_eq!(repeated, Err(QueryError::Repeated("A".into())));
    }

    #[test]
    fn typed_values() {
        let p = params(&[("DryRun", "TRUE"), ("MaxResults", "5"), ("Bad", "yes")]);
        assert_eq!(p.bool("DryRun"), Ok(Some(true)));
        assert_eq!(p.int("MaxResults"), Ok(Some(5)));
        assert!(p.bool("Bad").is_err());
        assert!(p.int("Bad").is_err());
    }
}
