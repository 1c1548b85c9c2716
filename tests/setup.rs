//! The setup commands with the real tools: `keygen` through dropbearkey and
//! ssh-keygen, `authorize` against real Dropbear and OpenSSH servers (the
//! line it writes must work, and must stop everything but the forced
//! command), `hostkey` against keys the real tools made.
//!
//! Needs: root (servers, /run lock dir), dropbear, dropbearkey, dbclient,
//! sshd, ssh, ssh-keygen, unshare. A missing tool fails the test.

use crate::util::*;
use entropyservice::hostkey::PublicKey;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn es(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    c
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// `TYPE BASE64` of a public key line.
fn key_of(line: &str) -> String {
    PublicKey::parse(line)
        .unwrap_or_else(|e| panic!("not a public key line: {line:?}: {}", e.as_str()))
        .line()
}

/// `entropyservice keygen --tool TOOL --out OUT ARGS`.
fn keygen(tool: &str, out: &Path, args: &[&str]) -> Run {
    run(es(&["keygen", "--tool", tool, "--out"]).arg(out).args(args))
}

/// The public key `tool` (dropbearkey or ssh-keygen) reads from the
/// private key file `key`.
fn tool_view(tool: &str, key: &Path) -> String {
    first_key(
        &run(Command::new(need(tool)).args(["-y", "-f"]).arg(key))
            .ok()
            .stdout,
    )
}

/// The first line of the output that parses as a public key.
fn first_key(text: &str) -> String {
    text.lines()
        .find_map(|l| PublicKey::parse(l).ok())
        .map(|k| k.line())
        .unwrap_or_else(|| panic!("no key line in {text:?}"))
}

// ------------------------------------------------------------------ keygen

/// keygen with the flavour's tool (dropbearkey, ssh-keygen): a 0600 key the
/// tool itself reads back, the public line on stdout and in FILE.pub, a
/// paste-ready authorize line; a second run refuses and leaves the key byte
/// for byte.
fn keygen_with(flavor: Flavor) {
    let tool = match flavor {
        Flavor::Dropbear => "dropbearkey",
        Flavor::OpenSsh => "ssh-keygen",
    };
    let t = TempDir::new("keygen");
    let out = t.join("etc/entropyservice/id_client");
    let r = keygen(tool, &out, &["--client", "r1"]);
    r.ok();
    assert_eq!(mode(&out), 0o600, "key mode");
    assert_eq!(mode(out.parent().unwrap()), 0o700, "key directory mode");
    let printed = r.stdout.lines().next().unwrap_or("");
    let printed_key = key_of(printed);
    // What the tool says the key is.
    let from_tool = tool_view(tool, &out);
    assert_eq!(
        printed_key,
        from_tool,
        "printed key differs from the key file\n{}",
        r.explain()
    );
    assert!(
        printed_key.starts_with("ssh-ed25519 "),
        "default type must be ed25519\n{}",
        r.explain()
    );
    let pub_file = std::fs::read_to_string(out.with_extension("pub")).unwrap();
    assert_eq!(key_of(pub_file.trim()), printed_key);
    r.stdout_has(&format!(
        "entropyservice authorize --client r1 '{printed_key}'"
    ));

    let before = read(&out);
    let again = keygen(tool, &out, &[]);
    again.code(73).one_line_error().stderr_has("already exists");
    assert_eq!(read(&out), before, "the existing key was changed");
    assert!(
        again.stdout.is_empty(),
        "a refused keygen printed a key\n{}",
        again.explain()
    );
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "expected only id_client and id_client.pub, found {names:?}"
    );
}

each_flavor!(keygen_with);

/// A dropbearkey built without ed25519 (small OpenWrt images): keygen falls
/// back to RSA 2048 unless ed25519 was asked for explicitly.
#[test]
fn keygen_falls_back_to_rsa_when_ed25519_is_missing() {
    let t = TempDir::new("keygen-rsa");
    let fake = t.join("bin/dropbearkey");
    std::fs::create_dir(t.join("bin")).unwrap();
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = ed25519 ] && {{ echo \"Unknown key type 'ed25519'\" >&2; exit 1; }}; done\nexec {} \"$@\"\n",
            need("dropbearkey").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = t.join("id");
    let fake = fake.to_string_lossy();
    let r = keygen(&fake, &out, &[]);
    r.ok().stderr_has("RSA 2048");
    let k = first_key(&r.stdout);
    assert!(k.starts_with("ssh-rsa "), "{}", r.explain());
    assert_eq!(tool_view("dropbearkey", &out), k);
    let bits = run(Command::new(need("ssh-keygen"))
        .arg("-lf")
        .arg(t.join("id.pub")))
    .ok()
    .stdout
    .clone();
    assert!(bits.starts_with("2048 "), "expected a 2048-bit key: {bits}");

    let out2 = t.join("id2");
    let r = keygen(&fake, &out2, &["--type", "ed25519"]);
    r.code(73).one_line_error().stderr_has("Unknown key type");
    assert!(!out2.exists() && !t.join("id2.pub").exists());
}

#[test]
fn keygen_usage_errors() {
    let t = TempDir::new("keygen-usage");
    let out = t.s("id");
    run(&mut es(&["keygen", "--type", "dsa", "--out", &out]))
        .code(64)
        .one_line_error();
    run(&mut es(&["keygen", "--tool", "puttygen", "--out", &out]))
        .code(64)
        .one_line_error();
    run(&mut es(&["keygen", "--client", "../x", "--out", &out]))
        .code(64)
        .one_line_error();
    keygen("/nonexistent/dropbearkey", Path::new(&out), &[])
        .code(69)
        .one_line_error();
    assert!(!t.join("id").exists());
}

// ------------------------------------------------------------------ authorize

/// Lines the administrator wrote by hand: a comment, a key, a blank line, a
/// restricted key, and no newline at the end of the last line.
fn hand_written(t: &TempDir) -> String {
    let a = openssh_key(t, "other_a", "ed25519");
    let b = openssh_key(t, "other_b", "ecdsa");
    format!(
        "# keys added by hand\n{}\n\n  no-pty,command=\"echo hi\" {}",
        a.public_line, b.public_line
    )
}

/// Appends `line` to a file of `before`: what authorize must produce.
fn appended(before: &str, line: &str) -> Vec<u8> {
    let mut v = before.as_bytes().to_vec();
    if !before.is_empty() && !before.ends_with('\n') {
        v.push(b'\n');
    }
    v.extend_from_slice(line.as_bytes());
    v
}

/// The raw client program of the server's family (`ssh_client`, HOME in
/// `home`), with `args` before the destination and `remote` (if any) after it.
fn raw_client(
    srv: &SshServer,
    key: &Keypair,
    home: &TempDir,
    args: &[&str],
    remote: Option<&str>,
) -> Command {
    let mut c = ssh_client(srv.flavor, srv, key, home);
    if srv.flavor == Flavor::OpenSsh {
        c.args(["-o", "IdentityAgent=none"]);
    }
    c.args(args).arg("root@127.0.0.1");
    if let Some(r) = remote {
        c.arg(r);
    }
    c
}

fn run_raw(c: &mut Command) -> Run {
    run_limit(c, Duration::from_secs(30))
}

/// What a pty request did to `get 4096`. dbclient asks for a pty only with
/// a local terminal, so it runs under `script` (a local pty, which dbclient
/// puts in raw mode). A remote pty turns every \n of the random bytes into
/// \r\n; without one the bytes pass untouched. `key` is Dropbear format.
struct PtyProbe {
    run: Run,
    newlines: usize,
    translated: usize,
}

fn pty_probe(srv: &SshServer, dropbear_key: &Path, home: &TempDir, remote: &str) -> PtyProbe {
    let home_dir = pinned_home(srv, home);
    let inner = format!(
        "{} -t -p {} -i {} root@127.0.0.1 '{remote}'",
        need("dbclient").display(),
        srv.port,
        dropbear_key.display()
    );
    let mut c = Command::new(need("script"));
    c.args(["-q", "-e", "-c", &inner, "/dev/null"])
        .env("HOME", &home_dir)
        .stdin(Stdio::null());
    let run = run_raw(&mut c);
    let out = &run.raw_stdout;
    let newlines = out.iter().filter(|&&b| b == b'\n').count();
    let translated = out.windows(2).filter(|w| w == b"\r\n").count();
    PtyProbe {
        run,
        newlines,
        translated,
    }
}

/// Local forwarding through the server to a listener of ours: does a
/// connection to the forwarded port reach the listener?
fn forwarding_reaches_target(srv: &SshServer, key: &Keypair, home: &TempDir) -> bool {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    target.set_nonblocking(true).unwrap();
    let tport = target.local_addr().unwrap().port();
    let lport = free_port();
    let spec = format!("{lport}:127.0.0.1:{tport}");
    let mut c = raw_client(srv, key, home, &["-N", "-L", &spec], None);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stop = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
        let mut e = String::new();
        let _ = child.stderr.take().map(|mut s| s.read_to_string(&mut e));
        e
    };
    let start = Instant::now();
    let mut conn = loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", lport)) {
            break s;
        }
        if let Ok(Some(st)) = child.try_wait() {
            let e = stop(&mut child);
            panic!(
                "{:?} client for -L exited with {st} before listening: {e}",
                srv.flavor
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{:?} client never listened on {lport}: {}",
            srv.flavor,
            stop(&mut child)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = conn.write_all(b"hello\n");
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let reached = loop {
        if target.accept().is_ok() {
            break true;
        }
        let mut b = [0u8; 16];
        match conn.read(&mut b) {
            // Closed or reset by the client: the server refused the channel.
            Ok(0) => break target.accept().is_ok(),
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break target.accept().is_ok()
            }
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(15) {
            stop(&mut child);
            panic!(
                "{:?}: the forwarded connection neither reached the target nor was closed",
                srv.flavor
            );
        }
    };
    stop(&mut child);
    reached
}

/// The whole round trip for one server family: authorize writes the line
/// next to hand-written ones; the real client fetches through it; a raw SSH
/// client can neither run another command, nor get a pty, nor forward.
fn authorize_round_trip(flavor: Flavor, compat: bool) {
    let t = TempDir::new("authorize");
    let before = hand_written(&t);
    let srv = SshServer::start(flavor, &before);

    // The client's key, made by keygen in the format its SSH client reads.
    let (tool, client_name) = match flavor {
        Flavor::Dropbear => ("dropbearkey", "setup-db"),
        Flavor::OpenSsh => ("ssh-keygen", "setup-os"),
    };
    let key_path = t.join("client/id_client");
    let kg = keygen(tool, &key_path, &["--client", client_name]);
    kg.ok();
    let key = Keypair {
        private: key_path.clone(),
        public_line: kg.stdout.lines().next().unwrap().to_string(),
    };
    // The pty probe runs dbclient, which reads Dropbear-format keys.
    let dropbear_key = match flavor {
        Flavor::Dropbear => key_path.clone(),
        Flavor::OpenSsh => {
            let p = t.join("client/id_dropbear");
            run(Command::new(need("dropbearconvert"))
                .args(["openssh", "dropbear"])
                .arg(&key_path)
                .arg(&p))
            .ok();
            p
        }
    };

    // Controls: with a bare command= line the same probes do get a pty and
    // do forward, so the checks below can tell the difference.
    let home = TempDir::new("home");
    srv.set_authorized_keys(&format!(
        "command=\"{}\" {}\n",
        server_command("--client ctl"),
        key.type_and_key()
    ));
    let p = pty_probe(&srv, &dropbear_key, &home, "get 4096");
    assert!(
        p.newlines > 0 && p.translated == p.newlines,
        "control: no pty without restrictions, so the pty probe proves nothing\n{}",
        p.run.explain()
    );
    assert!(forwarding_reaches_target(&srv, &key, &home), "control: forwarding fails even without restrictions, so the forwarding probe proves nothing");
    srv.set_authorized_keys(&before);

    // Dropbear's line carries an address check, to show it lands in the
    // forced command (Dropbear rejects a line with from=).
    let ak = &srv.authorized_keys;
    let mut args = vec!["--client", client_name, "--max-sessions", "2"];
    if flavor == Flavor::Dropbear {
        args.extend(["--allow-from", "127.0.0.0/8, ::1"]);
    }
    if compat {
        args.push("--compat");
    }
    // Dropbear's run detects the servers (--flavor auto); OpenSSH's names
    // its server, which with --compat adds OpenSSH's no-user-rc.
    if flavor == Flavor::OpenSsh {
        args.extend(["--flavor", "openssh"]);
    }
    // The .pub file for Dropbear, the pasted line for OpenSSH.
    let key_arg = match flavor {
        Flavor::Dropbear => key_path
            .with_extension("pub")
            .to_string_lossy()
            .into_owned(),
        Flavor::OpenSsh => key.public_line.clone(),
    };
    args.push(&key_arg);

    let mode_before = mode(&srv.authorized_keys);
    // A dry run first: prints the line, writes nothing.
    let dry = run(&mut authorize(ak, &[&["--dry-run"][..], &args].concat()));
    dry.ok();
    assert_eq!(
        read(&srv.authorized_keys),
        before.as_bytes(),
        "--dry-run changed the file"
    );

    let r = run(&mut authorize(ak, &args));
    r.ok();
    let options = match (compat, flavor) {
        (false, _) => "restrict",
        (true, Flavor::Dropbear) => {
            "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding"
        }
        (true, Flavor::OpenSsh) => {
            "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc"
        }
    };
    let allow = if flavor == Flavor::Dropbear {
        " --allow-from 127.0.0.0/8,::1"
    } else {
        ""
    };
    let line = format!(
        "command=\"{} server --client {client_name} --max-sessions 2{allow}\",{options} {} entropyservice:{client_name}\n",
        bin(),
        key.type_and_key()
    );
    assert_eq!(
        r.stdout,
        line,
        "authorize printed another line\n{}",
        r.explain()
    );
    assert_eq!(
        dry.stdout, line,
        "--dry-run printed another line than the real run"
    );
    assert!(!line.contains("from="), "never from=: {line}");
    let after = read(&srv.authorized_keys);
    assert_eq!(
        after,
        appended(&before, &line),
        "other lines must stay byte for byte\n{}",
        String::from_utf8_lossy(&after)
    );
    assert_eq!(mode(&srv.authorized_keys), mode_before, "mode kept");

    // The real client fetches through the forced command.
    let dir = TempDir::new("client");
    let got = run(client_cmd(&srv, &key, &dir).args(["--once", "64", "127.0.0.1"]));
    got.ok().stdout_has("received 64 bytes");
    let plain = run_raw(&mut raw_client(&srv, &key, &home, &["-T"], Some("get 100")));
    plain.ok();
    assert_eq!(plain.raw_stdout.len(), 100, "{}", plain.explain());

    // Another command: refused by the forced command, nothing on stdout.
    for cmd in ["sh -c id", "cat /etc/passwd", "get 10; sh"] {
        let r = run_raw(&mut raw_client(&srv, &key, &home, &["-T"], Some(cmd)));
        r.failed().no_stdout().stderr_has("bad request");
    }
    // A pty request: the forced command still runs, without a pty.
    let p = pty_probe(&srv, &dropbear_key, &home, "get 4096");
    assert_eq!(p.run.status, Some(0), "{}", p.run.explain());
    assert!(
        p.run.raw_stdout.len() >= 4096 && p.newlines > p.translated,
        "the session got a pty (output was translated)\n{}",
        p.run.explain()
    );
    if flavor == Flavor::OpenSsh {
        // ssh -tt gives up when the server refuses the pty.
        let r = run_raw(&mut raw_client(&srv, &key, &home, &["-tt"], Some("sh")));
        r.failed()
            .no_stdout()
            .stderr_has("PTY allocation request failed");
    }
    // A shell with a pty request: refused by the forced command, no prompt.
    // (Under `script` the output holds stderr too.)
    let p = pty_probe(&srv, &dropbear_key, &home, "sh -i");
    assert!(
        p.run.status != Some(0),
        "a shell request was not refused\n{}",
        p.run.explain()
    );
    assert!(
        p.run.stdout.contains("bad request")
            && !p.run.stdout.contains("# ")
            && !p.run.stdout.contains("$ "),
        "{}",
        p.run.explain()
    );
    // Local forwarding: refused by the server.
    assert!(
        !forwarding_reaches_target(&srv, &key, &home),
        "{flavor:?}: port forwarding went through the authorized line {line}"
    );

    // The same key again: refused, file untouched.
    let dup = run(&mut authorize(ak, &args));
    dup.code(65).one_line_error().stderr_has("already in");
    assert_eq!(
        read(&srv.authorized_keys),
        after,
        "a refused duplicate changed the file"
    );
    // Also when only the comment and options differ.
    let dup2 = run(&mut authorize(
        ak,
        &["--client", "other", &key.type_and_key()],
    ));
    dup2.code(65).stderr_has("line 5");
    assert_eq!(read(&srv.authorized_keys), after);
}

each_flavor!(authorize_round_trip = authorize_round_trip(false));
each_flavor!(authorize_round_trip_explicit_options = authorize_round_trip(true));

/// A new ~/.ssh (0700) and authorized_keys (0600) from $HOME; the key from a
/// .pub file; --flavor openssh --compat adds no-user-rc.
#[test]
fn authorize_creates_ssh_dir_and_file() {
    let t = TempDir::new("authorize-new");
    let key = openssh_key(&t, "k", "ed25519");
    let home = t.join("home");
    std::fs::create_dir(&home).unwrap();
    let pub_file = t.s("k.pub");
    let dry = run(es(&[
        "authorize",
        "--client",
        "n1",
        "--dry-run",
        "--binary",
        bin(),
        &pub_file,
    ])
    .env("HOME", &home));
    dry.ok();
    assert!(!home.join(".ssh").exists(), "--dry-run created ~/.ssh");
    let r = run(es(&[
        "authorize",
        "--client",
        "n1",
        "--flavor",
        "openssh",
        "--compat",
        "--rate",
        "256",
        "--max-bytes",
        "4096",
        "--max-time",
        "10m",
        "--binary",
        bin(),
        &pub_file,
    ])
    .env("HOME", &home));
    r.ok();
    let ak = home.join(".ssh/authorized_keys");
    assert_eq!(mode(&home.join(".ssh")), 0o700);
    assert_eq!(mode(&ak), 0o600);
    let expected = format!(
        "command=\"{} server --client n1 --rate 256 --max-bytes 4096 --max-time 10m\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc {} entropyservice:n1\n",
        bin(),
        key.type_and_key()
    );
    assert_eq!(String::from_utf8(read(&ak)).unwrap(), expected);
    assert_eq!(r.stdout, expected);
}

/// An existing file keeps its mode and owner; a symlink is refused.
#[test]
fn authorize_keeps_mode_and_refuses_symlinks() {
    let t = TempDir::new("authorize-mode");
    let key = openssh_key(&t, "k", "ed25519");
    let ak = t.join("authorized_keys");
    std::fs::write(&ak, "# only a comment, no newline").unwrap();
    std::fs::set_permissions(&ak, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&ak, Some(65534), Some(65534)).unwrap();
    let ino = std::fs::metadata(&ak).unwrap().ino();
    run(&mut authorize(&ak, &["--client", "m1", &key.public_line])).ok();
    let m = std::fs::metadata(&ak).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    assert_eq!((m.uid(), m.gid()), (65534, 65534), "owner kept");
    assert_ne!(
        m.ino(),
        ino,
        "the file was replaced by rename, not rewritten in place"
    );
    let text = String::from_utf8(read(&ak)).unwrap();
    assert!(
        text.starts_with("# only a comment, no newline\ncommand=\""),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2);
    let leftovers: Vec<_> = std::fs::read_dir(&t.path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");

    let link = t.join("link_keys");
    std::os::unix::fs::symlink(&ak, &link).unwrap();
    let before = read(&ak);
    let other = openssh_key(&t, "k2", "ed25519");
    run(&mut authorize(
        &link,
        &["--client", "m2", &other.public_line],
    ))
    .code(73)
    .one_line_error()
    .stderr_has("symbolic link");
    assert_eq!(read(&ak), before);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// `authorize` once with a wrong --binary, then again with the right one:
/// refused (65, pointing at --replace), file untouched; `--replace --dry-run`
/// prints the new line and changes nothing; `--replace` rewrites that key's
/// line where it stands (every other byte kept, mode kept, renamed into
/// place, duplicates of the key dropped) and the forced command then works
/// through a real Dropbear.
#[test]
fn authorize_replace_rewrites_the_key_line() {
    let (srv, key, t) = forced_server(Flavor::Dropbear, "false");
    let ak = srv.authorized_keys.to_string_lossy().into_owned();
    let others = hand_written(&t);
    let stale = forced_line("/usr/bin/entropyservice server --client r1", &key);
    // The key's line in the middle, a second copy of it at the end.
    let start = format!("# by hand\n{stale}{others}\n{}", key.public_line);
    srv.set_authorized_keys(&start);
    std::fs::set_permissions(&srv.authorized_keys, std::fs::Permissions::from_mode(0o640)).unwrap();
    let ino = std::fs::metadata(&srv.authorized_keys).unwrap().ino();
    let cmd = |extra: &[&str]| {
        let rest = ["--flavor", "dropbear", "--client", "r1", &key.public_line];
        authorize(&ak, &[extra, &rest[..]].concat())
    };
    run(&mut cmd(&[]))
        .code(65)
        .one_line_error()
        .stderr_has("already in")
        .stderr_has("(line 2)")
        .stderr_has("pass --replace");
    assert_eq!(read(&srv.authorized_keys), start.as_bytes());

    let dry = run(&mut cmd(&["--replace", "--dry-run"]));
    dry.ok();
    assert_eq!(
        read(&srv.authorized_keys),
        start.as_bytes(),
        "--dry-run wrote"
    );

    let r = run(&mut cmd(&["--replace"]));
    r.ok().stderr_has("rewrote the line of the key");
    let line = r.stdout.clone();
    assert_eq!(dry.stdout, line);
    assert!(
        line.starts_with(&format!("command=\"{} server --client r1\",", bin())),
        "{line}"
    );
    let want = format!("# by hand\n{line}{others}\n");
    assert_eq!(
        String::from_utf8(read(&srv.authorized_keys)).unwrap(),
        want,
        "only the key's line may change (its later copy dropped)"
    );
    let m = std::fs::metadata(&srv.authorized_keys).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o640, "mode kept");
    assert_ne!(m.ino(), ino, "replaced by rename, not rewritten in place");

    // The rewritten line is the one the server now runs.
    let dir = TempDir::new("replace-client");
    run(client_cmd(&srv, &key, &dir).args(["--once", "64", "127.0.0.1"]))
        .ok()
        .stdout_has("received 64 bytes");

    // --replace for a key not in the file adds it, like a plain run.
    let other = openssh_key(&t, "new", "ed25519");
    let r = run(&mut authorize(
        &ak,
        &["--replace", "--client", "r2", &other.public_line],
    ));
    r.ok();
    assert_eq!(
        read(&srv.authorized_keys),
        appended(&want, &r.stdout),
        "a new key is appended"
    );
}

/// Concurrent runs on one file: the directory lock makes them take turns,
/// so no line is lost.
#[test]
fn authorize_concurrent_runs_keep_every_line() {
    let t = TempDir::new("authorize-race");
    let ak = t.s("authorized_keys");
    std::fs::write(&ak, "# start\n").unwrap();
    let keys: Vec<Keypair> = (0..8)
        .map(|i| openssh_key(&t, &format!("k{i}"), "ed25519"))
        .collect();
    let children: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let client = format!("c{i}");
            spawn_piped(authorize(&ak, &["--client", &client, &k.public_line]).stdin(Stdio::null()))
        })
        .collect();
    for mut c in children {
        wait_run(&mut c, "authorize", Duration::from_secs(30)).ok();
    }
    let text = String::from_utf8(read(Path::new(&ak))).unwrap();
    assert!(text.starts_with("# start\n"));
    assert_eq!(text.lines().count(), 9, "{text}");
    for k in &keys {
        assert!(
            text.contains(&k.type_and_key()),
            "lost {}\n{text}",
            k.type_and_key()
        );
    }
}

#[test]
fn authorize_validates_its_input() {
    let t = TempDir::new("authorize-bad");
    let key = openssh_key(&t, "k", "ed25519");
    let k = key.public_line.as_str();
    let ak = t.s("authorized_keys");
    let base = |extra: &[&str], key: &str| -> Run { run(authorize(&ak, extra).arg(key)) };
    base(&["--client", "../etc"], k).code(64).one_line_error();
    base(&["--client", "a b"], k).code(64).one_line_error();
    base(&["--client", "c", "--allow-from", "10.0.0.0/33"], k)
        .code(64)
        .one_line_error();
    base(&["--client", "c", "--allow-from", "10.0.0.1 rm"], k)
        .code(64)
        .one_line_error();
    base(&["--client", "c", "--max-time", "forever"], k)
        .code(64)
        .one_line_error();
    base(&["--client", "c", "--rate", "-1"], k).code(64);
    base(&["--client", "c", "--compat", "--flavor", "putty"], k)
        .code(64)
        .one_line_error();
    for binary in [
        "entropyservice",
        "/usr/bin/entropy service",
        "/usr/bin/x\",permitopen=\"*:*",
        "/tmp/$(id)",
    ] {
        run(&mut es(&[
            "authorize",
            "--authorized-keys",
            &ak,
            "--client",
            "c",
            "--binary",
            binary,
            k,
        ]))
        .code(64)
        .one_line_error()
        .stderr_has("--binary");
    }
    base(&["--client", "c"], "ssh-ed25519 AAAA")
        .code(65)
        .one_line_error();
    base(&["--client", "c"], "ssh-ed25519 not*base64")
        .code(65)
        .one_line_error();
    base(&["--client", "c"], &t.s("missing.pub"))
        .code(66)
        .one_line_error();
    let two = t.join("two.pub");
    std::fs::write(
        &two,
        format!(
            "{}\n{}\n",
            key.public_line,
            openssh_key(&t, "k2", "ed25519").public_line
        ),
    )
    .unwrap();
    base(&["--client", "c"], &two.to_string_lossy())
        .code(65)
        .one_line_error()
        .stderr_has("more than one");
    assert!(
        !Path::new(&ak).exists(),
        "a refused authorize created the file"
    );
}

// ------------------------------------------------------------------ hostkey

/// `ssh-keygen -lf FILE` fingerprint.
fn ssh_keygen_fingerprint(pub_file: &Path) -> String {
    let r = run(Command::new(need("ssh-keygen")).arg("-lf").arg(pub_file));
    r.ok();
    r.stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint\n{}", r.explain()))
        .to_string()
}

#[test]
fn hostkey_prints_dropbear_and_openssh_keys() {
    let t = TempDir::new("hostkey");
    std::fs::create_dir(t.join("dropbear")).unwrap();
    std::fs::create_dir(t.join("ssh")).unwrap();
    let db_ed = dropbear_key(&t, "dropbear/dropbear_ed25519_host_key", "ed25519");
    let db_ec = dropbear_key(&t, "dropbear/dropbear_ecdsa_host_key", "ecdsa");
    let os_ed = openssh_key(&t, "ssh/ssh_host_ed25519_key", "ed25519");
    let os_ec = openssh_key(&t, "ssh/ssh_host_ecdsa_key", "ecdsa");
    // Not host keys: ignored.
    std::fs::write(
        t.join("dropbear/authorized_keys"),
        format!("{}\n", os_ed.public_line),
    )
    .unwrap();
    std::fs::write(t.join("ssh/ssh_config"), "Host *\n").unwrap();

    let r = run(&mut es(&[
        "hostkey",
        "--dropbear-dir",
        &t.s("dropbear"),
        "--openssh-dir",
        &t.s("ssh"),
    ]));
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.explain());
    assert!(
        lines[0].starts_with("ssh-ed25519 ") && lines[1].starts_with("ssh-ed25519 "),
        "ed25519 first\n{}",
        r.explain()
    );
    for (pair, source) in [
        (&db_ed, "dropbear"),
        (&db_ec, "dropbear"),
        (&os_ed, "openssh"),
        (&os_ec, "openssh"),
    ] {
        let want = pair.type_and_key();
        let line = lines
            .iter()
            .find(|l| key_of(l) == want)
            .unwrap_or_else(|| panic!("{want} missing\n{}", r.explain()));
        // The whole line, as pasted into --host-key or UCI host_key, parses to the key.
        assert_eq!(PublicKey::parse(line).unwrap().line(), want);
        let pub_file = t.join(&format!(
            "check-{}.pub",
            pair.private.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&pub_file, format!("{want}\n")).unwrap();
        let fp = ssh_keygen_fingerprint(&pub_file);
        assert!(
            line.contains(&format!("  # {fp} ({source} ")),
            "line {line:?} lacks {fp} from {source}"
        );
    }

    // Only one directory given: only its keys.
    let r = run(&mut es(&["hostkey", "--openssh-dir", &t.s("ssh")]));
    r.ok();
    assert_eq!(r.stdout.lines().count(), 2, "{}", r.explain());
    assert!(!r.stdout.contains("(dropbear"));
}

#[test]
fn hostkey_without_keys_is_no_input() {
    let t = TempDir::new("hostkey-none");
    std::fs::create_dir(t.join("empty")).unwrap();
    run(&mut es(&[
        "hostkey",
        "--dropbear-dir",
        &t.s("empty"),
        "--openssh-dir",
        &t.s("empty"),
    ]))
    .code(66)
    .one_line_error()
    .stderr_has("no host key found");
    run(&mut es(&["hostkey", "--openssh-dir", &t.s("missing")]))
        .code(66)
        .one_line_error()
        .stderr_has("does not exist");
    assert!(run(&mut es(&["hostkey", "--dropbear-dir", &t.s("empty")]))
        .stdout
        .is_empty());
}

/// The README's "Both sides on one machine" recipe, run as written by bash
/// with `entropyservice` on PATH (the binary under test), a free port in
/// PORT and TMPDIR in this test's directory: a real Dropbear, keygen,
/// authorize, hostkey and one fetch through the forced command.
#[test]
fn readme_one_machine_recipe_works() {
    need_root();
    need("dropbear");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme
        .split_once("<!-- recipe: one-machine -->\n```bash\n")
        .expect("README lost its one-machine recipe")
        .1;
    let recipe = after.split_once("\n```").expect("unterminated recipe").0;
    let t = TempDir::new("recipe");
    let bindir = t.join("bin");
    std::fs::create_dir(&bindir).unwrap();
    std::os::unix::fs::symlink(bin(), bindir.join("entropyservice")).unwrap();
    let path = format!(
        "{}:{}",
        bindir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port().to_string();
    let r = run_limit(
        Command::new("bash")
            .args(["-c", recipe])
            .env("PATH", path)
            .env("PORT", &port)
            .env("TMPDIR", &t.path)
            .stdin(Stdio::null()),
        Duration::from_secs(60),
    );
    r.ok().stdout_has(&format!(
        "received 64 bytes from root@127.0.0.1:{port}, credited 128 bits"
    ));
    // Its Dropbear is gone with it (kill %1).
    // It would live on for good: the bound only catches that.
    let listen = format!("127.0.0.1:{port}");
    wait_until(
        &format!("end of the recipe's Dropbear on {listen}"),
        Duration::from_secs(15),
        || {
            !std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("dropbear") && c.contains(&listen)
                })
            })
        },
    );
    assert_no_ssh_client_for(port.parse().unwrap());
}

/// A home directory that belongs to nobody (uid 65534), next to a directory
/// only root can read holding a secret. Returns (home, root-only dir, secret).
fn user_home_and_secret(
    t: &TempDir,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    need_root();
    std::fs::set_permissions(&t.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = t.join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let root_only = t.join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret = root_only.join("secret");
    std::fs::write(&secret, "SECRET-ROOT-ONLY\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    (home, root_only, secret)
}

/// A user's ~/.ssh that is a link to a directory only root can write: root
/// running `authorize` for that user's authorized_keys must not create a
/// file there (it acts as the user, who cannot).
#[test]
fn authorize_as_root_does_not_follow_a_users_ssh_link() {
    let t = TempDir::new("authorize-ssh-link");
    let (home, root_only, _) = user_home_and_secret(&t);
    let key = openssh_key(&t, "k", "ed25519");
    run(&mut as_nobody(&format!(
        "ln -s {} {}/.ssh",
        root_only.display(),
        home.display()
    )))
    .ok();
    let ak = home.join(".ssh/authorized_keys");
    let r = run(&mut authorize(&ak, &["--client", "u1", &key.public_line]));
    r.code(73).one_line_error();
    let names: Vec<_> = std::fs::read_dir(&root_only)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["secret"], "{}", r.explain());
}

/// The user swaps their authorized_keys for a link to a root-only file and
/// back every millisecond while root runs `authorize --replace` for them 40
/// times, each of its opens held up 30 ms by strace: the secret never appears in a
/// file the user can read. (Checking the file with lstat and then opening
/// it by name lost this race in about one run of three.) Real: the kernel,
/// two uids, the binary; strace only slows it down.
#[test]
fn authorize_as_root_never_copies_a_file_swapped_in_by_the_user() {
    use std::os::unix::fs::OpenOptionsExt;
    let t = TempDir::new("authorize-swap");
    let (home, _, secret) = user_home_and_secret(&t);
    let key = openssh_key(&t, "k", "ed25519");
    let ssh = home.join(".ssh");
    let leaked = home.join("leaked");
    run(&mut as_nobody(&format!(
        "mkdir -m 700 {0} && echo '# keys' > {0}/good",
        ssh.display()
    )))
    .ok();
    // A tight loop (python3, no process per step): a fresh regular file
    // and a link to the secret take turns at authorized_keys.
    let mut swapper = Command::new(need("setpriv"));
    swapper
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        // Debian's own python3: nobody may not reach one under /root.
        .args(["/usr/bin/python3", "-c", SWAP_PY])
        .arg(&ssh)
        .arg(&secret)
        .arg(&leaked);
    let mut swapper = swapper
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ak = ssh.join("authorized_keys");
    let mut wrote = 0;
    for _ in 0..40 {
        // strace holds every openat for 30 ms: the gap between a check of
        // the name and its open is then wide enough for the swap to land.
        let r = run(Command::new(need("strace"))
            .args(["-qq", "-o", "/dev/null", "-e", "trace=openat"])
            .args(["-e", "inject=openat:delay_enter=30000", bin()])
            .args([
                "authorize",
                "--replace",
                "--authorized-keys",
                &ak.to_string_lossy(),
                "--client",
                "u2",
                "--binary",
                bin(),
                &key.public_line,
            ]));
        if r.status == Some(0) {
            wrote += 1;
        }
        // What the user can read there (a link is not followed).
        let mut text = Vec::new();
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&ak)
        {
            let _ = f.read_to_end(&mut text);
        }
        if String::from_utf8_lossy(&text).contains("SECRET") || leaked.exists() {
            let _ = swapper.kill();
            panic!("the root-only file was copied into the user's authorized_keys");
        }
    }
    let alive = swapper.try_wait().unwrap().is_none();
    let _ = swapper.kill();
    let _ = swapper.wait();
    assert!(
        alive,
        "the swapping loop (nobody's python3) was not running"
    );
    assert!(wrote > 0, "no authorize run got through at all");
}

/// python3 DIR SECRET LEAKED: swaps DIR/authorized_keys between a regular
/// file and a link to SECRET forever; creates LEAKED if it ever reads the
/// secret through a regular file there.
const SWAP_PY: &str = r##"
import os, sys, time
d, secret, leaked = sys.argv[1:4]
os.chdir(d)
def check():
    # Whatever root may have renamed in, read before it is replaced.
    try:
        fd = os.open("authorized_keys", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    with os.fdopen(fd) as f:
        if "SECRET" in f.read():
            open(leaked, "w").close()
while True:
    check()
    os.symlink(secret, "l")
    os.replace("l", "authorized_keys")
    time.sleep(0.001)
    with open("n", "w") as f:
        f.write("# keys\n")
    check()
    os.replace("n", "authorized_keys")
    time.sleep(0.001)
"##;
