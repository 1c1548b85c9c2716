//! Faults 5-6: wrong and unknown host keys (daemon mode, both SSH
//! clients, and an RSA pin through ssh), and constant, short and repeated
//! streams that must never be credited.

use super::stream_daemon;
use crate::util::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Breaks: the server's host key is not the pinned one ("wrong": another
/// ed25519 key; "unknown": the pinned key is RSA and the server offers only
/// ed25519, so for the SSH client the server's key is unknown).
/// Expects, in daemon mode, for dbclient and ssh: refused within seconds
/// with a line naming the pinned fingerprint; the server is then skipped for
/// the penalty period (--max-backoff 2s), so there are few sessions (at
/// most one per second of the run is asserted); nothing credited; the whole client tree (client, SSH children
/// alive or reaped) uses little CPU, so dbclient never spins.
#[test]
fn host_key_refused_in_daemon_mode_without_spinning() {
    need_root();
    let mut runs = Vec::new();
    for flavor in BOTH {
        for kind in ["wrong", "unknown"] {
            let (srv, key, dir) = forced_server(flavor, &server_command(""));
            let other = if kind == "wrong" {
                openssh_key(&dir, "other_host", "ed25519")
            } else {
                openssh_key(&dir, "rsa_host", "rsa")
            };
            let pinned = entropyservice::hostkey::PublicKey::parse(&other.public_line)
                .unwrap()
                .fingerprint();
            let hk = other.type_and_key();
            let d = Daemon::spawn(
                client_cmd_opts(&srv, &key, &dir, &[("--host-key", &hk)]).args([
                    "--max-backoff",
                    "2s",
                    "--interval",
                    "1s",
                    "127.0.0.1",
                ]),
                &dir,
            );
            runs.push((flavor, kind, srv, dir, d, pinned, Instant::now()));
        }
    }
    // All four at once, so that each refusal is timed from its own start.
    let mut refused_after: Vec<Option<Duration>> = vec![None; runs.len()];
    while refused_after.iter().any(Option::is_none) {
        for (i, (flavor, kind, _, _, d, _, started)) in runs.iter_mut().enumerate() {
            if refused_after[i].is_none() && d.log().contains("does not match the pinned key") {
                refused_after[i] = Some(started.elapsed());
            }
            assert!(
                // Before the 15 s connect timeout could have ended the
                // session: the bound only catches a client that waited for it.
                refused_after[i].is_some() || started.elapsed() < Duration::from_secs(15),
                "{flavor:?}/{kind}: not refused within the 15 s connect timeout\n{}",
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("host key refused after {refused_after:?}");
    for (_, _, _, _, d, pinned, _) in runs.iter() {
        assert!(d.log().contains(pinned.as_str()), "{}", d.log());
    }
    std::thread::sleep(Duration::from_secs(3));
    for (flavor, kind, srv, _, d, _, started) in runs.iter_mut() {
        let cpu = tree_cpu(d.pid());
        let secs = started.elapsed().as_secs_f64();
        let st = d.status();
        let log = d.log();
        eprintln!("{flavor:?}/{kind}: {cpu} ticks in {secs:.1} s, {st:?}");
        assert!(
            (cpu as f64) < 10.0 * secs,
            "{flavor:?}/{kind}: the client tree used {cpu} ticks in {secs:.1} s\n{log}"
        );
        assert_eq!(st["bits_credited"], "0");
        assert_eq!(st["bytes_mixed"], "0");
        // A refused server sits out the 2 s penalty (--max-backoff) before
        // its next session. Asserted with room for a loaded machine: at
        // least the one refused session and at most one per second of this
        // run (a client that ignored the penalty would make dozens). The
        // penalty's exact length belongs to the client's in-process tests
        // with a fake clock (src/client.rs).
        let sessions: u64 = st["sessions"].parse().unwrap();
        assert!(
            (1..=1 + secs as u64).contains(&sessions),
            "{flavor:?}/{kind}: {sessions} sessions in {secs:.1} s: {st:?}\n{log}"
        );
        assert_eq!(
            log.matches("does not match the pinned key").count() as u64,
            sessions,
            "{log}"
        );
        assert_eq!(d.stop(), 0, "{}", d.log());
        assert_no_ssh_client_for(srv.port);
    }
}

/// An RSA host key that is not the pinned RSA key, through OpenSSH's ssh,
/// against a real sshd and a real Dropbear that hold only that RSA key:
/// exit 76 naming both fingerprints, never 69. (The session never reaches
/// authentication, so no authorized_keys is needed.)
#[test]
fn rsa_pin_mismatch_through_ssh_is_76() {
    need_root();
    let dir = TempDir::new("rsa-pin");
    let pinned = openssh_key(&dir, "pinned_rsa", "rsa");
    let id = openssh_key(&dir, "id", "ed25519");
    for flavor in BOTH {
        let srv = SshServer::start_with(flavor, "", "127.0.0.1", "rsa");
        let r = run(Command::new(bin())
            .args(["client", "--ssh", need("ssh").to_str().unwrap()])
            .args(["-p", &srv.port.to_string(), "-i", &id.private_str()])
            .args(["--host-key", &pinned.type_and_key()])
            .args([
                "--status-file",
                &dir.s("run/status"),
                "--seed-dir",
                &dir.s("seed"),
            ])
            .args(["--once", "64", "127.0.0.1"]));
        let fp = |line: &str| {
            entropyservice::hostkey::PublicKey::parse(line)
                .unwrap()
                .fingerprint()
        };
        r.code(76)
            .stderr_has(&fp(&pinned.public_line))
            .stderr_has(&fp(&srv.host_public));
    }
}

// ------------------------------------- 6. constant, short, repeated streams

/// Breaks: the server sends all zeros, 10 bytes and then EOF, or one
/// random 32-byte block over and over.
/// Expects, in daemon stream mode over both servers: the session is
/// dropped, a line says why, bits_credited in the status file stays 0; a
/// health failure puts the server in the penalty box, a short stream backs
/// off, and the client tries again.
#[test]
fn bad_streams_are_never_credited_in_stream_mode() {
    need_root();
    let cases = [
        (
            "head -c 100000 /dev/zero",
            "failed the health tests: repetition count",
        ),
        (
            "head -c 10 /dev/urandom",
            "closed the stream; the last partial chunk was not credited",
        ),
        (
            "head -c 32 /dev/urandom > /tmp/es-block-$$; while cat /tmp/es-block-$$; do :; done",
            "32-byte block was repeated",
        ),
    ];
    let mut runs = Vec::new();
    for (cmd, why) in cases {
        for flavor in BOTH {
            let (srv, key, dir) = forced_server(flavor, cmd);
            let d = stream_daemon(&srv, &key, &dir, "2s");
            runs.push((flavor, why, srv, dir, d));
        }
    }
    for (flavor, why, srv, _, d) in runs.iter_mut() {
        d.wait_for(
            "two refused sessions",
            Duration::from_secs(15),
            |st, log| {
                log.matches(*why).count() >= 2
                    && st.get("sessions").is_some_and(|v| v != "0" && v != "1")
            },
        );
        let st = d.status();
        assert_eq!(st["bits_credited"], "0", "{flavor:?} {why}: {st:?}");
        assert_eq!(st["bytes_mixed"], "0", "{flavor:?} {why}: {st:?}");
        if why.contains("health") || why.contains("block") {
            assert_ne!(st["health_failures"], "0", "{st:?}");
            assert!(d
                .log()
                .contains("nothing credited; skipping this server for 1 s"));
        }
        assert!(children_of(d.pid()).len() <= 1);
        assert_eq!(d.stop(), 0, "{}", d.log());
        assert_eq!(d.status()["bits_credited"], "0");
        assert_eq!(d.status()["bytes_mixed"], "0");
        assert_no_ssh_client_for(srv.port);
    }
}
