//! Keys: agent-held keys only with --agent, no shell on either side
//! (strace), and a forced command that refuses everything but its request.

use crate::util::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real ssh-agent on a private socket; killed on drop.
struct Agent {
    sock: String,
    child: Child,
}

impl Agent {
    fn start(dir: &TempDir) -> Agent {
        let sock = dir.s("agent.sock");
        let child = Command::new(need("ssh-agent"))
            .args(["-D", "-a", &sock])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("ssh-agent socket", Duration::from_secs(15), || {
            Path::new(&sock).exists()
        });
        Agent { sock, child }
    }

    fn add(&self, key: &Keypair) {
        run(Command::new(need("ssh-add"))
            .env("SSH_AUTH_SOCK", &self.sock)
            .arg(&key.private))
        .ok();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Breaks: nothing; the key lives only in a real ssh-agent (ssh-add), and
/// the client gets --agent and no -i.
/// Expects: `client --agent --once 64` works through ssh and through
/// dbclient (which authenticates with the agent in SSH_AUTH_SOCK), against
/// both servers. Without --agent the agent is never used: with SSH_AUTH_SOCK
/// set and an unauthorized -i key the login fails (the child's environment
/// is cleared, and ssh gets IdentityAgent=none).
#[test]
fn agent_keys_work_only_with_the_agent_flag() {
    need_root();
    let dir = TempDir::new("agent");
    let agent = Agent::start(&dir);
    let key = openssh_key(&dir, "agent_key", "ed25519");
    agent.add(&key);
    std::fs::remove_file(&key.private).unwrap();
    for flavor in BOTH {
        let srv = SshServer::start(flavor, &forced_line(&server_command(""), &key));
        for prog in ["ssh", "dbclient"] {
            let base = |c: &mut Command| {
                c.env("SSH_AUTH_SOCK", &agent.sock).args([
                    "client",
                    "--ssh",
                    prog,
                    "-p",
                    &srv.port.to_string(),
                    "--host-key",
                    &srv.host_key,
                    "--status-file",
                    &dir.s("status"),
                    "--seed-dir",
                    &dir.s("seed"),
                    "--once",
                    "64",
                ]);
            };
            let mut c = Command::new(bin());
            base(&mut c);
            c.args(["--agent", "127.0.0.1"]);
            run(&mut c).ok().stdout_has("received 64 bytes");

            let stranger = if prog == "ssh" {
                openssh_key(&dir, &format!("stranger-{flavor:?}-{prog}"), "ed25519")
            } else {
                dropbear_key(&dir, &format!("stranger-{flavor:?}-{prog}"), "ed25519")
            };
            let mut c = Command::new(bin());
            base(&mut c);
            c.args(["-i", &stranger.private_str(), "127.0.0.1"]);
            let r = run(&mut c);
            assert_ne!(
                r.status,
                Some(0),
                "{flavor:?}/{prog}: the agent was used\n{}",
                r.explain()
            );
            assert!(!r.stdout.contains("received"), "{}", r.explain());
            r.one_line_error();
        }
    }
}

/// The successful execve calls in an `strace -f -v` log: (path, argv, env).
fn execs(log: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    fn strings(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => v.push(chars.next().unwrap_or('\\')),
                    '"' => break,
                    c => v.push(c),
                }
            }
            out.push(v);
        }
        out
    }
    log.lines()
        .filter(|l| l.contains("execve(") && l.trim_end().ends_with("= 0"))
        .map(|l| {
            let call = &l[l.find("execve(").unwrap()..];
            let (head, env) = call.split_once("], [").unwrap_or((call, ""));
            let mut argv = strings(head);
            let path = argv.remove(0);
            (path, argv, strings(env))
        })
        .collect()
}

/// Breaks: a hostile request reaches the server ("get 64; sh -c id"), and
/// we look at every program either side starts.
/// Expects (strace -f -e trace=execve): the client execs exactly one program,
/// the SSH client, with our argument vector (no shell, the request as one
/// argument) and only PATH and HOME in its environment; the server execs
/// nothing at all, for a good and a hostile request.
#[test]
fn no_shell_on_either_side() {
    need_root();
    let strace = need("strace");
    for flavor in BOTH {
        let (srv, key, dir) = forced_server(flavor, &server_command(""));
        let out = dir.s("strace.out");
        let inner = client_cmd(&srv, &key, &dir);
        let mut c = Command::new(&strace);
        c.args([
            "-f",
            "-qq",
            "-v",
            "-s",
            "4096",
            "-e",
            "trace=execve",
            "-o",
            &out,
        ])
        .arg(inner.get_program())
        .args(inner.get_args())
        .args(["--once", "64", "127.0.0.1"]);
        run(&mut c).ok().stdout_has("received 64 bytes");
        let log = std::fs::read_to_string(&out).unwrap();
        let e = execs(&log);
        assert_eq!(e.len(), 2, "{flavor:?}: execs {e:?}");
        assert_eq!(e[0].0, bin());
        let prog = srv.client_program().to_string_lossy().into_owned();
        let (path, argv, env) = &e[1];
        assert_eq!(path, &prog);
        assert_eq!(argv[0], prog);
        assert_eq!(&argv[argv.len() - 2..], ["127.0.0.1", "get 64"], "{argv:?}");
        assert!(argv.contains(&"-T".to_string()), "{argv:?}");
        assert!(argv.contains(&key.private_str()), "{argv:?}");
        let names: Vec<&str> = env
            .iter()
            .filter_map(|v| v.split_once('='))
            .map(|v| v.0)
            .collect();
        assert_eq!(names.len(), 2, "{env:?}");
        assert!(
            names.contains(&"PATH") && names.contains(&"HOME"),
            "{env:?}"
        );
    }
    let dir = TempDir::new("strace-server");
    for req in ["get 64", "get 64; sh -c id", "$(id)", "sh"] {
        let out = dir.s("strace.out");
        let mut c = Command::new(&strace);
        c.args([
            "-f",
            "-qq",
            "-e",
            "trace=execve,fork,vfork",
            "-o",
            &out,
            bin(),
        ])
        .args(["server", "--lock-dir", &dir.s("locks")])
        .env("SSH_ORIGINAL_COMMAND", req);
        let r = run(&mut c);
        let log = std::fs::read_to_string(&out).unwrap();
        let calls: Vec<&str> = log.lines().filter(|l| !l.contains("exited with")).collect();
        assert_eq!(calls.len(), 1, "{req:?}: {log}");
        assert!(calls[0].contains(&format!("execve(\"{}\"", bin())), "{log}");
        if req == "get 64" {
            assert_eq!(r.raw_stdout.len(), 64, "{}", r.explain());
        } else {
            r.code(65).stderr_has("bad request").no_stdout();
        }
    }
}

/// What the forced command's process looks like from /proc while a session
/// is open: (environment, whether stdin/stdout/stderr is a terminal).
fn inspect_forced(port: u16, ssh: &mut Child, before: &[u32]) -> Option<(Vec<String>, bool)> {
    let start = Instant::now();
    let pid = loop {
        // Not a forced command of an earlier probe that is still winding down.
        if let Some(p) = forced_commands(port)
            .into_iter()
            .find(|p| !before.contains(p))
        {
            break p;
        }
        if start.elapsed() > Duration::from_secs(10) || !matches!(ssh.try_wait(), Ok(None)) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let tty = (0..3).any(|fd| {
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map(|p| p.to_string_lossy().starts_with("/dev/pts/"))
            .unwrap_or(false)
    });
    Some((environ(pid), tty))
}

/// A session asking for a pty, agent and X11 forwarding and sending two
/// environment variables; returns what the forced command got.
/// With `pty`, ssh -tt closes the session if the pty is refused: then
/// there is no session to look at (None).
fn greedy_session(
    srv: &SshServer,
    key: &Keypair,
    dir: &TempDir,
    agent: &Agent,
    pty: bool,
) -> (Option<(Vec<String>, bool)>, String) {
    let mut c = pinned_ssh(
        srv,
        key,
        dir,
        &[
            if pty { "-tt" } else { "-T" },
            "-A",
            "-X",
            "-o",
            "SendEnv=ES_PROBE",
            "-o",
            "SendEnv=LC_ES_PROBE",
            "root@127.0.0.1",
            "cat /dev/random",
        ],
    );
    let before = forced_commands(srv.port);
    // stdin stays open: at its EOF Dropbear would close the pty at once.
    let mut child = c
        .stdin(Stdio::piped())
        .env("SSH_AUTH_SOCK", &agent.sock)
        .env("DISPLAY", "127.0.0.1:99")
        .env("ES_PROBE", "leak")
        .env("LC_ES_PROBE", "leak")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = inspect_forced(srv.port, &mut child, &before);
    let _ = child.kill();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let _ = child.wait();
    (seen, err)
}

/// Breaks: a client holding the authorized key asks the forced command's
/// session for everything else: another command, the sftp subsystem, a
/// pty, agent forwarding, X11 forwarding, environment variables (SendEnv),
/// remote and local port forwarding; through the real OpenSSH and Dropbear
/// servers, with the exact line `entropyservice authorize` writes.
/// Expects: the command and the subsystem are refused by the forced command
/// ("bad request", no bytes); the session has no pty, no SSH_AUTH_SOCK, no
/// DISPLAY and none of the sent variables (a control with a bare command=
/// line shows the probe does see a pty and an agent); both forwardings fail.
fn forced_command_refuses_everything_else(flavor: Flavor) {
    need_root();
    let dir = TempDir::new("refuse");
    let agent = Agent::start(&dir);
    let srv = SshServer::start(flavor, "");
    let key = openssh_key(&dir, "id", "ed25519");

    // Control: a bare command= line grants the pty and the agent.
    srv.set_authorized_keys(&format!(
        "command=\"{}\" {}\n",
        server_command(""),
        key.type_and_key()
    ));
    let (seen, err) = greedy_session(&srv, &key, &dir, &agent, true);
    let (env, tty) = seen.unwrap_or_else(|| panic!("{flavor:?} control: no session: {err}"));
    assert!(
        tty,
        "{flavor:?} control: no pty, the probe proves nothing\n{err}"
    );
    assert!(
        env.iter().any(|v| v.starts_with("SSH_AUTH_SOCK=")),
        "{flavor:?} control: no agent, the probe proves nothing: {env:?}"
    );

    srv.set_authorized_keys("");
    run(&mut authorize(
        &srv.authorized_keys,
        &["--client", "c1", &key.public_line],
    ))
    .ok();
    let line = std::fs::read_to_string(&srv.authorized_keys).unwrap();
    assert!(line.starts_with("command=\""), "{line}");

    for cmd in ["sh -c id", "cat /etc/shadow", "get 10; sh"] {
        let r = run_limit(
            &mut pinned_ssh(&srv, &key, &dir, &["-T", "root@127.0.0.1", cmd]),
            Duration::from_secs(20),
        );
        r.failed().no_stdout().stderr_has("bad request");
    }
    let r = run_limit(
        &mut pinned_ssh(&srv, &key, &dir, &["-T", "-s", "root@127.0.0.1", "sftp"]),
        Duration::from_secs(20),
    );
    r.failed().no_stdout();

    let (seen, err) = greedy_session(&srv, &key, &dir, &agent, true);
    assert!(
        err.contains("PTY allocation request failed"),
        "{flavor:?}: {err}"
    );
    if let Some((_, tty)) = seen {
        assert!(!tty, "{flavor:?}: the forced command got a pty\n{err}");
    }
    let (seen, err) = greedy_session(&srv, &key, &dir, &agent, false);
    let (env, tty) = seen.unwrap_or_else(|| panic!("{flavor:?}: no session: {err}"));
    assert!(!tty, "{flavor:?}: the forced command got a pty\n{err}");
    for var in ["SSH_AUTH_SOCK=", "DISPLAY=", "ES_PROBE=", "LC_ES_PROBE="] {
        assert!(
            !env.iter().any(|v| v.starts_with(var)),
            "{flavor:?}: {var} reached the forced command: {env:?}"
        );
    }
    assert!(
        env.contains(&"SSH_ORIGINAL_COMMAND=cat /dev/random".to_string()),
        "{env:?}"
    );

    // Remote forwarding: refused at once.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = target.local_addr().unwrap().port();
    let spec = format!("127.0.0.1:{}:127.0.0.1:{tport}", free_port());
    let r = run_limit(
        &mut pinned_ssh(
            &srv,
            &key,
            &dir,
            &[
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-R",
                &spec,
                "root@127.0.0.1",
            ],
        ),
        Duration::from_secs(20),
    );
    assert_ne!(
        r.status,
        Some(0),
        "{flavor:?}: -R was granted\n{}",
        r.explain()
    );
    r.stderr_has("forwarding failed");

    // Local forwarding: the channel is refused, the target never sees a connection.
    target.set_nonblocking(true).unwrap();
    let lport = free_port();
    let spec = format!("127.0.0.1:{lport}:127.0.0.1:{tport}");
    let mut child = pinned_ssh(&srv, &key, &dir, &["-N", "-L", &spec, "root@127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut conn = loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", lport)) {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ssh -L never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = conn.write_all(b"hello\n");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8; 16];
    let closed = matches!(conn.read(&mut b), Ok(0) | Err(_));
    let _ = child.kill();
    let _ = child.wait();
    assert!(closed, "{flavor:?}: the forwarded connection stayed open");
    assert!(
        target.accept().is_err(),
        "{flavor:?}: local forwarding reached the target"
    );
}

each_flavor!(forced_command_refuses_everything_else);
