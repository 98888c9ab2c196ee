//! CORS, as S3 keeps and enforces it: a bucket's rules (its owner's to
//! read, replace and remove; checked as S3 checks them before anything is
//! stored), and which rule, if any, lets a browser's request from an
//! origin through: a preflight (`OPTIONS` with the method and headers it
//! will send) or the request itself. The first rule whose origin, method
//! and headers all match wins, as in S3. Preflights need no credentials,
//! so the rules are read without a requester.

use mallee_store::BucketSetting;
use serde::{Deserialize, Serialize};

use super::error::{ObjectError, Result};
use super::{Requester, bucket, owned_bucket};
use crate::Cloud;

/// Most rules a bucket may have (S3: 100).
pub const MAX_RULES: usize = 100;
/// The methods a rule may allow.
const METHODS: &[&str] = &["GET", "PUT", "HEAD", "POST", "DELETE"];

/// One CORS rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// Its id, if it has one.
    #[serde(default)]
    pub id: Option<String>,
    /// Origins it allows (at most one `*` each).
    pub allowed_origins: Vec<String>,
    /// Methods it allows (GET, PUT, HEAD, POST, DELETE).
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may name (at most one `*` each;
    /// compared without case).
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may show the page.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache the preflight's answer.
    #[serde(default)]
    pub max_age_seconds: Option<i32>,
}

impl CorsRule {
    /// Whether this rule lets `origin` send `method` with `headers`.
    fn allows(&self, origin: &str, method: &str, headers: &[String]) -> bool {
        self.allowed_origins.iter().any(|o| wildcard(o, origin))
            && self.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                let h = h.to_ascii_lowercase();
                self.allowed_headers
                    .iter()
                    .any(|allowed| wildcard(&allowed.to_ascii_lowercase(), &h))
            })
    }

    /// Whether it allows every origin (S3 then answers `*`).
    pub fn any_origin(&self) -> bool {
        self.allowed_origins.iter().any(|o| o == "*")
    }
}

/// Whether `value` matches `pattern`, in which one `*` stands for any
/// run of characters.
fn wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// Checks rules as S3 does, with S3's messages.
fn check(rules: &[CorsRule]) -> Result<()> {
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(ObjectError::MalformedXml);
    }
    for rule in rules {
        if rule.allowed_origins.is_empty() || rule.allowed_methods.is_empty() {
            return Err(ObjectError::MalformedXml);
        }
        if let Some(method) = rule
            .allowed_methods
            .iter()
            .find(|m| !METHODS.contains(&m.as_str()))
        {
            return Err(ObjectError::InvalidRequest(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )));
        }
        if let Some(origin) = rule
            .allowed_origins
            .iter()
            .find(|o| o.matches('*').count() > 1)
        {
            return Err(ObjectError::InvalidRequest(format!(
                "AllowedOrigin \"{origin}\" can not have more than one wildcard."
            )));
        }
        if let Some(header) = rule
            .allowed_headers
            .iter()
            .find(|h| h.matches('*').count() > 1)
        {
            return Err(ObjectError::InvalidRequest(format!(
                "AllowedHeader \"{header}\" can not have more than one wildcard."
            )));
        }
        if rule.max_age_seconds.is_some_and(|age| age < 0) {
            return Err(ObjectError::MalformedXml);
        }
    }
    Ok(())
}

/// Replaces a bucket's CORS rules, for its owner.
pub async fn put(
    cloud: &Cloud,
    requester: &Requester,
    bucket: &str,
    rules: Vec<CorsRule>,
) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    check(&rules)?;
    let json = serde_json::to_string(&rules).map_err(ObjectError::internal)?;
    cloud
        .store
        .set_bucket_setting(&bucket.name, BucketSetting::Cors, Some(&json))
        .await
        .map_err(ObjectError::from_write)
}

/// A bucket's CORS rules, for its owner; NoSuchCorsConfiguration when it
/// has none.
pub async fn get(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<Vec<CorsRule>> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    stored(&bucket)?.ok_or(ObjectError::NoSuchCorsConfiguration)
}

/// Removes a bucket's CORS rules (none is no error).
pub async fn delete(cloud: &Cloud, requester: &Requester, bucket: &str) -> Result<()> {
    let bucket = owned_bucket(cloud, requester, bucket).await?;
    cloud
        .store
        .set_bucket_setting(&bucket.name, BucketSetting::Cors, None)
        .await
        .map_err(ObjectError::from_write)
}

fn stored(bucket: &mallee_store::Bucket) -> Result<Option<Vec<CorsRule>>> {
    bucket
        .setting(BucketSetting::Cors)
        .map(|json| serde_json::from_str(json).map_err(ObjectError::internal))
        .transpose()
}

/// A browser's cross-origin request, as its headers describe it.
#[derive(Debug, Clone, Default)]
pub struct CorsRequest {
    /// `Origin`.
    pub origin: String,
    /// The method (a preflight's `Access-Control-Request-Method`).
    pub method: String,
    /// A preflight's `Access-Control-Request-Headers`, split.
    pub headers: Vec<String>,
}

/// Answers a preflight: the rule that allows it. NoSuchBucket for a
/// missing bucket; CorsForbidden when the bucket has no rules or none
/// matches.
pub async fn preflight(
    cloud: &Cloud,
    bucket_name: &str,
    request: &CorsRequest,
) -> Result<CorsRule> {
    let bucket = bucket(cloud, bucket_name).await?;
    let Some(rules) = stored(&bucket)? else {
        return Err(ObjectError::CorsNotEnabled);
    };
    rules
        .into_iter()
        .find(|rule| rule.allows(&request.origin, &request.method, &request.headers))
        .ok_or(ObjectError::CorsForbidden)
}

/// The rule that lets an actual request from `origin` with `method`
/// through, if the bucket exists and has one.
pub async fn matching(
    cloud: &Cloud,
    bucket_name: &str,
    origin: &str,
    method: &str,
) -> Result<Option<CorsRule>> {
    let Some(bucket) = cloud.store.bucket(bucket_name).await? else {
        return Ok(None);
    };
    Ok(stored(&bucket)?.and_then(|rules| {
        rules
            .into_iter()
            .find(|rule| rule.allows(origin, method, &[]))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::testing;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        CorsRule {
            allowed_origins: strings(origins),
            allowed_methods: strings(methods),
            allowed_headers: strings(headers),
            ..Default::default()
        }
    }

    #[test]
    fn wildcards_match_one_run() {
        assert!(wildcard("*", "https://a.example"));
        assert!(wildcard("https://*.example", "https://a.b.example"));
        assert!(!wildcard("https://*.example", "http://a.example"));
        assert!(!wildcard("https://*.example", "https://.exampl"));
        assert!(wildcard("x-amz-*", "x-amz-date"));
        assert!(!wildcard("a", "A"));
    }

    #[test]
    fn rules_are_checked_as_s3_does() {
        assert_eq!(check(&[]), Err(ObjectError::MalformedXml));
        assert!(check(&[rule(&["*"], &["GET", "PUT"], &["*"])]).is_ok());
        assert_eq!(
            check(&[rule(&["*"], &["PATCH"], &[])]),
            Err(ObjectError::InvalidRequest(
                "Found unsupported HTTP method in CORS config. Unsupported method is PATCH".into()
            ))
        );
        assert!(matches!(
            check(&[rule(&["https://*.*.example"], &["GET"], &[])]),
            Err(ObjectError::InvalidRequest(m)) if m.contains("more than one wildcard")
        ));
        let many = vec![rule(&["*"], &["GET"], &[]); MAX_RULES + 1];
        assert_eq!(check(&many), Err(ObjectError::MalformedXml));
    }

    #[tokio::test]
    async fn preflights_find_the_first_matching_rule() {
        let (cloud, alice, bob) = testing::with_bucket().await;
        let ask = |origin: &str, method: &str, headers: &[&str]| CorsRequest {
            origin: origin.into(),
            method: method.into(),
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
        };
        assert_eq!(
            preflight(&cloud, "b", &ask("https://app.example", "GET", &[])).await,
            Err(ObjectError::CorsNotEnabled)
        );
        assert_eq!(
            get(&cloud, &alice, "b").await,
            Err(ObjectError::NoSuchCorsConfiguration)
        );
        let rules = vec![
            CorsRule {
                id: Some("app".into()),
                max_age_seconds: Some(600),
                ..rule(
                    &["https://app.example"],
                    &["GET", "PUT"],
                    &["Content-*", "x-amz-date"],
                )
            },
            rule(&["*"], &["GET"], &[]),
        ];
        assert_eq!(
            put(&cloud, &bob, "b", rules.clone()).await,
            Err(ObjectError::AccessDenied)
        );
        put(&cloud, &alice, "b", rules.clone()).await.expect("put");
        assert_eq!(get(&cloud, &alice, "b").await, Ok(rules.clone()));
        assert_eq!(get(&cloud, &bob, "b").await, Err(ObjectError::AccessDenied));

        let found = preflight(
            &cloud,
            "b",
            &ask(
                "https://app.example",
                "PUT",
                &["content-type", "X-Amz-Date"],
            ),
        )
        .await;
        assert_eq!(found.map(|r| r.id), Ok(Some("app".into())));
        // Another origin gets the catch-all rule for GET, nothing for PUT.
        let found = preflight(&cloud, "b", &ask("https://other.example", "GET", &[])).await;
        assert!(found.is_ok_and(|r| r.any_origin()));
        assert_eq!(
            preflight(&cloud, "b", &ask("https://other.example", "PUT", &[])).await,
            Err(ObjectError::CorsForbidden)
        );
        // A header no rule allows.
        assert_eq!(
            preflight(
                &cloud,
                "b",
                &ask("https://app.example", "PUT", &["x-secret"])
            )
            .await,
            Err(ObjectError::CorsForbidden)
        );
        assert_eq!(
            preflight(&cloud, "nope", &ask("https://app.example", "GET", &[])).await,
            Err(ObjectError::NoSuchBucket)
        );
        assert!(
            matching(&cloud, "b", "https://app.example", "PUT")
                .await
                .expect("match")
                .is_some()
        );
        assert!(
            matching(&cloud, "b", "https://other.example", "DELETE")
                .await
                .expect("match")
                .is_none()
        );
        delete(&cloud, &alice, "b").await.expect("delete");
        assert_eq!(
            get(&cloud, &alice, "b").await,
            Err(ObjectError::NoSuchCorsConfiguration)
        );
    }
}
