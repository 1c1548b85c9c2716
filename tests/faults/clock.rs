//! Fault 12: clock jumps. The limiters take the time as a parameter; only
//! src/clock.rs reads a clock; a shifted CLOCK_MONOTONIC (time namespace)
//! changes nothing.

use crate::util::*;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Breaks: the clock the limiters see jumps backwards and far forwards.
/// Expects: the token bucket grants nothing for time that went backwards and
/// at most one burst after a jump forward of 11 days; the back-off takes no
/// time at all (only a count of failures), so no clock can change it.
#[test]
fn limiters_survive_clock_jumps() {
    use entropyservice::rate::{Backoff, Bucket, NS};
    let mut b = Bucket::new(1000, 100, 5_000 * NS);
    assert_eq!(b.take(1000, 5_000 * NS + NS / 10), 100);
    assert_eq!(b.take(1000, 10 * NS), 0, "backwards: nothing");
    assert_eq!(
        b.take(1000, 5_000 * NS + NS / 10),
        0,
        "back to where it was: nothing"
    );
    assert_eq!(
        b.take(1000, 1_000_000 * NS),
        100,
        "11 days later: one burst"
    );
    assert_eq!(b.take(1000, 1_000_000 * NS), 0);
    assert_eq!(b.wait_ns(100, 1_000_000 * NS), NS / 10);
    let mut k = Backoff::new(NS, 4 * NS);
    let d: Vec<u64> = (0..5).map(|_| k.delay(u32::MAX)).collect();
    assert_eq!(d, [NS, 2 * NS, 4 * NS, 4 * NS, 4 * NS]);
}

/// Breaks: the server runs in a time namespace whose CLOCK_MONOTONIC is
/// 1,000,000 s (11.6 days) ahead of the host's (`unshare --time
/// --monotonic`). (The wall clock cannot be offset by a time namespace,
/// and stepping the machine's wall clock would disturb everything else
/// here; clippy.toml's disallowed-methods keeps it out of every
/// timing decision.)
/// Expects: --rate 4096 --burst 64 still paces the stream, as outside:
/// no stall (time gone back) and no flood (time gone by). The exact rate is
/// tested in-process with a fake clock (src/rate.rs); here only generous
/// bounds a loaded machine cannot break.
#[test]
fn server_rate_holds_with_a_shifted_monotonic_clock() {
    need_root();
    let dir = TempDir::new("timens");
    let mut rates = Vec::new();
    for shifted in [false, true] {
        let mut c = if shifted {
            let mut c = Command::new(need("unshare"));
            c.args(["--time", "--monotonic", "1000000", bin()]);
            c
        } else {
            Command::new(bin())
        };
        let mut child = c
            .args([
                "server",
                "--rate",
                "4096",
                "--burst",
                "64",
                "--lock-dir",
                &dir.s("locks"),
            ])
            .env("SSH_ORIGINAL_COMMAND", "cat /dev/random")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 64];
        out.read_exact(&mut first).unwrap();
        // Read once the server runs (unshare execs it in the new namespace).
        let offsets = std::fs::read_to_string(format!("/proc/{}/timens_offsets", child.id()))
            .unwrap_or_default();
        let start = Instant::now();
        let mut buf = vec![0u8; 4096];
        out.read_exact(&mut buf).unwrap();
        let rate = buf.len() as f64 / start.elapsed().as_secs_f64();
        let _ = child.kill();
        let _ = child.wait();
        if shifted {
            assert!(
                offsets
                    .lines()
                    .any(|l| l.starts_with("monotonic") && l.contains("1000000")),
                "not in a shifted time namespace: {offsets:?}"
            );
        }
        rates.push(rate);
    }
    eprintln!("rate outside and inside the time namespace: {rates:?}");
    // A clock shift that leaked into the token bucket would burst far above
    // the rate (time "went by") or stall (time went back). The ceiling is
    // twice the limit; the floor (4096 bytes within 16 s) only says "not
    // stalled": a reader on a loaded machine may fall behind the server,
    // never get ahead of it.
    for r in &rates {
        assert!(
            (256.0..=8192.0).contains(r),
            "rate {r} B/s, limit 4096: {rates:?}"
        );
    }
}
