//! Fault 10: SIGTERM, SIGINT, SIGHUP and SIGPIPE to the client in every
//! phase, to the server mid-stream and to the sink while it reads.

use crate::util::*;
use rustix::process::Signal;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ALL_SIGNALS: [Signal; 4] = [Signal::TERM, Signal::INT, Signal::HUP, Signal::PIPE];

fn sig_name(s: Signal) -> &'static str {
    match s {
        Signal::TERM => "SIGTERM",
        Signal::INT => "SIGINT",
        Signal::HUP => "SIGHUP",
        Signal::PIPE => "SIGPIPE",
        Signal::KILL => "SIGKILL",
        _ => "signal",
    }
}

// ------------------------------------------------------------- 10. signals

/// Breaks: SIGTERM, SIGINT, SIGHUP or SIGPIPE arrive while the client
/// connects (the server has not sent a byte), streams, or sleeps between
/// top-ups; one client per phase and signal, all at once.
/// Expects: SIGTERM, SIGINT and SIGHUP: the SSH child is killed and reaped,
/// a seed is saved, the status file says "stopped", exit 0 (within 10 s).
/// SIGPIPE: ignored; the client carries on in the same phase.
#[test]
fn client_signals_in_every_phase() {
    need_root();
    let (slow, slow_key, _slow_dir) = forced_server(Flavor::Dropbear, "exec sleep 10");
    // One server per phase: Dropbear drops a sixth concurrent unauthenticated
    // connection from one address (MAX_UNAUTH_PER_IP 5).
    let (fast, fast_key, _fast_dir) =
        forced_server(Flavor::Dropbear, &server_command("--rate 20000"));
    let (idle, idle_key, _idle_dir) = forced_server(Flavor::Dropbear, &server_command(""));
    type Cond = fn(&HashMap<String, String>, u32) -> bool;
    let phases: [(&str, &SshServer, &Keypair, &[&str], Cond); 3] = [
        (
            "connecting",
            &slow,
            &slow_key,
            &["--interval", "1h"],
            |st, pid| {
                st.get("state").map(String::as_str) == Some("fetching")
                    && !children_of(pid).is_empty()
            },
        ),
        (
            "streaming",
            &fast,
            &fast_key,
            &["--mode", "stream"],
            |st, _| st.get("bits_credited").is_some_and(|v| v != "0"),
        ),
        (
            "sleeping",
            &idle,
            &idle_key,
            &["--interval", "1h"],
            |st, _| st.get("state").map(String::as_str) == Some("idle"),
        ),
    ];
    let mut runs = Vec::new();
    for (phase, srv, key, args, cond) in phases {
        for sig in ALL_SIGNALS {
            let dir = TempDir::new("signals");
            let mut c = client_cmd(srv, key, &dir);
            c.args(args).arg("127.0.0.1");
            if phase == "streaming" {
                // A stream lasts past CRNG readiness only on a kernel before 5.18.
                c = on_old_kernel(&c, &dir);
            }
            let d = Daemon::spawn(&mut c, &dir);
            runs.push((phase, sig, cond, dir, d));
        }
    }
    for (phase, sig, cond, dir, d) in runs.iter_mut() {
        let pid = d.pid();
        d.wait_for(phase, Duration::from_secs(15), |st, _| cond(st, pid));
        if *phase == "connecting" {
            std::thread::sleep(Duration::from_millis(300));
        }
        let kids = children_of(pid);
        let credited = d.num("bits_credited");
        let log_before = d.log().len();
        d.signal(*sig);
        let t = Instant::now();
        let what = format!("{phase}/{}", sig_name(*sig));
        if *sig == Signal::PIPE {
            std::thread::sleep(Duration::from_millis(300));
            assert!(d.running(), "{what}: the client died\n{}", d.log());
            let st = d.status();
            assert!(cond(&st, pid), "{what}: left its phase: {st:?}");
            if *phase == "streaming" {
                d.wait_for(
                    "more credit after SIGPIPE",
                    Duration::from_secs(15),
                    |st, _| {
                        st.get("bits_credited")
                            .and_then(|v| v.parse::<u64>().ok())
                            .is_some_and(|v| v > credited)
                    },
                );
            }
            d.signal(Signal::TERM);
        }
        // At once on a quiet machine (kill and reap the child, save a seed
        // with its fsync); the bound is generous for a loaded one.
        let code = d.wait_exit(Duration::from_secs(10));
        assert_eq!(code.code(), Some(0), "{what}: {code}\n{}", d.log());
        eprintln!("{what}: exit {:?} after the signal", t.elapsed());
        let st = d.status();
        assert_eq!(st["state"], "stopped", "{what}: {st:?}");
        assert!(
            dir.join("seed/seed.credit").exists(),
            "{what}: no seed saved\n{}",
            d.log()
        );
        let log = d.log();
        assert!(
            !log[log_before..].contains("retrying"),
            "{what}: a signal is not a failure: {st:?}\n{log}"
        );
        for k in kids {
            assert!(
                stat(k).is_none_or(|s| s.ppid != pid),
                "{what}: child {k} left"
            );
        }
    }
    assert_no_ssh_client_for(slow.port);
    assert_no_ssh_client_for(fast.port);
    assert_no_ssh_client_for(idle.port);
}

/// Breaks: a signal reaches `entropyservice server` mid-stream (run as it
/// runs under sshd: SSH_ORIGINAL_COMMAND set, stdout a pipe).
/// Expects: SIGTERM, SIGINT, SIGHUP: the stream stops, the audit line says
/// reason="signal", exit 0. SIGPIPE: ignored, the stream goes on; when the
/// reader then goes away the server ends with reason "client hung up", exit 0.
#[test]
fn server_signals_mid_stream() {
    need_root();
    let dir = TempDir::new("server-signals");
    for sig in ALL_SIGNALS {
        let audit = dir.s(&format!("audit-{}", sig.as_raw()));
        let mut child = spawn_piped(
            Command::new(bin())
                .args(["server", "--rate", "20000", "--client", "sig"])
                .args(["--lock-dir", &dir.s("locks"), "--audit-file", &audit])
                .env("SSH_ORIGINAL_COMMAND", "cat /dev/random")
                .env("SSH_CONNECTION", "127.0.0.1 50000 127.0.0.1 22")
                .stdin(Stdio::null()),
        );
        let mut out = child.stdout.take().unwrap();
        let mut buf = vec![0u8; 2000];
        out.read_exact(&mut buf).unwrap();
        send(child.id(), sig);
        if sig == Signal::PIPE {
            out.read_exact(&mut buf).unwrap();
            drop(out);
        } else {
            let mut rest = Vec::new();
            out.read_to_end(&mut rest).unwrap();
        }
        let o = wait_limit(&mut child, Duration::from_secs(15));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {}\n{err}",
            sig_name(sig),
            o.status
        );
        let text = std::fs::read_to_string(&audit).unwrap();
        let want = if sig == Signal::PIPE {
            "reason=\"client hung up\""
        } else {
            "reason=\"signal\""
        };
        assert!(text.contains(want), "{}: {text}", sig_name(sig));
    }
}

/// Breaks: a signal reaches `entropyservice sink` while it reads stdin.
/// Expects: SIGTERM, SIGINT, SIGHUP end it at once by the signal (a shell
/// sees 128+N), nothing credited and nothing printed: the sink credits only
/// after the whole input passed the tests. SIGPIPE: ignored; the push goes on
/// and is credited.
#[test]
fn sink_signals_while_reading() {
    need_root();
    for sig in ALL_SIGNALS {
        // As sshd starts a forced command: default dispositions, whatever this
        // test process inherited (nohup ignores SIGHUP).
        let mut child = spawn_piped(
            default_signals(bin())
                .args(["sink", "--min-bytes", "32", "--max-bytes", "4096"])
                .stdin(Stdio::piped()),
        );
        let mut input = child.stdin.take().unwrap();
        let mut data = vec![0u8; 200];
        entropyservice::sys::getrandom(&mut data, 0).unwrap();
        input.write_all(&data[..100]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        send(child.id(), sig);
        std::thread::sleep(Duration::from_millis(200));
        if sig == Signal::PIPE {
            input.write_all(&data[100..]).unwrap();
        }
        drop(input);
        let o = wait_limit(&mut child, Duration::from_secs(15));
        let out = String::from_utf8_lossy(&o.stdout);
        use std::os::unix::process::ExitStatusExt;
        if sig == Signal::PIPE {
            assert_eq!(o.status.code(), Some(0), "{out}");
            assert!(
                out.contains("received 200 bytes, credited 400 bits"),
                "{out}"
            );
        } else {
            assert_eq!(
                o.status.signal(),
                Some(sig.as_raw()),
                "{}: {}",
                sig_name(sig),
                o.status
            );
            assert!(out.is_empty(), "{out}");
        }
    }
}
