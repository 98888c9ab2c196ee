// Included (`include!`) by this crate's QEMU machine test (installer.rs):
// where the repository and its built metal images are, profiles of image
// files, and reading a machine's console.

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds (or finds up to date) the deploy agent, the installer and the
/// installed images.
fn images() -> PathBuf {
    let out = repo().join("target/metal-images");
    let status = std::process::Command::new(repo().join("guest/metal/build.sh"))
        .arg(&out)
        .arg(repo().join("target/guest-images"))
        .status()
        .expect("run guest/metal/build.sh");
    assert!(status.success(), "guest/metal/build.sh failed");
    out
}

/// An image profile of the file at `path`, with its size and SHA-256.
#[allow(dead_code)]
fn profile(name: &str, path: &Path) -> Profile {
    let data = std::fs::read(path).expect("read image");
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&data))
    };
    Profile::image(name, &path.display().to_string(), data.len() as u64, &sha)
}

/// The machine's console log so far.
#[allow(dead_code)]
fn console(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name).join("console.log")).unwrap_or_default()
}

/// The machine's console log once it contains `line` (or after a minute):
/// a guest prints what it did after the request that changed its state, so
/// the log can lag the state by a moment on a loaded machine.
#[allow(dead_code)]
async fn console_once_it_has(dir: &Path, name: &str, line: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = console(dir, name);
        if log.contains(line) || tokio::time::Instant::now() >= deadline {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
