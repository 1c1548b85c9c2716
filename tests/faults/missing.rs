//! Fault 11: missing SSH client programs, key files that disappear or
//! loosen while the daemon runs, --agent without an agent, an unreadable
//! random source.

use crate::util::*;
use std::process::Command;
use std::time::Duration;

/// Breaks: the SSH client program is missing (named, or none on PATH), the
/// key file disappears or is loosened while the daemon runs, --agent without
/// an agent, and the server's --source device is unreadable (run as nobody).
/// Expects: one clear line each, naming the thing and what to do; the daemon
/// logs the key problem for each attempt and keeps retrying.
#[test]
fn missing_programs_keys_and_sources_are_one_line_errors() {
    need_root();
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &server_command(""));
    let mut c = client_cmd_opts(&srv, &key, &dir, &[("--ssh", "dbclient")]);
    c.env("PATH", "/nonexistent")
        .args(["--once", "64", "127.0.0.1"]);
    run(&mut c)
        .code(66)
        .one_line_error()
        .stderr_has("SSH client dbclient not found on PATH");
    // `client ARGS --host-key KEY --once 64 127.0.0.1`, nothing else.
    let bare_client = |args: &[&str]| {
        let mut c = Command::new(bin());
        c.arg("client")
            .args(args)
            .args(["--host-key", &srv.host_key, "--once", "64", "127.0.0.1"]);
        c
    };
    run(bare_client(&["-i", &key.private_str()]).env("PATH", "/nonexistent"))
        .code(66)
        .one_line_error()
        .stderr_has("no SSH client found: neither dbclient nor ssh is on PATH");
    run(bare_client(&["--agent"]).env_remove("SSH_AUTH_SOCK"))
        .code(64)
        .one_line_error()
        .stderr_has("--agent needs SSH_AUTH_SOCK");

    // The key goes away, then comes back too open, while the daemon runs.
    let moved = dir.join("id.moved");
    let mut d = Daemon::spawn(
        client_cmd(&srv, &key, &dir).args(["--interval", "1s", "--max-backoff", "1s", "127.0.0.1"]),
        &dir,
    );
    d.wait_for("a pull", Duration::from_secs(10), |st, _| {
        st.get("state").map(String::as_str) == Some("idle")
    });
    std::fs::rename(&key.private, &moved).unwrap();
    let missing = format!(
        "warning: key file {} cannot be read (No such file",
        key.private_str()
    );
    d.wait_for("the missing key", Duration::from_secs(10), |_, log| {
        log.contains(&missing)
    });
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&moved, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::rename(&moved, &key.private).unwrap();
    let loose = format!(
        "is readable by group or others; run: chmod 600 {}",
        key.private_str()
    );
    d.wait_for("the loose key", Duration::from_secs(10), |_, log| {
        log.contains(&loose)
    });
    std::fs::set_permissions(&key.private, std::fs::Permissions::from_mode(0o600)).unwrap();
    let sessions = d.num("sessions");
    d.wait_for("recovery", Duration::from_secs(10), |st, _| {
        st.get("state").map(String::as_str) == Some("idle")
            && st.get("sessions").and_then(|v| v.parse::<u64>().ok()) > Some(sessions)
    });
    assert_eq!(d.stop(), 0, "{}", d.log());
    for l in d.log().lines().filter(|l| l.contains("key file")) {
        assert!(l.starts_with("warning: key file "), "{l}");
    }

    // An unreadable hardware RNG, as the unprivileged user a server runs as.
    // The machine's own /dev/hwrng (root's, 0600) or, where there is none, a
    // root-owned 0600 stand-in in a private mount namespace (DEV_HWRNG).
    // nobody runs a copy in a world-readable directory, with no
    // LD_LIBRARY_PATH: the checkout (and cargo's library paths) may be under
    // root's 0700 home, as in a CI container.
    let lock = format!("/tmp/es-faults-nobody-{}", std::process::id());
    let pub_dir = TempDir::new("nobody-bin");
    std::fs::set_permissions(&pub_dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = pub_dir.join("entropyservice");
    std::fs::copy(bin(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = format!(
        "{DEV_HWRNG}exec {} --reuid=nobody --regid=nogroup --clear-groups \"$@\"",
        need("setpriv").display()
    );
    let mut c = in_mount_namespace(&script);
    c.arg(&copy)
        .args(["server", "--source", "/dev/hwrng", "--lock-dir", &lock])
        .env_remove("LD_LIBRARY_PATH")
        .env("SSH_ORIGINAL_COMMAND", "get 64");
    let r = run(&mut c);
    let _ = std::fs::remove_dir_all(&lock);
    r.code(74)
        .one_line_error()
        .stderr_has("cannot open random source /dev/hwrng")
        .stderr_has("Permission denied")
        .no_stdout();
}
