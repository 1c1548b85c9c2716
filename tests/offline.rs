//! Tests that need no SSH server: the binary's command line, the server's
//! request handling run as a plain process (as sshd would run it), sink,
//! seeds and status. Root is needed where the kernel is touched.

use crate::util::*;
use std::process::Command;

fn server(args: &[&str], request: Option<&str>) -> Run {
    let mut c = Command::new(bin());
    c.arg("server")
        .args(args)
        .env_remove("SSH_ORIGINAL_COMMAND")
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT");
    if let Some(r) = request {
        c.env("SSH_ORIGINAL_COMMAND", r);
    }
    run(&mut c)
}

#[test]
fn version_and_help() {
    run(Command::new(bin()).arg("--version"))
        .ok()
        .stdout_has(env!("CARGO_PKG_VERSION"));
    for sub in [
        "server",
        "client",
        "sink",
        "seed",
        "status",
        "keygen",
        "authorize",
        "hostkey",
    ] {
        run(Command::new(bin()).args([sub, "--help"]))
            .ok()
            .stdout_has("Usage:");
    }
    run(Command::new(bin()).arg("--bogus")).code(64);
    run(&mut Command::new(bin())).code(64).one_line_error();
}

/// The short forms people type first: `-V` is `--version`, `-h` is
/// `--help` (top level and after a subcommand or its arguments), and
/// `seed --help` explains both actions.
#[test]
fn short_help_and_version() {
    let long = run(Command::new(bin()).arg("--version"));
    let short = run(Command::new(bin()).arg("-V"));
    short.ok();
    assert_eq!(short.stdout, long.stdout);
    run(Command::new(bin()).arg("-h"))
        .ok()
        .stdout_has("Usage: entropyservice")
        .stdout_has("Commands:");
    run(Command::new(bin()).args(["client", "-h"]))
        .ok()
        .stdout_has("Usage: entropyservice client")
        .stdout_has("1 to 4096");
    run(Command::new(bin()).args(["authorize", "--client", "x", "-h"]))
        .ok()
        .stdout_has("--replace");
    run(Command::new(bin()).args(["seed", "load", "-h"]))
        .ok()
        .stdout_has("seed load: at boot")
        .stdout_has("seed save:");
    // `-h` as the value of an option stays a value (a status file that
    // does not exist): the status itself, not the help.
    run(Command::new(bin()).args(["status", "--status-file", "-h", "--json"]))
        .ok()
        .stdout_has("\"kernel\"");
}

/// The help texts are written by hand (src/usage.rs): each command's `--help`
/// lists exactly the options its table in `cli::COMMANDS` (the one the
/// parser reads) holds, with the same short aliases, and a value word
/// (`--port, -p PORT`) exactly for the options that take one.
#[test]
fn help_lists_exactly_the_accepted_options() {
    use entropyservice::cli::{Kind, COMMANDS};
    let mut checked = 0;
    for c in COMMANDS {
        let r = run(Command::new(bin()).args([c.name, "--help"]));
        r.ok();
        let mut listed: Vec<(String, String, bool)> = Vec::new();
        for l in r.stdout.lines().map(str::trim_start) {
            if !l.starts_with("--") || l.starts_with("--help") {
                continue;
            }
            // "--identity, -i FILE  text", "--agent  text"
            let mut w = l.split_whitespace().map(|w| w.trim_end_matches(','));
            let long = w.next().unwrap().to_string();
            let mut short = String::new();
            let mut next = w.next().unwrap_or("");
            if next.starts_with('-') {
                short = next.to_string();
                next = w.next().unwrap_or("");
            }
            let value = !next.is_empty()
                && next
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || "-_[]<>.".contains(c));
            listed.push((long, short, value));
        }
        let mut want: Vec<(String, String, bool)> = c
            .opts
            .iter()
            .map(|o| {
                (
                    o.long.to_string(),
                    o.short.to_string(),
                    o.kind != Kind::Switch,
                )
            })
            .collect();
        listed.sort();
        want.sort();
        assert_eq!(listed, want, "`{} --help` vs its table in cli.rs", c.name);
        checked += 1;
    }
    assert_eq!(checked, 8, "expected eight commands");
}

/// Usage errors are one line, name what was wrong, suggest the closest
/// option or command for a typo, and say where the help is; exit 64.
#[test]
fn usage_errors_are_one_line_with_a_suggestion() {
    run(Command::new(bin()).args(["authorize"]))
        .code(64)
        .one_line_error()
        .stderr_has("not provided: key")
        .stderr_has("--client")
        .stderr_has("see: entropyservice authorize --help");
    run(Command::new(bin()).args(["authorize", "--clinet", "x", "k"]))
        .code(64)
        .one_line_error()
        .stderr_has("Unrecognized argument: --clinet (did you mean --client?)");
    run(Command::new(bin()).args(["status", "--jsno"]))
        .code(64)
        .one_line_error()
        .stderr_has("(did you mean --json?)");
    run(Command::new(bin()).arg("clinet"))
        .code(64)
        .one_line_error()
        .stderr_has("(did you mean client?)")
        .stderr_has("see: entropyservice --help");
    let far = run(Command::new(bin()).args(["client", "--frobnicate"]));
    far.code(64)
        .one_line_error()
        .stderr_has("see: entropyservice client --help");
    assert!(!far.stderr.contains("did you mean"), "{}", far.explain());
    run(Command::new(bin()).args(["client", "--once"]))
        .code(64)
        .one_line_error()
        .stderr_has("--once");
}

#[test]
fn get_sends_exactly_n_bytes() {
    let r = server(&[], Some("get 1000"));
    r.ok();
    assert_eq!(r.raw_stdout.len(), 1000, "{}", r.explain());
}

#[test]
fn bad_requests_are_refused_with_nothing_on_stdout() {
    for req in [
        "get 99999999999",
        "get -1",
        "get 10; rm -rf /",
        "get",
        "get 0",
        "sh",
        "get 1 2",
        "cat /etc/shadow",
        &"x".repeat(100),
    ] {
        let r = server(&["--max-bytes", "4096"], Some(req));
        r.code(65)
            .one_line_error()
            .stderr_has("bad request")
            .no_stdout();
    }
}

#[test]
fn stream_honours_max_bytes_and_hangup_is_quiet() {
    let r = server(&["--max-bytes", "5000"], None);
    r.ok();
    assert_eq!(r.raw_stdout.len(), 5000);
    // Reader that goes away: the server must exit 0 quietly.
    let mut child = spawn_piped(
        Command::new(bin())
            .args(["server"])
            .env("SSH_ORIGINAL_COMMAND", "cat /dev/random"),
    );
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 100];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    drop(out);
    let r = wait_run(&mut child, "server", std::time::Duration::from_secs(10));
    r.ok();
    assert!(r.stderr.is_empty(), "{}", r.explain());
}

#[test]
fn rate_limit_paces_output() {
    // 2000 bytes at 1000 B/s with a 250-byte burst: about 1.75 s or more.
    let t = std::time::Instant::now();
    let r = server(&["--rate", "1000"], Some("get 2000"));
    r.ok();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.raw_stdout.len(), 2000);
    assert!(secs > 1.6, "2000 bytes at 1000 B/s took only {secs:.2} s");
}

#[test]
fn bad_options_are_usage_errors() {
    server(&["--max-time", "soon"], None)
        .code(64)
        .one_line_error();
    server(&["--client", "../x"], None)
        .code(64)
        .one_line_error();
    server(&["--allow-from", "10.0.0.0/99"], None)
        .code(64)
        .one_line_error();
    server(&["--source", "/nonexistent/rng"], None)
        .code(74)
        .one_line_error();
}

#[test]
fn sink_credits_good_input_and_refuses_bad() {
    need_root();
    let sink = |input: &[u8], args: &[&str]| {
        let r = run_input(
            Command::new(bin()).arg("sink").args(args),
            input,
            std::time::Duration::from_secs(40),
        );
        (r.status, r.stdout, r.stderr)
    };
    let mut good = vec![0u8; 512];
    entropyservice::sys::getrandom(&mut good, 0).unwrap();
    let (code, out, err) = sink(&good, &[]);
    if std::env::var_os("ENTROPYSERVICE_QEMU_USER").is_some() && !cfg!(target_arch = "x86_64") {
        // qemu-user does not translate RNDADDENTROPY: the sink must say so
        // and credit nothing (the real ioctl is checked in tests/vm).
        assert_eq!(code, Some(71), "{err}");
        assert!(err.contains("RNDADDENTROPY") && out.is_empty(), "{err}");
    } else {
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("received 512 bytes, credited 1024 bits"),
            "{out}"
        );
    }
    let (code, out, err) = sink(&[0x41; 512], &[]);
    assert_eq!(code, Some(65), "{err}");
    assert!(err.contains("health tests") && out.is_empty(), "{err}");
    let (code, _, err) = sink(&good[..16], &[]);
    assert_eq!(code, Some(65));
    assert!(err.contains("fewer than --min-bytes"), "{err}");
    let big = vec![1u8; 5000];
    let (code, _, err) = sink(&big, &["--max-bytes", "4096"]);
    assert_eq!(code, Some(65));
    assert!(err.contains("larger than --max-bytes"), "{err}");
}

#[test]
fn status_prints_kernel_state() {
    let dir = TempDir::new("status");
    let r = run(Command::new(bin()).args(["status", "--status-file", &dir.s("none")]));
    r.ok()
        .stdout_has("crng_ready: yes")
        .stdout_has("poolsize: ")
        .stdout_has("client: not running");
    let r = run(Command::new(bin()).args(["status", "--json", "--status-file", &dir.s("none")]));
    r.ok()
        .stdout_has("\"crng_ready\":true")
        .stdout_has("\"client\":null");
}

#[test]
fn non_utf8_request_is_refused_not_streamed() {
    use std::os::unix::ffi::OsStrExt;
    let mut c = Command::new(bin());
    c.arg("server")
        .env(
            "SSH_ORIGINAL_COMMAND",
            std::ffi::OsStr::from_bytes(b"get 10\xff"),
        )
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT");
    let r = run(&mut c);
    r.code(65)
        .one_line_error()
        .stderr_has("bad request")
        .no_stdout();
}
