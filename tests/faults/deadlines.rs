//! Session deadlines against an SSH child that chatters or trickles (a
//! fake SSH client program), and the status file's checks.

use crate::util::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `client --once 64` (or with `extra` options) through a fake SSH
/// client program `script` (a shell script named dbclient; it ignores its
/// arguments). Real: the client, its watchdog and the child's pipes; fake:
/// the SSH client, which stands in for a server or child that misbehaves.
fn client_with_fake_ssh(name: &str, script: &str, extra: &[&str], limit: Duration) -> Run {
    let dir = TempDir::new(name);
    run_limit(&mut fake_ssh_client(&dir, script, extra), limit)
}

/// The client command of `client_with_fake_ssh`, files in `dir` (status
/// file `run/status`).
fn fake_ssh_client(dir: &TempDir, script: &str, extra: &[&str]) -> Command {
    use std::os::unix::fs::PermissionsExt;
    let fake = dir.join("dbclient");
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = dropbear_key(dir, "id", "ed25519");
    let hk = dropbear_key(dir, "hk", "ed25519").type_and_key();
    let mut c = Command::new(bin());
    c.args([
        "client",
        "--ssh",
        fake.to_str().unwrap(),
        "-i",
        &key.private_str(),
    ])
    .args(["--host-key", &hk, "-p", "1"])
    .args(["--seed-dir", &dir.s("seed")])
    .args(extra)
    .stdin(Stdio::null());
    if !extra.contains(&"--status-file") {
        c.args(["--status-file", &dir.s("run/status")]);
    }
    c.arg("127.0.0.1");
    if extra.contains(&"stream") {
        // A stream lasts past CRNG readiness only on a kernel before 5.18.
        c = on_old_kernel(&c, dir);
        c.stdin(Stdio::null());
    }
    c
}

/// The client of `fake_ssh_client` as a daemon: output in `dir/log`,
/// status file `dir/run/status`.
fn fake_ssh_daemon(dir: &TempDir, script: &str, extra: &[&str]) -> Daemon {
    Daemon::spawn_at(
        &mut fake_ssh_client(dir, script, extra),
        dir.join("log"),
        dir.join("run/status"),
    )
}

/// SIGTERM during a stream that delivered nothing ends the client (0)
/// without saying that fetching from the server works.
#[test]
fn sigterm_on_a_silent_stream_does_not_claim_it_works() {
    let dir = TempDir::new("stream-silent");
    let mut d = fake_ssh_daemon(
        &dir,
        "#!/bin/sh\nexec sleep 60\n",
        &["--mode", "stream", "--connect-timeout", "30s"],
    );
    std::thread::sleep(Duration::from_secs(2));
    let code = d.stop();
    let log = d.log();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("starting in stream mode"), "{log}");
    assert!(!log.contains(" works"), "{log}");
}

/// An SSH child that keeps writing to stderr and never sends a byte is
/// still timed out by the connect watchdog: stderr chatter does not restart
/// its timeout. (Without that, this client never ends and is killed at 30 s.)
#[test]
fn stderr_chatter_does_not_restart_the_connect_watchdog() {
    let r = client_with_fake_ssh(
        "chatter",
        "#!/bin/sh\nwhile :; do echo 'debug1: still here' >&2; sleep 0.2; done\n",
        &["--connect-timeout", "2s", "--once", "64"],
        Duration::from_secs(30),
    );
    r.code(69).stderr_has("debug1: still here");
}

/// A server that trickles one byte at a time, each well inside the stall
/// timeout, is cut at --session-timeout: exit 69, nothing credited, the
/// session killed. (Without the deadline, 64 bytes at this pace take 32 s
/// and the client is killed at 20 s.)
#[test]
fn a_trickling_server_is_cut_at_the_session_timeout() {
    let r = client_with_fake_ssh(
        "trickle",
        "#!/bin/sh\nwhile :; do head -c 1 /dev/urandom; sleep 0.5; done\n",
        &[
            "--stall-timeout",
            "5s",
            "--session-timeout",
            "3s",
            "--once",
            "64",
        ],
        Duration::from_secs(20),
    );
    r.code(69)
        .stderr_has("did not finish within --session-timeout; session killed");
    assert!(!r.stderr.contains("credited 5"), "{}", r.explain());
}

/// Stream mode's minimum progress: a trickle that never fills a 512-byte
/// chunk within --session-timeout ends the session (and the client goes on
/// to back off and retry; it is stopped with SIGTERM here).
#[test]
fn stream_mode_needs_a_chunk_per_session_timeout() {
    let dir = TempDir::new("trickle-stream");
    let mut d = fake_ssh_daemon(
        &dir,
        "#!/bin/sh\nwhile :; do head -c 1 /dev/urandom; sleep 0.2; done\n",
        &[
            "--mode",
            "stream",
            "--stall-timeout",
            "5s",
            "--session-timeout",
            "2s",
        ],
    );
    // At this pace a chunk takes 100 s: the bound only catches a client
    // that never cuts the session.
    d.wait_for("the session timeout", Duration::from_secs(30), |_, log| {
        log.contains("sent less than 512 bytes within --session-timeout; session killed")
    });
    let code = d.stop();
    assert_eq!(code, 0, "{}", d.log());
}

#[test]
fn session_timeout_zero_is_refused() {
    let r = client_with_fake_ssh(
        "session0",
        "#!/bin/sh\nexit 1\n",
        &["--session-timeout", "0", "--once", "64"],
        Duration::from_secs(20),
    );
    r.code(64).stderr_has("--session-timeout 0");
}

/// The status file's temporary file is never followed: a link planted at
/// `STATUS.tmp` (pointing at a file of root's) is replaced, its target left
/// as it was, and the status file is written. Real: the client run as root,
/// its SIGTERM path that writes the status; fake: the silent SSH client.
#[test]
fn status_temp_link_does_not_steer_the_write() {
    need_root();
    let dir = TempDir::new("status-link");
    let victim = dir.join("victim");
    std::fs::write(&victim, "root's file\n").unwrap();
    std::fs::create_dir(dir.join("run")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("run/status.tmp")).unwrap();
    let mut d = fake_ssh_daemon(&dir, "#!/bin/sh\nexec sleep 60\n", &["--mode", "stream"]);
    std::thread::sleep(Duration::from_secs(1));
    let code = d.stop();
    let text = d.log();
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root's file\n",
        "{text}"
    );
    let st = std::fs::read_to_string(dir.join("run/status")).unwrap();
    assert!(st.contains("state: stopped"), "{st}");
}

/// `--status-file` in a directory that is not this user's or root's (made by
/// nobody through `setpriv --reuid`), or that others can write to (mode
/// 1777, like /tmp), is refused at start with 78, even when `--runtime-dir`
/// is elsewhere and private.
#[test]
fn status_file_directory_is_checked_with_a_separate_runtime_dir() {
    use std::os::unix::fs::PermissionsExt;
    need_root();
    let dir = TempDir::new("status-dir");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let theirs = open.join("theirs");
    run(&mut as_nobody(&format!(
        "mkdir -m 0755 {}",
        theirs.display()
    )))
    .ok();
    for status_dir in [&open, &theirs] {
        let status = status_dir.join("status");
        let r = client_with_fake_ssh(
            "status-dir-client",
            "#!/bin/sh\nexit 1\n",
            &[
                "--status-file",
                status.to_str().unwrap(),
                "--runtime-dir",
                &dir.s("rt"),
                "--once",
                "64",
            ],
            Duration::from_secs(20),
        );
        r.code(78).stderr_has("status file directory");
    }
}
