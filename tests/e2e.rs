//! End to end over the real Dropbear and OpenSSH on loopback: our client
//! through the real dbclient and ssh, our server as the forced command, and
//! both directions of compatibility with the original shell-script project.

use crate::util::*;
use std::process::Command;
use std::time::{Duration, Instant};

const BOTH: [Flavor; 2] = [Flavor::Dropbear, Flavor::OpenSsh];

#[test]
fn once_fetches_and_credits_over_both_servers() {
    need_root();
    for flavor in BOTH {
        let (srv, key, dir) = forced_server(flavor, &server_command(""));
        let r = run(client_cmd(&srv, &key, &dir).args(["--once", "64", "127.0.0.1"]));
        r.ok()
            .stdout_has("received 64 bytes from root@127.0.0.1")
            .stdout_has("credited 128 bits");
        let r = run(client_cmd(&srv, &key, &dir).args([
            "--once",
            "4096",
            "--credit-bits-per-byte",
            "0",
            "127.0.0.1",
        ]));
        r.ok()
            .stdout_has("received 4096 bytes")
            .stdout_has("credited 0 bits");
        assert_no_ssh_client_for(srv.port);
    }
}

#[test]
fn each_ssh_client_works_with_the_other_server() {
    need_root();
    // dbclient reads only Dropbear-format keys and ssh only OpenSSH ones; the
    // server does not care which made the key.
    for (flavor, other) in [(Flavor::Dropbear, "ssh"), (Flavor::OpenSsh, "dbclient")] {
        let dir = TempDir::new("cross");
        let srv = SshServer::start(flavor, "");
        let key = if other == "ssh" {
            openssh_key(&dir, "id", "ed25519")
        } else {
            dropbear_key(&dir, "id", "ed25519")
        };
        srv.set_authorized_keys(&forced_line(&server_command(""), &key));
        let mut c = client_cmd_opts(
            &srv,
            &key,
            &dir,
            &[("--ssh", need(other).to_str().unwrap())],
        );
        c.args(["--once", "32", "127.0.0.1"]);
        run(&mut c).ok().stdout_has("received 32 bytes");
    }
}

#[test]
fn legacy_server_running_cat_dev_urandom() {
    need_root();
    // A server set up for the original project: no entropyservice there.
    for flavor in BOTH {
        let (srv, key, dir) = forced_server(flavor, "cat /dev/urandom");
        let t = Instant::now();
        let r = run(client_cmd(&srv, &key, &dir).args(["--once", "256", "127.0.0.1"]));
        r.ok()
            .stdout_has("received 256 bytes")
            .stdout_has("credited 512 bits");
        // The stream never ends: a generous bound that a client waiting for
        // its end (killed at run's 60 s) cannot meet.
        assert_within(t, Duration::from_secs(15), format!("{flavor:?}"));
        assert_no_ssh_client_for(srv.port);
    }
}

#[test]
fn original_client_command_line_against_our_server() {
    need_root();
    // The v2 client's command, ssh -T -p PORT -i KEY USER@HOST "cat /dev/random",
    // with the host key pinned.
    let (srv, key, dir) = forced_server(Flavor::OpenSsh, &server_command("--rate 4096"));
    let mut child = spawn_piped(&mut pinned_ssh(
        &srv,
        &key,
        &dir,
        &["-T", "root@127.0.0.1", "cat /dev/random"],
    ));
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 8192];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    // The bytes pass the same health tests the client applies.
    let mut h = entropyservice::health::Health::new();
    assert_eq!(h.check(&buf), Ok(()));
}

#[test]
fn bad_request_through_ssh_is_refused_by_the_forced_command() {
    need_root();
    let (srv, key, dir) = forced_server(Flavor::OpenSsh, &server_command("--max-bytes 4096"));
    for req in ["get 99999999999", "get -1", "get 10; rm -rf /", "sh -i"] {
        let r = run(&mut pinned_ssh(
            &srv,
            &key,
            &dir,
            &["-T", "root@127.0.0.1", req],
        ));
        r.code(65).stderr_has("bad request").no_stdout();
    }
}

/// `client --once 64` against `srv` with `pin`'s public key as the pinned
/// host key, and when it started.
fn once_pinning(srv: &SshServer, key: &Keypair, dir: &TempDir, pin: &Keypair) -> (Run, Instant) {
    let hk = pin.type_and_key();
    let mut c = client_cmd_opts(srv, key, dir, &[("--host-key", &hk)]);
    c.args(["--once", "64", "127.0.0.1"]);
    let t = Instant::now();
    (run(&mut c), t)
}

#[test]
fn wrong_host_key_is_refused_naming_both_fingerprints() {
    need_root();
    for flavor in BOTH {
        let (srv, key, dir) = forced_server(flavor, &server_command(""));
        let other = openssh_key(&dir, "other_host", "ed25519");
        let pinned = entropyservice::hostkey::PublicKey::parse(&other.public_line)
            .unwrap()
            .fingerprint();
        let offered = entropyservice::hostkey::PublicKey::parse(&srv.host_key)
            .unwrap()
            .fingerprint();
        let (r, t) = once_pinning(&srv, &key, &dir, &other);
        r.code(76).stderr_has(&pinned).stderr_has("does not match");
        assert!(
            r.stderr.contains(&offered),
            "{flavor:?}: offered fingerprint missing\n{}",
            r.explain()
        );
        assert!(!r.stdout.contains("credited"), "{}", r.explain());
        // Refused before the 15 s connect timeout could have ended it.
        assert_within(t, Duration::from_secs(15), format!("{flavor:?}"));
        assert_no_ssh_client_for(srv.port);
    }
}

#[test]
fn unknown_host_key_type_is_refused() {
    need_root();
    // The pinned key is RSA; the server has only ed25519: for the client the
    // server's key is unknown, and it must never be accepted.
    for flavor in BOTH {
        let (srv, key, dir) = forced_server(flavor, &server_command(""));
        let rsa = openssh_key(&dir, "rsa_host", "rsa");
        let (r, t) = once_pinning(&srv, &key, &dir, &rsa);
        r.code(76).stderr_has("does not match the pinned key");
        assert_within(t, Duration::from_secs(20), r.explain());
        assert_no_ssh_client_for(srv.port);
    }
}

#[test]
fn constant_and_repeated_streams_are_not_credited() {
    need_root();
    for (cmd, what) in [
        ("head -c 100000 /dev/zero", "repetition count"),
        (
            "head -c 32 /dev/urandom > /tmp/es-block-$$; while cat /tmp/es-block-$$; do :; done",
            "32-byte block was repeated",
        ),
    ] {
        for flavor in BOTH {
            let (srv, key, dir) = forced_server(flavor, cmd);
            let r = run(client_cmd(&srv, &key, &dir).args(["--once", "256", "127.0.0.1"]));
            r.code(65).stderr_has(what).stderr_has("nothing credited");
            assert!(!r.stdout.contains("credited"), "{}", r.explain());
        }
    }
}

#[test]
fn short_stream_and_stall_are_not_credited() {
    need_root();
    for flavor in BOTH {
        let (srv, key, dir) = forced_server(flavor, "head -c 10 /dev/urandom");
        run(client_cmd(&srv, &key, &dir).args(["--once", "64", "127.0.0.1"]))
            .code(65)
            .stderr_has("sent 10 of 64 bytes; nothing credited");

        srv.set_authorized_keys(&forced_line("head -c 10 /dev/urandom; exec sleep 60", &key));
        let t = Instant::now();
        let r = run(
            client_cmd_opts(&srv, &key, &dir, &[("--stall-timeout", "2s")]).args([
                "--once",
                "64",
                "127.0.0.1",
            ]),
        );
        r.code(69).stderr_has("stalled; session killed");
        // The stall watchdog (2 s), not the server's `sleep 60`, ended it.
        assert_within(t, Duration::from_secs(30), "the stall watchdog");
        assert_no_ssh_client_for(srv.port);
    }
}

#[test]
fn key_file_problems_are_one_line_errors() {
    need_root();
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &server_command(""));
    let missing = dir.s("missing");
    let mut c = client_cmd_opts(&srv, &key, &dir, &[("-i", &missing)]);
    c.args(["--once", "64", "127.0.0.1"]);
    run(&mut c)
        .code(66)
        .one_line_error()
        .stderr_has("cannot be read");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key.private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(client_cmd(&srv, &key, &dir).args(["--once", "64", "127.0.0.1"]));
    r.code(77)
        .one_line_error()
        .stderr_has(&format!("chmod 600 {}", key.private_str()));
    let mut c = Command::new(bin());
    c.args([
        "client",
        "--once",
        "64",
        "-i",
        &key.private_str(),
        "127.0.0.1",
    ]);
    run(&mut c)
        .code(64)
        .one_line_error()
        .stderr_has("--host-key");
    let mut c = client_cmd_opts(&srv, &key, &dir, &[("--ssh", "/nonexistent/dbclient")]);
    c.args(["--once", "64", "127.0.0.1"]);
    std::fs::set_permissions(&key.private, std::fs::Permissions::from_mode(0o600)).unwrap();
    run(&mut c)
        .code(66)
        .one_line_error()
        .stderr_has("does not exist");
    let mut c = client_cmd(&srv, &key, &dir);
    c.args(["--once", "64", "-oProxyCommand=sh"]);
    run(&mut c).code(64).one_line_error();
}

#[test]
fn without_cap_sys_admin_bytes_are_mixed_but_not_credited() {
    need_root();
    let setpriv = need("setpriv");
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &server_command(""));
    let mut inner = client_cmd(&srv, &key, &dir);
    inner.args(["--once", "64", "127.0.0.1"]);
    let mut c = Command::new(setpriv);
    c.args([
        "--bounding-set",
        "-sys_admin",
        "--inh-caps",
        "-sys_admin",
        "--",
    ])
    .arg(inner.get_program())
    .args(inner.get_args());
    let r = run(&mut c);
    r.ok()
        .stdout_has("credited 0 bits")
        .stderr_has("cannot credit entropy without CAP_SYS_ADMIN");
    assert_eq!(
        r.stderr.matches("cannot credit").count(),
        1,
        "{}",
        r.explain()
    );
}

#[test]
fn stream_mode_credits_until_terminated() {
    need_root();
    for flavor in BOTH {
        let (srv, key, dir) = forced_server(flavor, &server_command("--rate 20000"));
        // A stream lasts past CRNG readiness only on a kernel before 5.18.
        let mut d = Daemon::spawn(
            &mut on_old_kernel(
                client_cmd(&srv, &key, &dir).args([
                    "--mode",
                    "stream",
                    "--reseed-interval",
                    "1s",
                    "127.0.0.1",
                ]),
                &dir,
            ),
            &dir,
        );
        // 20000 B/s at 2 bits per byte, in 512-byte chunks: 8192 bits take
        // well under a second on a quiet machine; the bound is generous.
        d.wait_for("8192 bits credited", Duration::from_secs(30), |st, _| {
            status_num(st, "bits_credited") >= 8192
        });
        assert_eq!(
            children_of(d.pid()).len(),
            1,
            "one SSH child while streaming"
        );
        let code = d.stop();
        let err = d.log();
        assert_eq!(code, 0, "{err}");
        let text = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let credited = d.num("bits_credited");
        assert!(
            credited >= 8192,
            "credited only {credited} bits: {err}\n{text}"
        );
        assert!(text.contains("state: stopped"), "{text}");
        assert!(
            dir.join("seed/seed.credit").exists(),
            "no seed saved at SIGTERM: {err}"
        );
        assert_no_ssh_client_for(srv.port);
    }
}

/// Refusals by our server reach the client's exit status with their class
/// (through a real Dropbear and dbclient): a reached session cap is 75 (try
/// later), a `get N` over the server's --max-bytes is 78 (configuration,
/// the server is then skipped, not hammered), each one line with the
/// server's reason once (no doubled "error: error:").
#[test]
fn server_refusals_keep_their_exit_status() {
    need_root();
    let locks = TempDir::new("refusal-locks");
    let cmd = server_command(&format!(
        "--max-bytes 100 --max-total-sessions 1 --lock-dir {}",
        locks.path.display()
    ));
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &cmd);
    let r = run(client_cmd(&srv, &key, &dir).args(["--once", "200", "127.0.0.1"]));
    r.code(78)
        .one_line_error()
        .stderr_has("refused: bad request: byte count is larger than this server's --max-bytes")
        .stderr_has("at most the server's --max-bytes")
        .no_stdout();
    assert!(!r.stderr.contains("error: error"), "{}", r.explain());

    // Hold the server-wide slot as a live session would.
    use std::os::unix::fs::PermissionsExt;
    let all = locks.join("all");
    std::fs::create_dir_all(&all).unwrap();
    std::fs::set_permissions(&all, std::fs::Permissions::from_mode(0o700)).unwrap();
    let slot = std::fs::File::create(all.join("slot-0")).unwrap();
    rustix::fs::flock(&slot, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let r = run(client_cmd(&srv, &key, &dir).args(["--once", "64", "127.0.0.1"]));
    r.code(75)
        .one_line_error()
        .stderr_has("refused: session cap reached")
        .stderr_has("try again later");
    assert!(!r.stderr.contains("error: error"), "{}", r.explain());
    drop(slot);
    run(client_cmd(&srv, &key, &dir).args(["--once", "64", "127.0.0.1"]))
        .ok()
        .stdout_has("received 64 bytes");
}

/// What a newcomer types first, each refused before any SSH client runs,
/// in one line saying what to do: `HOST:PORT`, a public key as -i, and a key
/// in the format the chosen SSH client cannot read (with the dropbearconvert
/// command). Without --ssh, the client that reads the key is chosen.
#[test]
fn newcomer_mistakes_get_actionable_errors() {
    need_root();
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &server_command(""));
    let port = srv.port.to_string();
    let target = format!("root@127.0.0.1:{port}");
    run(client_cmd(&srv, &key, &dir).args(["--once", "64", &target]))
        .code(64)
        .one_line_error()
        .stderr_has(&format!("give the port with -p, e.g. -p {port} 127.0.0.1"));
    // An IPv6 address is not HOST:PORT.
    let r = run(client_cmd(&srv, &key, &dir).args(["--once", "64", "::1"]));
    assert!(!r.stderr.contains("HOST:PORT"), "{}", r.explain());

    // The public half: 64, "is a public key".
    let pubf = dir.join("id.pub");
    std::fs::write(&pubf, format!("{}\n", key.public_line)).unwrap();
    run(
        client_cmd_opts(&srv, &key, &dir, &[("-i", &pubf.to_string_lossy())]).args([
            "--once",
            "64",
            "127.0.0.1",
        ]),
    )
    .code(64)
    .one_line_error()
    .stderr_has("is a public key");

    // An OpenSSH key for dbclient, a Dropbear key for ssh: 78, with the fix.
    let ossh = openssh_key(&dir, "id_openssh", "ed25519");
    run(
        client_cmd_opts(&srv, &ossh, &dir, &[("--ssh", "dbclient")]).args([
            "--once",
            "64",
            "127.0.0.1",
        ]),
    )
    .code(78)
    .one_line_error()
    .stderr_has("is in OpenSSH format, which dbclient cannot read")
    .stderr_has("dropbearconvert openssh dropbear");
    run(client_cmd_opts(&srv, &key, &dir, &[("--ssh", "ssh")]).args(["--once", "64", "127.0.0.1"]))
        .code(78)
        .one_line_error()
        .stderr_has("is in Dropbear format")
        .stderr_has("dropbearconvert dropbear openssh");

    // No --ssh: the OpenSSH key is used with ssh, against the same server.
    srv.set_authorized_keys(&forced_line(&server_command(""), &ossh));
    let mut c = Command::new(bin());
    c.args(["client", "-p", &port, "-i", &ossh.private_str()])
        .args([
            "--host-key",
            &srv.host_key,
            "--status-file",
            &dir.s("status"),
        ])
        .args(["--seed-dir", &dir.s("seed"), "--once", "64", "127.0.0.1"]);
    let ready = entropyservice::kernel::crng_ready();
    let r = run(&mut c);
    r.ok().stdout_has("received 64 bytes");
    // A ready CRNG takes the bytes but its count does not grow: say so.
    assert_eq!(
        r.stdout.contains("the CRNG was already ready"),
        ready,
        "{}",
        r.explain()
    );

    // A key the server does not know: 77 and what to check.
    srv.set_authorized_keys("");
    run(client_cmd(&srv, &key, &dir).args(["--once", "64", "127.0.0.1"]))
        .code(77)
        .one_line_error()
        .stderr_has("authorized_keys for user root");
}

/// The status file off tmpfs: the warning's advice fits the machine. With a
/// tmpfs /run (a private mount namespace mounts one) it says to choose a file
/// under /run; with a /run that is a plain directory (a bind mount of one
/// under /tmp) it says that /run is no tmpfs either and what to do instead.
#[test]
fn status_file_warning_fits_the_machine() {
    need_root();
    let dir = TempDir::new("status-warning");
    let key = dropbear_key(&dir, "id", "ed25519");
    let plain = dir.join("plain-run");
    std::fs::create_dir(&plain).unwrap();
    for (mount, want) in [
        (
            "mount -t tmpfs es-run /run".to_string(),
            "choose a file under /run",
        ),
        (
            format!("mount --bind {} /run", plain.display()),
            "/run is not tmpfs here either: give --status-file on a tmpfs mount",
        ),
    ] {
        let script = format!("{mount} && exec \"$@\"");
        let port = free_port().to_string();
        let mut c = in_mount_namespace(&script);
        c.arg(bin())
            .args([
                "client",
                "--ssh",
                "dbclient",
                "-p",
                &port,
                "-i",
                &key.private_str(),
            ])
            .args([
                "--host-key",
                &key.type_and_key(),
                "--status-file",
                &dir.s("status"),
            ])
            .args(["--runtime-dir", &dir.s("rt"), "--seed-dir", &dir.s("seed")])
            .arg("127.0.0.1");
        // It warns as it starts, then retries the port nothing listens on
        // until it is killed.
        let mut d = Daemon::spawn_at(&mut c, dir.join("log"), dir.join("status"));
        d.wait_for("the tmpfs warning", Duration::from_secs(30), |_, log| {
            log.contains("is not on tmpfs")
        });
        let log = d.log();
        drop(d);
        let line = log
            .lines()
            .find(|l| l.contains("is not on tmpfs"))
            .unwrap_or_default()
            .to_string();
        assert!(line.starts_with("warning: status file "), "{line}");
        assert!(line.contains(want), "{mount}: {line}");
    }
}
