//! Profile images for the deploy agent: a file on the controller (an
//! absolute path) or an object in the object store (`object:BUCKET/KEY`),
//! streamed, never held whole in memory.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use mallee_metal::EngineError;
use mallee_metal::engine::{ByteStream, ImageSource, file_stream};
use mallee_store::Store;

/// The prefix of object-store image locations.
pub const OBJECT_PREFIX: &str = "object:";

/// Splits `object:BUCKET/KEY` into its bucket and key.
pub fn object_location(location: &str) -> Option<(&str, &str)> {
    let rest = location.strip_prefix(OBJECT_PREFIX)?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// Opens profile images from files or the object store.
pub struct ControllerImages {
    store: Arc<dyn Store>,
    blobs: Arc<mallee_blobs::BlobStore>,
}

impl std::fmt::Debug for ControllerImages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerImages").finish_non_exhaustive()
    }
}

impl ControllerImages {
    /// Images from `store`'s objects (data in `blobs`) and files.
    pub fn new(store: Arc<dyn Store>, blobs: Arc<mallee_blobs::BlobStore>) -> Self {
        Self { store, blobs }
    }
}

fn io_error(context: String, e: impl std::fmt::Display) -> EngineError {
    EngineError::Io {
        context,
        source: std::io::Error::other(e.to_string()),
    }
}

#[async_trait]
impl ImageSource for ControllerImages {
    async fn open(&self, location: &str) -> Result<(u64, ByteStream), EngineError> {
        if location.starts_with(OBJECT_PREFIX) {
            let (bucket, key) = object_location(location).ok_or_else(|| {
                EngineError::NotFound(format!(
                    "bad image location {location:?} (want object:BUCKET/KEY)"
                ))
            })?;
            let object = self
                .store
                .object(bucket, key)
                .await
                .map_err(|e| io_error(format!("look up {location}"), e))?
                .ok_or_else(|| EngineError::NotFound(format!("no object {location}")))?;
            let segments: Vec<(String, u64)> = object
                .segments
                .iter()
                .map(|s| (s.blob_id.clone(), s.size))
                .collect();
            let reader = self
                .blobs
                .open_object(&segments, None)
                .await
                .map_err(|e| io_error(format!("read {location}"), e))?;
            return Ok((object.size, reader.into_stream().boxed()));
        }
        let path = std::path::Path::new(location);
        if !path.is_absolute() {
            return Err(EngineError::NotFound(format!(
                "bad image location {location:?} (want an absolute path or object:BUCKET/KEY)"
            )));
        }
        file_stream(path).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_locations() {
        assert_eq!(
            object_location("object:images/debian/disk.raw"),
            Some(("images", "debian/disk.raw"))
        );
        assert_eq!(object_location("object:images"), None);
        assert_eq!(object_location("object:/k"), None);
        assert_eq!(object_location("/srv/disk.raw"), None);
    }
}
