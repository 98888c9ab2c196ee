//! Where the image cache gets image parts: the controller's node object
//! endpoint (`GET {controller}{OBJECTS_PATH_PREFIX}{bucket}/{key}` over
//! mutual TLS), streamed straight into the cache's temporary file.

use std::io;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use mallee_node_api::{Artifact, OBJECTS_PATH_PREFIX};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::image_cache::{ArtifactSource, CacheError};

/// Characters left as they are in a path segment (RFC 3986 unreserved).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Fetches artifacts from the controller over HTTPS.
#[derive(Debug, Clone)]
pub struct HttpArtifactSource {
    base_url: String,
    http: reqwest::Client,
}

impl HttpArtifactSource {
    /// A source reading from the controller at `controller_url`
    /// (`https://host:port`) with a client from `http`
    /// ([`crate::controller_link::client`]).
    pub fn new(controller_url: &str, http: reqwest::ClientBuilder) -> Result<Self, reqwest::Error> {
        Ok(Self {
            base_url: controller_url.trim_end_matches('/').to_owned(),
            http: http.build()?,
        })
    }

    /// The URL of `artifact`: bucket and every `/`-separated key segment
    /// percent-encoded, so keys with spaces or `?` reach the right object.
    pub fn url(&self, artifact: &Artifact) -> String {
        let key: Vec<String> = artifact
            .key
            .split('/')
            .map(|seg| utf8_percent_encode(seg, SEGMENT).to_string())
            .collect();
        format!(
            "{}{OBJECTS_PATH_PREFIX}{}/{}",
            self.base_url,
            utf8_percent_encode(&artifact.bucket, SEGMENT),
            key.join("/")
        )
    }
}

#[async_trait]
impl ArtifactSource for HttpArtifactSource {
    async fn fetch(
        &self,
        artifact: &Artifact,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, CacheError> {
        let url = self.url(artifact);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| CacheError::fetch(artifact, format!("GET {url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(CacheError::fetch(
                artifact,
                format!("GET {url} answered {status}: {}", body.trim()),
            ));
        }
        Ok(response
            .bytes_stream()
            .map(|chunk| chunk.map_err(io::Error::other))
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_each_segment() {
        let source = HttpArtifactSource::new("https://127.0.0.1:8774/", reqwest::Client::builder())
            .expect("client");
        let artifact = Artifact {
            bucket: "images".into(),
            key: "debian 12/vm linuz?x=1#y".into(),
            size: 1,
            etag: "e".into(),
        };
        assert_eq!(
            source.url(&artifact),
            "https://127.0.0.1:8774/_mallee/node/objects/images/debian%2012/vm%20linuz%3Fx%3D1%23y"
        );
    }
}
