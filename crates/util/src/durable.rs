//! Pieces every crash-safe file writer needs: a guard that removes a
//! temporary file unless the write completed, a directory fsync so a
//! rename into it survives a power loss, and [`write_atomic`], which puts
//! the two together for a whole small file.

use std::io::{self, Write};
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

/// The temporary file [`write_atomic`] writes before renaming it over
/// `path`: `.NAME.tmp` beside it (hidden, so directory scans that skip dot
/// files never take it for a record).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces the file at `path` with `bytes` so that after a crash at any
/// point it holds either the old content or the new one: writes
/// [`temp_path`], fsyncs it, renames it over `path` and fsyncs the
/// directory. The temporary file is removed if any step fails. Writers of
/// one path must take turns (they share the temporary file).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut guard = TempGuard::new(tmp.clone());
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    guard.disarm();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    sync_dir(dir)
}

/// [`write_atomic`] on a blocking thread, for async callers.
pub async fn write_atomic_async(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (path, bytes) = (path.to_owned(), bytes.to_owned());
    tokio::task::spawn_blocking(move || write_atomic(&path, &bytes))
        .await
        .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ports.json");
        write_atomic(&path, b"first").expect("write");
        write_atomic(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        assert_eq!(temp_path(&path), dir.path().join(".ports.json.tmp"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["ports.json"]);
    }

    #[test]
    fn a_failed_write_removes_its_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Renaming a file over a directory fails after the temporary file
        // was written.
        let path = dir.path().join("taken");
        std::fs::create_dir_all(path.join("inside")).expect("mkdir");
        assert!(write_atomic(&path, b"data").is_err());
        assert!(!temp_path(&path).exists());
        assert!(path.join("inside").is_dir());
    }

    #[tokio::test]
    async fn async_callers_get_the_same_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hosts");
        write_atomic_async(&path, b"a,b,c\n").await.expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"a,b,c\n");
        assert!(
            write_atomic_async(&dir.path().join("no/such/dir/f"), b"x")
                .await
                .is_err()
        );
    }
}
