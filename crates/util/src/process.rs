//! Running a program to completion: [`Cmd`] collects the program, its
//! arguments, extra environment, standard input and a time limit, runs it
//! and returns its standard output, or a [`ProcessError`] that names the
//! command line and carries the exit status and standard error.
//!
//! The child is killed when the future running it is dropped or its time
//! runs out, so an abandoned call leaves no process behind. Long-lived
//! children (daemons, VMs, streamed output) are spawned by their owners.

use std::ffi::{OsStr, OsString};
use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// Errors of a program run.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// The program ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to standard error, trimmed.
        stderr: String,
    },
    /// The program outlived its time limit and was killed.
    #[error("`{command}` did not finish within {} s", limit.as_secs_f64())]
    TimedOut {
        /// The command line.
        command: String,
        /// The limit.
        limit: Duration,
    },
    /// Feeding its standard input or collecting its output failed.
    #[error("`{command}`: {source}")]
    Io {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },
}

impl ProcessError {
    /// The command line (program and arguments, never the environment).
    pub fn command(&self) -> &str {
        match self {
            Self::Spawn { command, .. }
            | Self::Failed { command, .. }
            | Self::TimedOut { command, .. }
            | Self::Io { command, .. } => command,
        }
    }
}

/// A program to run to completion (see the module documentation).
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Cmd {
    /// `program` (looked up in `PATH` unless it is a path), no arguments,
    /// the caller's environment, empty standard input, no time limit.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: None,
        }
    }

    /// `argv[0]` as the program and the rest as its arguments; `None` when
    /// `argv` is empty.
    pub fn from_argv<S: AsRef<OsStr>>(argv: &[S]) -> Option<Self> {
        let (program, args) = argv.split_first()?;
        Some(Self::new(program).args(args))
    }

    /// One more argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More arguments.
    #[must_use]
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// An environment variable for the child (on top of the caller's). Not
    /// part of the command line errors show, so it may carry a secret.
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Bytes written to the child's standard input (which is closed after
    /// them).
    #[must_use]
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Kills the child and fails with [`ProcessError::TimedOut`] when it
    /// runs longer than `limit`.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The command line as errors show it: program and arguments joined by
    /// spaces.
    pub fn command_line(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the program; its standard output when it exits successfully.
    pub async fn output(&self) -> Result<Vec<u8>, ProcessError> {
        let out = self.finish().await?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(ProcessError::Failed {
                command: self.command_line(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    }

    /// [`Cmd::output`] as text (invalid UTF-8 replaced).
    pub async fn run(&self) -> Result<String, ProcessError> {
        let stdout = self.output().await?;
        Ok(String::from_utf8(stdout)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// Runs the program and tells whether it exited successfully; an error
    /// only when it could not run (or timed out).
    pub async fn succeeds(&self) -> Result<bool, ProcessError> {
        Ok(self.finish().await?.status.success())
    }

    /// Runs the program to its end (or its time limit).
    async fn finish(&self) -> Result<std::process::Output, ProcessError> {
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
            command: self.command_line(),
            source,
        })?;
        let pipe = child.stdin.take();
        let feed = async {
            let (Some(mut pipe), Some(bytes)) = (pipe, &self.stdin) else {
                return Ok(());
            };
            pipe.write_all(bytes).await?;
            pipe.shutdown().await
        };
        // Fed while the output is collected: a child that writes before it
        // has read all its input must not block on a full pipe.
        let run = async { tokio::join!(feed, child.wait_with_output()) };
        let (fed, out) = match self.timeout {
            Some(limit) => {
                tokio::time::timeout(limit, run)
                    .await
                    .map_err(|_| ProcessError::TimedOut {
                        command: self.command_line(),
                        limit,
                    })?
            }
            None => run.await,
        };
        let io = |source| ProcessError::Io {
            command: self.command_line(),
            source,
        };
        let out = out.map_err(io)?;
        match fed {
            // A program that succeeds without reading all its input chose to.
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe && out.status.success() => Err(io(e)),
            _ => Ok(out),
        }
    }
}

/// `program args…` with no input, returning standard output as text: the
/// common case of [`Cmd`].
pub async fn run<S: AsRef<OsStr>>(program: &str, args: &[S]) -> Result<String, ProcessError> {
    Cmd::new(program).args(args).run().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stdout_on_success() {
        assert_eq!(run("echo", &["a", "b"]).await.expect("echo"), "a b\n");
        let sh = |script: &str| Cmd::new("sh").args(["-c", script]);
        assert_eq!(
            sh("printf %s \"$SECRET\"")
                .env("SECRET", "pw")
                .run()
                .await
                .expect("env"),
            "pw"
        );
        assert_eq!(
            sh("tr a-z A-Z").stdin("hello").run().await.expect("stdin"),
            "HELLO"
        );
        assert!(sh("exit 0").succeeds().await.expect("runs"));
        assert!(!sh("exit 3").succeeds().await.expect("runs"));
    }

    #[tokio::test]
    async fn failures_carry_status_and_stderr() {
        let e = Cmd::new("sh")
            .args(["-c", "echo out; echo '  oops ' >&2; exit 3"])
            .env("SECRET", "pw")
            .run()
            .await
            .expect_err("fails");
        let ProcessError::Failed {
            command,
            status,
            stderr,
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(command, "sh -c echo out; echo '  oops ' >&2; exit 3");
        assert_eq!(status.code(), Some(3));
        assert_eq!(stderr, "oops");
        assert!(!e.to_string().contains("pw"));
        assert_eq!(
            e.to_string(),
            "`sh -c echo out; echo '  oops ' >&2; exit 3` failed (exit status: 3): oops"
        );

        let e = run("/nonexistent/program", &["x"])
            .await
            .expect_err("no program");
        assert!(matches!(e, ProcessError::Spawn { .. }), "{e:?}");
        assert_eq!(e.command(), "/nonexistent/program x");
        assert!(Cmd::from_argv::<&str>(&[]).is_none());
    }

    #[tokio::test]
    async fn time_limits_kill() {
        let started = std::time::Instant::now();
        let e = Cmd::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(200))
            .run()
            .await
            .expect_err("times out");
        assert!(matches!(e, ProcessError::TimedOut { .. }), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn large_input_and_output_do_not_deadlock() {
        // `cat` writes as it reads: both pipes fill unless they are served
        // together.
        let input = vec![b'x'; 4 << 20];
        let out = Cmd::new("cat")
            .stdin(input.clone())
            .output()
            .await
            .expect("cat");
        assert_eq!(out, input);
        // A program that ignores its input still succeeds.
        let out = Cmd::from_argv(&["true"])
            .expect("argv")
            .stdin(vec![0; 1 << 20])
            .output()
            .await
            .expect("true");
        assert!(out.is_empty());
    }
}
