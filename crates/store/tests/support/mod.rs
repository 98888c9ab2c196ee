//! A throw-away PostgreSQL server for the store's tests: Debian's
//! `postgresql` binaries, a cluster initialised in a temporary directory,
//! listening only on a unix socket there, stopped and removed when the
//! guard drops (on panic too). PostgreSQL refuses to run as root, so as
//! root the cluster belongs to, and runs as, the `postgres` user the
//! package creates. The package's own cluster (`postgresql@15-main`) is
//! neither needed nor touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// What to install when the server binaries are missing.
const PACKAGE: &str = "Debian's `postgresql` package (apt-get install postgresql; \
                       scripts/install-deps lists it under `test`)";

/// A running throw-away server; dropping it stops the server and deletes
/// its files.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The user the server runs as when the tests run as root.
    run_as: Option<&'static str>,
    next_db: AtomicU32,
}

impl PgServer {
    /// Initialises and starts a server. Panics, naming the package, when
    /// PostgreSQL is not installed: these tests never skip silently.
    pub fn start() -> Self {
        let bin = server_bin_dir().unwrap_or_else(|| {
            panic!("PostgreSQL's initdb/pg_ctl not found under /usr/lib/postgresql/*/bin: install {PACKAGE}")
        });
        let dir = tempfile::Builder::new()
            .prefix("mallee-pg-")
            .tempdir()
            .expect("temporary directory");
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let owner = format!("{user}:{user}");
            let chown = Command::new("chown")
                .arg(&owner)
                .arg(dir.path())
                .output()
                .expect("run chown");
            assert!(
                chown.status.success(),
                "chown {owner} {}: {} (the `postgres` user comes with {PACKAGE})",
                dir.path().display(),
                String::from_utf8_lossy(&chown.stderr)
            );
        }
        let server = Self {
            dir,
            bin,
            run_as,
            next_db: AtomicU32::new(0),
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "--auth=trust",
                "--username=mallee",
                "--locale=C",
                "--encoding=UTF8",
                "--no-sync",
            ],
        );
        let options = format!(
            "-k {} -c listen_addresses='' -c fsync=off -c full_page_writes=off \
             -c max_connections=100",
            path_str(server.dir.path())
        );
        let log = server.dir.path().join("server.log");
        let started = server.command(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if !started.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "pg_ctl start failed: {}{}\nserver log:\n{log}",
                String::from_utf8_lossy(&started.stdout),
                String::from_utf8_lossy(&started.stderr)
            );
        }
        server
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://mallee@localhost/{name}?host={}",
            path_str(self.dir.path())
        )
    }

    /// Creates a fresh, empty database and returns its URL.
    pub async fn create_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("mallee_test_{n}");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&self.url("postgres"))
            .await
            .expect("connect to the test server");
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .expect("create database");
        sqlx::Connection::close(conn).await.expect("disconnect");
        self.url(&name)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program, args);
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Immediate: the data is thrown away anyway. The directory goes
        // with `dir` once the server has stopped.
        let data = self.data_dir();
        let _stopped = self.command(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding initdb and pg_ctl.
fn server_bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}
