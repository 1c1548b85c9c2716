//! Stream mode and the kernel's count (issue: a stream on a ready 5.18+
//! kernel took all the server sent and the status file claimed credits the
//! kernel never counted), and a request every server refuses.
//!
//! Real: Dropbear and dbclient on loopback, this host's kernel (5.18+, CRNG
//! ready: asserted first) and its ioctls. An older kernel is reproduced by
//! its one visible difference, /proc/sys/kernel/random/poolsize reading 4096
//! (`on_old_kernel`: a file bind-mounted over it in a private mount
//! namespace); the ioctls stay this kernel's.

use crate::util::*;
use rustix::process::Signal;
use std::time::Duration;

/// This host's kernel counts credits the 5.18+ way and its CRNG is ready.
fn need_new_ready_kernel() {
    let poolsize = std::fs::read_to_string("/proc/sys/kernel/random/poolsize").unwrap();
    assert_eq!(
        poolsize.trim(),
        "256",
        "these tests need a 5.18+ kernel (poolsize 256)"
    );
    let mut b = [0u8; 1];
    assert!(
        entropyservice::sys::getrandom(&mut b, entropyservice::sys::GRND_NONBLOCK).is_ok(),
        "these tests need a ready CRNG"
    );
}

#[test]
fn stream_mode_on_a_ready_new_kernel_goes_on_as_topups() {
    need_root();
    need_new_ready_kernel();
    // No rate limit on the server: a stream would take megabytes a second.
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &server_command(""));
    let mut d = Daemon::spawn(
        client_cmd(&srv, &key, &dir).args(["--mode", "stream", "--interval", "1h", "127.0.0.1"]),
        &dir,
    );
    d.wait_for("the first top-up", Duration::from_secs(20), |st, _| {
        st.get("state").is_some_and(|v| v == "idle")
    });
    // Well past the first top-up: still one session and 64 bytes.
    std::thread::sleep(Duration::from_secs(2));
    let st = d.status();
    assert!(d.log().contains("counts no more credits"), "{}", d.log());
    assert_eq!(st["mode"], "topup", "{st:?}");
    assert_eq!(st["sessions"], "1", "{st:?}");
    assert_eq!(st["bytes_received"], "64", "{st:?}");
    assert_eq!(st["bytes_mixed"], "64", "{st:?}");
    // The kernel counted none of it.
    assert_eq!(st["bits_credited"], "0", "{st:?}");
    assert_eq!(
        children_of(d.pid()).len(),
        0,
        "no SSH child between top-ups"
    );
    d.signal(Signal::TERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn stream_mode_on_an_old_kernel_streams_and_counts() {
    need_root();
    need_new_ready_kernel();
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &server_command("--rate 20000"));
    let mut c = client_cmd(&srv, &key, &dir);
    c.args(["--mode", "stream", "127.0.0.1"]);
    let mut d = Daemon::spawn(&mut on_old_kernel(&c, &dir), &dir);
    // 5 chunks at 2 bits a byte: an old kernel counts up to its pool size.
    d.wait_for("5 counted chunks", Duration::from_secs(20), |st, _| {
        st.get("bits_credited")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v >= 5 * 1024)
    });
    let st = d.status();
    assert_eq!(st["mode"], "stream", "{st:?}");
    assert_eq!(st["sessions"], "1", "one stream: {st:?}");
    assert!(!d.log().contains("counts no more credits"), "{}", d.log());
    d.signal(Signal::TERM);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert_no_ssh_client_for(srv.port);
}

/// `get 64` against a server whose --max-bytes is 32: asking again cannot
/// help, so the daemon stops with 78 (configuration) after one round.
#[test]
fn a_request_every_server_refuses_stops_the_daemon_with_78() {
    need_root();
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &server_command("--max-bytes 32"));
    let mut d = Daemon::spawn(
        client_cmd(&srv, &key, &dir).args([
            "--get-bytes",
            "64",
            "--max-backoff",
            "1s",
            "127.0.0.1",
        ]),
        &dir,
    );
    let code = d.wait_exit(Duration::from_secs(30)).code();
    let log = d.log();
    assert_eq!(code, Some(78), "{log}");
    assert!(log.contains("every server refuses this request"), "{log}");
    assert_eq!(d.status()["sessions"], "1", "{log}");
    assert_eq!(d.status()["state"], "stopped", "{log}");
    assert_no_ssh_client_for(srv.port);
}
