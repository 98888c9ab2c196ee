//! Hooks run as real processes: argument order, name order, abort on the
//! first failure, time limit, and which files count as hooks.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use mallee_node::hooks::{HookError, HookEvent, Hooks};

fn write_hook(dir: &Path, name: &str, body: &str, executable: bool) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write hook");
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test]
async fn hooks_run_in_name_order_with_eucalyptus_arguments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let hooks_dir = tmp.path().join("hooks");
    std::fs::create_dir(&hooks_dir).expect("mkdir");
    let log = tmp.path().join("log");
    let append = format!(
        "echo \"$(basename \"$0\") $1 $2 ${{3:-none}}\" >> {}",
        log.display()
    );
    write_hook(&hooks_dir, "20-second", &append, true);
    write_hook(&hooks_dir, "10-first", &append, true);
    write_hook(&hooks_dir, "30-not-executable", &append, false);
    write_hook(&hooks_dir, ".hidden", &append, true);
    write_hook(&hooks_dir, "40-backup~", &append, true);
    let hooks = Hooks::new(&hooks_dir, "/var/lib/mallee", Duration::from_secs(10));
    hooks
        .run(
            HookEvent::PreBoot,
            Some(Path::new("/var/lib/mallee/instances/i-1")),
        )
        .await
        .expect("hooks pass");
    hooks
        .run(HookEvent::PostInit, None)
        .await
        .expect("hooks pass");
    let lines = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        lines,
        "10-first pre-boot /var/lib/mallee /var/lib/mallee/instances/i-1\n\
         20-second pre-boot /var/lib/mallee /var/lib/mallee/instances/i-1\n\
         10-first post-init /var/lib/mallee none\n\
         20-second post-init /var/lib/mallee none\n"
    );
}

#[tokio::test]
async fn a_failing_hook_aborts_and_later_hooks_do_not_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let marker = tmp.path().join("ran");
    write_hook(
        tmp.path(),
        "10-refuse",
        "echo 'no boot for you' >&2; exit 3",
        true,
    );
    write_hook(
        tmp.path(),
        "20-after",
        &format!("touch {}", marker.display()),
        true,
    );
    let hooks = Hooks::new(tmp.path(), "/d", Duration::from_secs(10));
    match hooks.run(HookEvent::PreBoot, None).await {
        Err(HookError::Failed {
            hook,
            event,
            code,
            stderr,
        }) => {
            assert_eq!(
                (hook.as_str(), event, code),
                ("10-refuse", "pre-boot", Some(3))
            );
            assert_eq!(stderr, "no boot for you");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(!marker.exists(), "a hook after the failing one ran");
}

#[tokio::test]
async fn a_hook_past_its_time_limit_is_killed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_hook(tmp.path(), "slow", "sleep 30", true);
    let hooks = Hooks::new(tmp.path(), "/d", Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert!(matches!(
        hooks.run(HookEvent::PreAdopt, None).await,
        Err(HookError::TimedOut { .. })
    ));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the runner waited for the slow hook"
    );
}

#[tokio::test]
async fn no_directory_means_no_hooks() {
    let hooks = Hooks::new("/nonexistent/mallee/hooks", "/d", Duration::from_secs(1));
    assert!(hooks.list().expect("list").is_empty());
    hooks
        .run(HookEvent::PreClean, None)
        .await
        .expect("nothing to run");
}
