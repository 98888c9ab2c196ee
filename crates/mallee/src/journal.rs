//! Logging to the journal when systemd runs mallee: systemd sets
//! `JOURNAL_STREAM` to the device and inode of the stream it connects to
//! standard error, and the journal reads a `<N>` syslog priority at the
//! start of each line (`SyslogLevelPrefix=`, on by default). So, when
//! standard error is that stream, every line carries its level's priority
//! and no timestamp or colours (the journal records its own time), and
//! `journalctl -p warning -u mallee-node` shows the warnings alone.

use std::fmt;
use std::os::unix::fs::MetadataExt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

/// Whether standard error is the journal's stream (`JOURNAL_STREAM` names
/// its `device:inode`).
pub fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    matches_stream(&stream, stderr.dev(), stderr.ino())
}

fn matches_stream(stream: &str, dev: u64, ino: u64) -> bool {
    stream
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// The syslog priority of `level` (error 3, warning 4, info 6, debug 7).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The default line format, without time or colours, after `<N>`.
pub struct JournalFormat {
    inner: format::Format<format::Full, ()>,
}

impl JournalFormat {
    /// The format.
    pub fn new() -> Self {
        Self {
            inner: format::format().without_time().with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_recognised_by_device_and_inode() {
        assert!(matches_stream("64:1234", 64, 1234));
        assert!(!matches_stream("64:1234", 64, 1235));
        assert!(!matches_stream("garbage", 64, 1234));
    }

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::TRACE), 7);
    }
}
