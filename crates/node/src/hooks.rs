//! Admin hooks, with Eucalyptus' nc-hooks semantics: every executable file
//! in the node's hooks directory runs, in name order, as
//! `HOOK EVENT DATA_DIR [INSTANCE_DIR [VOLUME_FILE]]`; a non-zero exit (or
//! a hook that outlives its time limit) aborts the step it guards.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The points at which hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    /// The agent is starting (no instance directory).
    PreInit,
    /// The agent has started (no instance directory).
    PostInit,
    /// An instance's VM is about to start.
    PreBoot,
    /// A running VM found at agent start is about to be adopted; a failure
    /// leaves the VM alone.
    PreAdopt,
    /// An instance's files are about to be removed.
    PreClean,
    /// A volume is about to be attached (instance directory, then the
    /// volume's description file); a failure refuses the attachment.
    PreAttach,
    /// A volume has been detached (same arguments); a failure is logged.
    PostDetach,
}

impl HookEvent {
    /// The event's name as hooks receive it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreInit => "pre-init",
            Self::PostInit => "post-init",
            Self::PreBoot => "pre-boot",
            Self::PreAdopt => "pre-adopt",
            Self::PreClean => "pre-clean",
            Self::PreAttach => "pre-attach",
            Self::PostDetach => "post-detach",
        }
    }
}

/// Why a step was aborted by its hooks.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// A hook exited non-zero.
    #[error("hook {hook} failed at {event} with exit code {code:?}: {stderr}")]
    Failed {
        /// The hook's file name.
        hook: String,
        /// The event.
        event: &'static str,
        /// Its exit code (`None` when killed by a signal).
        code: Option<i32>,
        /// The end of what it wrote to stderr.
        stderr: String,
    },
    /// A hook ran longer than the limit and was killed.
    #[error("hook {hook} timed out at {event} after {seconds} s")]
    TimedOut {
        /// The hook's file name.
        hook: String,
        /// The event.
        event: &'static str,
        /// The limit.
        seconds: u64,
    },
    /// The hooks directory or a hook could not be read or started.
    #[error("cannot run hook {hook}: {source}")]
    Io {
        /// The hook (or directory).
        hook: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// The hooks of one node.
#[derive(Debug, Clone)]
pub struct Hooks {
    dir: PathBuf,
    data_dir: PathBuf,
    time_limit: Duration,
}

/// What a hook may print to stderr that is kept for the error message.
const STDERR_TAIL: usize = 2048;

impl Hooks {
    /// Hooks in `dir`, told about the node's `data_dir`, each allowed
    /// `time_limit`. A missing directory means no hooks.
    pub fn new(
        dir: impl Into<PathBuf>,
        data_dir: impl Into<PathBuf>,
        time_limit: Duration,
    ) -> Self {
        Self {
            dir: dir.into(),
            data_dir: data_dir.into(),
            time_limit,
        }
    }

    /// The executable hooks, in name order. Hidden files and editor
    /// backups (`~`) are not hooks.
    pub fn list(&self) -> Result<Vec<PathBuf>, HookError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(HookError::Io {
                    hook: self.dir.display().to_string(),
                    source,
                });
            }
        };
        let mut hooks: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                !name.starts_with('.') && !name.ends_with('~') && is_executable_file(p)
            })
            .collect();
        hooks.sort();
        Ok(hooks)
    }

    /// Runs every hook for `event`, stopping at the first failure.
    pub async fn run(
        &self,
        event: HookEvent,
        instance_dir: Option<&Path>,
    ) -> Result<(), HookError> {
        self.run_with(event, instance_dir, None).await
    }

    /// [`Hooks::run`] with one more argument after the instance directory
    /// (the volume description of `pre-attach` and `post-detach`).
    pub async fn run_with(
        &self,
        event: HookEvent,
        instance_dir: Option<&Path>,
        extra: Option<&Path>,
    ) -> Result<(), HookError> {
        for hook in self.list()? {
            self.run_one(&hook, event, instance_dir, extra).await?;
        }
        Ok(())
    }

    async fn run_one(
        &self,
        hook: &Path,
        event: HookEvent,
        instance_dir: Option<&Path>,
        extra: Option<&Path>,
    ) -> Result<(), HookError> {
        let name = hook
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let mut command = tokio::process::Command::new(hook);
        command.arg(event.as_str()).arg(&self.data_dir);
        if let Some(dir) = instance_dir {
            command.arg(dir);
            if let Some(extra) = extra {
                command.arg(extra);
            }
        }
        command
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let child = spawn_when_not_busy(&mut command)
            .await
            .map_err(|source| HookError::Io {
                hook: name.clone(),
                source,
            })?;
        let output = match tokio::time::timeout(self.time_limit, child.wait_with_output()).await {
            Ok(result) => result.map_err(|source| HookError::Io {
                hook: name.clone(),
                source,
            })?,
            // Dropping the future kills the child (kill_on_drop).
            Err(_) => {
                return Err(HookError::TimedOut {
                    hook: name,
                    event: event.as_str(),
                    seconds: self.time_limit.as_secs(),
                });
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !stdout.trim().is_empty() {
            tracing::info!(hook = name, event = event.as_str(), output = %stdout.trim(), "hook output");
        }
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let start = stderr.len().saturating_sub(STDERR_TAIL);
        let tail = stderr.get(start..).unwrap_or_default().trim().to_owned();
        Err(HookError::Failed {
            hook: name,
            event: event.as_str(),
            code: output.status.code(),
            stderr: tail,
        })
    }
}

fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Spawns `command`, trying again briefly while its file is busy
/// (ETXTBSY): a hook being saved as it is started (an admin's editor), or
/// a descriptor of it inherited by a process forked elsewhere in the node
/// at that moment, makes the kernel refuse to execute it for an instant.
async fn spawn_when_not_busy(
    command: &mut tokio::process::Command,
) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}
