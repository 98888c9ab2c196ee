//! Pieces every crash-safe file writer needs: a guard that removes a
//! temporary file unless the write completed, and a directory fsync so a
//! rename into it survives a power loss.

use std::io;
use std::path::{Path, PathBuf};

/// Removes a temporary file when dropped, unless disarmed: covers errors and
/// a write future dropped mid-stream.
#[derive(Debug)]
pub struct TempGuard {
    path: Option<PathBuf>,
}

impl TempGuard {
    /// Guards `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    /// Keeps the file: the write completed and it was renamed into place.
    pub fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take()
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove temporary file");
        }
    }
}

/// Fsyncs a directory, making renames and removals in it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
