//! Which process is which across restarts: a pid plus the process's start
//! time, read from `/proc/PID/stat`, so a recycled pid is never taken for a
//! process that ended (VMs and export daemons outlive the agent that
//! started them, and are found again by their pidfiles).

use serde::{Deserialize, Serialize};

/// Identity of a process: pid plus its start time in clock ticks since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    /// Process id.
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`.
    pub start_time: u64,
}

impl ProcId {
    /// Whether this very process still runs (same pid and start time, not a
    /// zombie).
    pub fn alive(self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start_time && !exited(state))
    }
}

/// Whether a `/proc/PID/stat` state means the process has ended (a zombie
/// or dead).
pub fn exited(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// Reads `/proc/PID/stat`: `Some((state, start_time))` if the process exists.
pub fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat (starttime) is the 20th after the command name.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_another_start_time_is_not() {
        let pid = std::process::id();
        let (state, start_time) = proc_stat(pid).expect("own stat");
        assert!(!exited(state));
        assert!(ProcId { pid, start_time }.alive());
        assert!(
            !ProcId {
                pid,
                start_time: start_time + 1
            }
            .alive()
        );
    }
}
