//! Issue 7: the fault matrix, signals and keys, with real processes.
//!
//! Each test says what it breaks and what it expects. They need root (mount
//! and network namespaces, RNDADDENTROPY, setpriv), dropbear, dbclient, sshd,
//! ssh, ssh-agent, ssh-add, strace, ip, unshare with time namespaces, and a
//! kernel with veth and tmpfs. A missing tool fails the test loudly.
//!
//! Timeouts are short on purpose (stall 1-2 s, back-off capped at 1-4 s) so
//! the whole module runs in well under two minutes on two shared cores.

use crate::util::*;
use rustix::process::{Pid, Signal};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BOTH: [Flavor; 2] = [Flavor::Dropbear, Flavor::OpenSsh];
const ALL_SIGNALS: [Signal; 4] = [Signal::TERM, Signal::INT, Signal::HUP, Signal::PIPE];

// ------------------------------------------------------------------ helpers

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

fn send(pid: u32, sig: Signal) {
    let _ = rustix::process::kill_process(Pid::from_raw(pid as i32).unwrap(), sig);
}

/// (state, ppid, own utime+stime, reaped children's cutime+cstime) of `pid`.
fn stat(pid: u32) -> Option<(char, u32, u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        n(11) + n(12),
        n(13) + n(14),
    ))
}

fn ppid(pid: u32) -> Option<u32> {
    stat(pid).map(|s| s.1)
}

fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// CPU ticks used by `pid`, its live descendants and every child it reaped.
fn tree_cpu(pid: u32) -> u64 {
    let (_, _, own, reaped) = stat(pid).unwrap_or_default();
    own + reaped
        + descendants(pid)
            .into_iter()
            .filter_map(stat)
            .map(|s| s.2)
            .sum::<u64>()
}

fn exe_name(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

/// The `entropyservice server` processes serving connections to `port`
/// (found by SSH_CONNECTION, whose last field is the server's port).
fn forced_commands(port: u16) -> Vec<u32> {
    let me = std::fs::canonicalize(bin()).unwrap();
    let suffix = format!(" {port}");
    all_pids()
        .into_iter()
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok().as_ref() == Some(&me))
        .filter(|p| {
            environ(*p)
                .iter()
                .any(|v| v.starts_with("SSH_CONNECTION=") && v.ends_with(&suffix))
        })
        .collect()
}

/// A long-running command (a client daemon, usually) with its output in a
/// log file; killed and reaped on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
    status: PathBuf,
}

impl Daemon {
    /// `dir` holds the log; the status file is `dir/status` (as client_cmd sets it).
    fn spawn(cmd: &mut Command, dir: &TempDir) -> Daemon {
        let log = dir.join("daemon.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Daemon {
            child,
            log,
            status: dir.join("status"),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn status(&self) -> HashMap<String, String> {
        std::fs::read_to_string(&self.status)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn num(&self, key: &str) -> u64 {
        self.status()
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Polls until `cond(status, log)` holds; panics with the log on a
    /// timeout or if the process exits first.
    #[track_caller]
    fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&HashMap<String, String>, &str) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let st = self.status();
            if cond(&st, &self.log()) {
                return start.elapsed();
            }
            if let Some(code) = self.child.try_wait().unwrap() {
                panic!("exited ({code}) before {what}: {st:?}\n{}", self.log());
            }
            assert!(
                start.elapsed() < limit,
                "no {what} within {limit:?}: {st:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: Signal) {
        send(self.pid(), sig);
    }

    #[track_caller]
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                start.elapsed() < limit,
                "still running after {limit:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No SSH child of `pid` is a zombie, at most one is alive, and none of the
/// earlier children in `seen` is still around.
#[track_caller]
fn assert_children_clean(pid: u32, seen: &[u32]) {
    let kids = children_of(pid);
    assert!(kids.len() <= 1, "more than one SSH child: {kids:?}");
    for k in &kids {
        assert!(!is_zombie(*k), "zombie child {k}");
    }
    for old in seen {
        if kids.contains(old) {
            continue;
        }
        if let Some((state, parent, _, _)) = stat(*old) {
            assert!(
                parent != pid,
                "old SSH child {old} still a child of the client (state {state})"
            );
        }
    }
}

/// Client arguments for a server that is not an `SshServer` fixture.
fn client_args(
    program: &Path,
    port: u16,
    key: &Keypair,
    host_key: &str,
    dir: &TempDir,
) -> Vec<String> {
    [
        "client",
        "--ssh",
        &program.to_string_lossy(),
        "-p",
        &port.to_string(),
        "-i",
        &key.private_str(),
        "--host-key",
        host_key,
        "--status-file",
        &dir.s("status"),
        "--seed-dir",
        &dir.s("seed"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A Dropbear server on a chosen address and port, optionally inside a
/// network namespace, with keys made before it starts (so a client can pin
/// its host key while nothing listens yet). Killed on drop.
struct Dropbear {
    dir: TempDir,
    port: u16,
    host_key: String,
    host_key_file: PathBuf,
    authorized_keys: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Dropbear {
    fn new(port: u16) -> Dropbear {
        need_root();
        let dir = TempDir::new("dropbear");
        std::fs::create_dir(dir.join("ssh")).unwrap();
        let hk = dropbear_key(&dir, "host_ed25519", "ed25519");
        Dropbear {
            port,
            host_key: hk.type_and_key(),
            host_key_file: hk.private,
            authorized_keys: dir.join("ssh/authorized_keys"),
            log: dir.join("server.log"),
            dir,
            child: None,
        }
    }

    fn authorize(&self, text: &str) {
        std::fs::write(&self.authorized_keys, text).unwrap();
    }

    /// Starts listening on `listen`; waits for the pid file, which Dropbear
    /// writes after it bound the port.
    fn start(&mut self, listen: &str, netns: Option<&str>) {
        std::fs::create_dir_all("/root/.ssh").unwrap();
        let pid_file = self.dir.join("pid");
        let _ = std::fs::remove_file(&pid_file);
        // Root's shell runs the forced command; on this machine root's
        // ~/.bashrc (sourced by bash under an SSH server) runs `pyenv
        // rehash`, which waits 60 s on a lock a killed session left behind.
        // Hide it in the server's private mount namespace.
        let script = format!(
            "mount --bind {} /root/.ssh && {{ [ ! -e /root/.bashrc ] || mount --bind /dev/null /root/.bashrc; }} && exec {} -F -E -s -p {}:{} -r {} -P {}",
            self.dir.join("ssh").display(),
            need("dropbear").display(),
            listen,
            self.port,
            self.host_key_file.display(),
            pid_file.display()
        );
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new(need("ip"));
                c.args(["netns", "exec", ns]).arg(need("unshare"));
                c
            }
            None => Command::new(need("unshare")),
        };
        let f = std::fs::File::create(&self.log).unwrap();
        let child = cmd
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let start = Instant::now();
        while std::fs::read_to_string(&pid_file)
            .map(|s| s.trim().is_empty())
            .unwrap_or(true)
        {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("dropbear exited with {st}: {}", self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "dropbear did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dropbear {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ip(args: &[&str]) -> Run {
    run(Command::new(need("ip")).args(args))
}

/// Two network namespaces joined by a veth pair: server 10.199.0.1/30,
/// client 10.199.0.2/30. Nothing leaves this machine. Removed on drop, also
/// after a failed assertion.
struct Partition {
    server_ns: String,
    client_ns: String,
    server_dev: String,
}

impl Partition {
    const SERVER: &'static str = "10.199.0.1";

    fn new() -> Partition {
        need_root();
        let id = std::process::id();
        let p = Partition {
            server_ns: format!("es-faults-s-{id}"),
            client_ns: format!("es-faults-c-{id}"),
            server_dev: format!("esfs{id}"),
        };
        let client_dev = format!("esfc{id}");
        let (s, c, sd) = (&p.server_ns, &p.client_ns, &p.server_dev);
        ip(&["netns", "add", s]).ok();
        ip(&["netns", "add", c]).ok();
        ip(&[
            "link",
            "add",
            sd,
            "type",
            "veth",
            "peer",
            "name",
            &client_dev,
        ])
        .ok();
        ip(&["link", "set", sd, "netns", s]).ok();
        ip(&["link", "set", &client_dev, "netns", c]).ok();
        ip(&["-n", s, "addr", "add", "10.199.0.1/30", "dev", sd]).ok();
        ip(&["-n", c, "addr", "add", "10.199.0.2/30", "dev", &client_dev]).ok();
        for (ns, dev) in [(s, sd.as_str()), (c, client_dev.as_str())] {
            ip(&["-n", ns, "link", "set", dev, "up"]).ok();
            ip(&["-n", ns, "link", "set", "lo", "up"]).ok();
        }
        p
    }

    fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&[
            "-n",
            &self.server_ns,
            "link",
            "set",
            &self.server_dev,
            state,
        ])
        .ok();
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.server_ns]);
        let _ = ip(&["netns", "del", &self.client_ns]);
        // Only there if the test failed before moving it into the namespace.
        let _ = Command::new(need("ip"))
            .args(["link", "del", &self.server_dev])
            .stderr(Stdio::null())
            .status();
    }
}

/// Parses the "retrying in N.N s" lines of a client log.
fn retry_delays(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("info: retrying in "))
        .filter_map(|l| l.strip_suffix(" s"))
        .filter_map(|v| v.parse().ok())
        .collect()
}

// ------------------------------------------------- 1. server unreachable

/// Breaks: nothing listens on the server's port when the client starts.
/// Expects: one clear line per attempt naming the peer and "Connection
/// refused"; the back-off (1 s doubling, jitter in [d/2, d]) grows to the
/// --max-backoff cap of 4 s and stays there; once a server appears on the
/// port the client gets through within one back-off period (4 s) plus a
/// connect.
#[test]
fn unreachable_server_backs_off_to_the_cap_and_recovers() {
    need_root();
    let dir = TempDir::new("unreachable");
    let port = free_port();
    let mut db = Dropbear::new(port);
    let key = dropbear_key(&dir, "id", "ed25519");
    db.authorize(&forced_line(&server_command(""), &key));
    let mut d = Daemon::spawn(
        Command::new(bin())
            .args(client_args(
                &need("dbclient"),
                port,
                &key,
                &db.host_key,
                &dir,
            ))
            .args([
                "--max-backoff",
                "4s",
                "--interval",
                "1h",
                "--connect-timeout",
                "5s",
            ])
            .arg("127.0.0.1"),
        &dir,
    );
    d.wait_for("four retries", Duration::from_secs(15), |_, log| {
        retry_delays(log).len() >= 4
    });
    let log = d.log();
    let delays = retry_delays(&log);
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Connection refused"))
        .collect();
    assert!(refused.len() >= 4, "{log}");
    for l in &refused {
        assert!(
            l.starts_with("warning: SSH session to root@127.0.0.1:")
                && l.contains(&format!(":{port} failed")),
            "unclear line {l:?}"
        );
    }
    assert!(
        delays.iter().all(|v| *v <= 4.0),
        "above the cap: {delays:?}"
    );
    assert!(delays[0] <= 1.0, "first delay {delays:?}");
    assert!((1.0..=2.0).contains(&delays[1]), "second delay {delays:?}");
    assert!(
        delays[2] >= 2.0 && delays[3] >= 2.0,
        "not at the cap: {delays:?}"
    );

    db.start("127.0.0.1", None);
    let took = d.wait_for("recovery", Duration::from_secs(12), |st, _| {
        st.get("state").map(String::as_str) == Some("idle")
    });
    assert!(
        took <= Duration::from_secs(7),
        "recovered {took:?} after the server appeared (back-off cap 4 s)\n{}",
        d.log()
    );
    assert!(d
        .log()
        .contains(&format!("fetching from root@127.0.0.1:{port} works")));
    assert_eq!(d.num("bits_credited"), 128, "{:?}", d.status());
    d.signal(Signal::TERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
}

// ------------------------------------------- 2. server dies mid-stream

/// The per-connection server processes above the forced command `pid`
/// (Dropbear's session child; sshd's privileged monitor and session
/// process), up to but not including the listener.
fn session_processes(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut p = pid;
    while let Some(parent) = ppid(p) {
        if !matches!(exe_name(parent).as_str(), "dropbear" | "sshd") {
            break; // p is the listener
        }
        if p != pid {
            out.push(p);
        }
        p = parent;
    }
    out
}

/// Breaks: SIGKILL to the server's session processes (Dropbear's
/// per-connection child; sshd's monitor and session process) mid-stream.
/// Expects: the client sees the stream end within the stall timeout (2 s),
/// kills and reaps its SSH child (no zombie), reconnects and credits again.
fn server_session_killed(flavor: Flavor) {
    need_root();
    let (srv, key, dir) = forced_server(flavor, &server_command("--rate 20000"));
    let mut d = Daemon::spawn(
        client_cmd_opts(&srv, &key, &dir, &[("--stall-timeout", "2s")]).args([
            "--mode",
            "stream",
            "--max-backoff",
            "1s",
            "127.0.0.1",
        ]),
        &dir,
    );
    d.wait_for("a credited chunk", Duration::from_secs(15), |st, _| {
        st.get("bits_credited").is_some_and(|v| v != "0")
    });
    let old_child = children_of(d.pid());
    let forced = forced_commands(srv.port);
    assert_eq!(forced.len(), 1, "one forced command for the session");
    let victims = session_processes(forced[0]);
    assert!(!victims.is_empty(), "no session process above {forced:?}");
    for v in &victims {
        send(*v, Signal::KILL);
    }
    let t = Instant::now();
    d.wait_for("the end of the stream", Duration::from_secs(5), |_, log| {
        log.contains("closed the stream") || log.contains("stalled")
    });
    assert!(
        t.elapsed() <= Duration::from_secs(3),
        "{flavor:?}: noticed after {:?}",
        t.elapsed()
    );
    let credited = d.num("bits_credited");
    d.wait_for(
        "a second session crediting",
        Duration::from_secs(10),
        |st, _| {
            st.get("sessions").is_some_and(|v| v == "2")
                && st
                    .get("bits_credited")
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|v| v > credited)
        },
    );
    assert_children_clean(d.pid(), &old_child);
    d.signal(Signal::TERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert_no_ssh_client_for(srv.port);
}

#[test]
fn server_session_killed_dropbear() {
    server_session_killed(Flavor::Dropbear);
}

#[test]
fn server_session_killed_openssh() {
    server_session_killed(Flavor::OpenSsh);
}

// ------------------------------------------------------ 3. server stalls

/// Breaks: the server sends 10 bytes, then nothing (the session stays open).
/// Expects, in daemon stream mode: the stall watchdog (1 s) kills the SSH
/// child each time, the client reaps it, reconnects after the back-off, and
/// never credits the 10 bytes; no zombie and at most one SSH child at a time.
#[test]
fn stalled_server_is_cut_off_and_retried() {
    need_root();
    let mut runs = Vec::new();
    for flavor in BOTH {
        let (srv, key, dir) = forced_server(flavor, "head -c 10 /dev/urandom; exec sleep 15");
        let d = Daemon::spawn(
            client_cmd_opts(&srv, &key, &dir, &[("--stall-timeout", "1s")]).args([
                "--mode",
                "stream",
                "--max-backoff",
                "1s",
                "127.0.0.1",
            ]),
            &dir,
        );
        runs.push((srv, key, dir, d));
    }
    for (srv, _, _, d) in runs.iter_mut() {
        let mut seen: Vec<u32> = Vec::new();
        // A child is a zombie for a moment between its death and the reap;
        // one that stays a zombie for a second was never reaped.
        let mut zombie_since: HashMap<u32, Instant> = HashMap::new();
        let pid = d.pid();
        d.wait_for(
            "three stalled sessions",
            Duration::from_secs(20),
            |_, log| {
                let kids = children_of(pid);
                assert!(kids.len() <= 1, "more than one SSH child: {kids:?}");
                for k in kids {
                    if !seen.contains(&k) {
                        seen.push(k);
                    }
                    if is_zombie(k) {
                        let t = zombie_since.entry(k).or_insert_with(Instant::now);
                        assert!(
                            t.elapsed() < Duration::from_secs(1),
                            "zombie {k} not reaped"
                        );
                    }
                }
                seen.len() >= 3 && log.matches("stalled; session killed").count() >= 3
            },
        );
        let st = d.status();
        assert_eq!(st["bits_credited"], "0", "{st:?}");
        assert!(st["reconnects"].parse::<u64>().unwrap() >= 2, "{st:?}");
        assert!(seen.len() >= 3, "{:?}: SSH children {seen:?}", srv.flavor);
        d.signal(Signal::TERM);
        assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
        assert_children_clean(pid, &seen);
        assert_no_ssh_client_for(srv.port);
    }
}

// -------------------------------------------------- 4. network partition

/// Breaks: the link between client and server (two network namespaces
/// joined by a veth pair, 10.199.0.0/30) goes down mid-stream, then comes
/// back. Expects: the stall watchdog (2 s) ends the session, reconnects fail
/// by the connect timeout while the link is down, the client streams again
/// once it is up; only complete, tested 512-byte chunks are credited, so
/// what was received but not credited is less than one chunk per session.
#[test]
fn network_partition_mid_stream() {
    need_root();
    let net = Partition::new();
    let dir = TempDir::new("partition");
    let mut db = Dropbear::new(2222);
    let key = dropbear_key(&dir, "id", "ed25519");
    db.authorize(&forced_line(&server_command("--rate 8192"), &key));
    db.start(Partition::SERVER, Some(&net.server_ns));
    let mut d = Daemon::spawn(
        Command::new(need("ip"))
            .args(["netns", "exec", &net.client_ns, bin()])
            .args(client_args(
                &need("dbclient"),
                2222,
                &key,
                &db.host_key,
                &dir,
            ))
            .args([
                "--mode",
                "stream",
                "--stall-timeout",
                "2s",
                "--connect-timeout",
                "2s",
            ])
            .args(["--max-backoff", "1s", Partition::SERVER]),
        &dir,
    );
    d.wait_for("a credited chunk", Duration::from_secs(15), |st, _| {
        st.get("bits_credited").is_some_and(|v| v != "0")
    });
    net.link(false);
    let t = Instant::now();
    d.wait_for("the stall", Duration::from_secs(6), |_, log| {
        log.contains("stalled")
    });
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stall noticed after {:?}",
        t.elapsed()
    );
    // While the link is down: attempts time out, nothing is credited.
    d.wait_for("a failed reconnect", Duration::from_secs(10), |st, _| {
        st.get("state").map(String::as_str) == Some("retrying")
            && st.get("sessions").is_some_and(|v| v != "1")
    });
    let during = d.status();
    net.link(true);
    let credited = d.num("bits_credited");
    d.wait_for("streaming again", Duration::from_secs(15), |st, _| {
        st.get("bits_credited")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|v| v > credited)
    });
    d.signal(Signal::TERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(5)).code(),
        Some(0),
        "{}",
        d.log()
    );
    let st = d.status();
    let n = |k: &str| st[k].parse::<u64>().unwrap();
    let (received, credited, sessions) = (n("bytes_received"), n("bits_credited"), n("sessions"));
    assert_eq!(
        credited % (2 * 512),
        0,
        "credit not in whole chunks: {st:?}"
    );
    assert!(credited / 2 <= received, "{st:?}");
    assert!(
        received - credited / 2 < 512 * sessions,
        "more than a partial chunk per session went uncredited or was credited twice: {st:?}"
    );
    assert!(n("reconnects") >= 1, "{st:?}");
    eprintln!("partition: during {during:?}\nafter {st:?}");
}

// ----------------------------------------- 5. unknown and wrong host key

/// Breaks: the server's host key is not the pinned one ("wrong": another
/// ed25519 key; "unknown": the pinned key is RSA and the server offers only
/// ed25519, so for the SSH client the server's key is unknown).
/// Expects, in daemon mode, for dbclient and ssh: refused within seconds
/// with a line naming the pinned fingerprint; the server is then skipped for
/// the penalty period (--max-backoff 2s), so there is at most one session
/// per 2 s of the run; nothing credited; the whole client tree (client, SSH children
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
                refused_after[i].is_some() || started.elapsed() < Duration::from_secs(8),
                "{flavor:?}/{kind}: not refused within 8 s (the connect timeout is 15 s)\n{}",
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("host key refused after {refused_after:?}");
    for (_, _, _, _, d, pinned, _) in runs.iter() {
        assert!(d.log().contains(pinned.as_str()), "{}", d.log());
    }
    std::thread::sleep(Duration::from_secs(5));
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
        // A refused server sits out the 2 s penalty (--max-backoff) before
        // its next session: at most one session per 2 s of this run, however
        // slowly a loaded machine got through it.
        let sessions: u64 = st["sessions"].parse().unwrap();
        assert!(
            (1..=1 + (secs / 2.0) as u64).contains(&sessions),
            "{flavor:?}/{kind}: {sessions} sessions in {secs:.1} s: {st:?}\n{log}"
        );
        assert_eq!(
            log.matches("does not match the pinned key").count() as u64,
            sessions,
            "{log}"
        );
        d.signal(Signal::TERM);
        assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
        assert_no_ssh_client_for(srv.port);
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
            let d = Daemon::spawn(
                client_cmd_opts(&srv, &key, &dir, &[("--stall-timeout", "2s")]).args([
                    "--mode",
                    "stream",
                    "--max-backoff",
                    "1s",
                    "127.0.0.1",
                ]),
                &dir,
            );
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
        if why.contains("health") || why.contains("block") {
            assert_ne!(st["health_failures"], "0", "{st:?}");
            assert!(d
                .log()
                .contains("nothing credited; skipping this server for 1 s"));
        }
        assert!(children_of(d.pid()).len() <= 1);
        d.signal(Signal::TERM);
        assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
        assert_eq!(d.status()["bits_credited"], "0");
        assert_no_ssh_client_for(srv.port);
    }
}

// ------------------------------------------------------ 7. kill -9 of the client

/// Breaks: SIGKILL to the client at random points of a daemon that fetches
/// every 100 ms and refreshes its seed after every pull (--seed-interval
/// 0s), so kills land while connecting, reading, crediting, writing the
/// status file and saving the seed. (Random kills of `seed save` and
/// `seed load` themselves, 200 of them, are in seeding::seed_files_survive_kill_9.)
/// A credit itself cannot be torn: each RNDADDENTROPY call is one ioctl.
/// Expects after each kill: the SSH child dies too (PDEATHSIG), the seed
/// directory holds only whole seeds (32-512 bytes, plus maybe a seed.tmp
/// that is never loaded), the next client starts at once (no stale lock)
/// and removes the dead client's private HOME; at the end a full `seed load`
/// uses a seed nobody used before.
#[test]
fn kill_9_of_the_client_leaves_no_torn_seed_or_stale_lock() {
    need_root();
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &server_command(""));
    let seed_dir = dir.join("seed");
    let mut phases: HashMap<String, u32> = HashMap::new();
    let mut seen_seeds: Vec<Vec<u8>> = Vec::new();
    let mut rng = entropyservice::clock::jitter();
    let mut homes_left = 0;
    // 16 random kills; more (up to 64) until one lands inside a session, so
    // a loaded machine cannot make the test miss what it tests.
    let mut i = 0;
    while i < 16 || (homes_left == 0 && i < 64) {
        i += 1;
        let mut d = Daemon::spawn(
            client_cmd(&srv, &key, &dir).args([
                "--interval",
                "100ms",
                "--seed-interval",
                "0s",
                "127.0.0.1",
            ]),
            &dir,
        );
        if i == 1 {
            // The first run must get going, so later kills hit a warm loop.
            d.wait_for("a pull", Duration::from_secs(10), |st, _| {
                st.get("sessions").is_some_and(|v| v != "0")
            });
        }
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
        std::thread::sleep(Duration::from_millis(150 + (rng >> 8) as u64 % 500));
        let state = d.status().get("state").cloned().unwrap_or_default();
        *phases.entry(state).or_default() += 1;
        assert!(d.running(), "client exited by itself: {}", d.log());
        send(d.pid(), Signal::KILL);
        d.wait_exit(Duration::from_secs(5));
        if dir.join(&format!("home-{}", d.pid())).exists() {
            homes_left += 1;
        }
        assert_no_ssh_client_for(srv.port);
        for e in std::fs::read_dir(&seed_dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let content = std::fs::read(e.path()).unwrap();
            match name.as_str() {
                "seed.tmp" => {}
                "seed.credit" | "seed.no-credit" => {
                    assert!(
                        (32..=512).contains(&content.len()),
                        "torn {name}: {} bytes (kill {i})",
                        content.len()
                    );
                    if !seen_seeds.contains(&content) {
                        seen_seeds.push(content);
                    }
                }
                other => panic!("unexpected {other} in the seed directory"),
            }
        }
    }
    eprintln!("kill -9 phases (state in the status file): {phases:?}");
    let homes = |dir: &TempDir| -> Vec<String> {
        std::fs::read_dir(&dir.path)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("home-"))
            .collect()
    };
    eprintln!("kill -9 left a private HOME behind {homes_left} times");
    assert!(
        homes_left > 0,
        "no kill hit a session (none left a private HOME behind): the test is not testing"
    );
    // The next client: starts at once, sweeps the dead clients' homes.
    let mut d = Daemon::spawn(
        client_cmd(&srv, &key, &dir).args(["--interval", "1h", "127.0.0.1"]),
        &dir,
    );
    let pid = d.pid().to_string();
    d.wait_for(
        "a pull after the kills",
        Duration::from_secs(10),
        // The status file is the dead clients' until this one writes it.
        |st, _| st.get("state").map(String::as_str) == Some("idle") && st.get("pid") == Some(&pid),
    );
    assert_eq!(homes(&dir), Vec::<String>::new(), "stale homes left");
    d.signal(Signal::TERM);
    let code = d.wait_exit(Duration::from_secs(5));
    assert_eq!(code.code(), Some(0), "{code}\n{}", d.log());
    let before = std::fs::read(seed_dir.join("seed.credit")).unwrap();
    assert!(
        !seen_seeds.is_empty(),
        "no seed was ever saved before a kill"
    );
    assert!(
        !seen_seeds.contains(&before),
        "the shutdown seed is not new"
    );
    let r = run(Command::new(bin()).args(["seed", "load", "--seed-dir", &dir.s("seed")]));
    r.ok().stderr_has("bits credited (creditable seed)");
    let after = std::fs::read(seed_dir.join("seed.credit")).unwrap();
    assert_ne!(before, after, "load did not replace the seed it used");
    assert!(!seen_seeds.contains(&after), "a seed came back");
}

// ------------------------------------------------------------ 8. disk full

/// A small tmpfs mounted for one test; unmounted on drop.
struct SmallFs {
    path: PathBuf,
}

impl SmallFs {
    fn new(dir: &TempDir, size: &str) -> SmallFs {
        let path = dir.join("fs");
        std::fs::create_dir(&path).unwrap();
        run(Command::new(need("mount"))
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path))
        .ok();
        SmallFs { path }
    }

    /// Fills the file system: writes until ENOSPC.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = [0x55u8; 1024];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new(need("umount"))
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// Breaks: the file system holding the seed directory is full (a 16 KiB
/// tmpfs, filled) when a seed is saved, by `seed save` and by the client
/// daemon (after its first pull and at SIGTERM).
/// Expects: `seed save` fails with one line naming the file, the OS error
/// and that the previous seed is kept, status 73, no seed.tmp left; the
/// daemon logs the same line and carries on (exit 0 at SIGTERM); the old
/// seed is byte for byte where it was.
#[test]
fn disk_full_when_saving_a_seed_keeps_the_old_seed() {
    need_root();
    let (srv, key, dir) = forced_server(Flavor::Dropbear, &server_command(""));
    let fs = SmallFs::new(&dir, "16k");
    let seed_dir = fs.path.join("seed");
    let sd = seed_dir.to_string_lossy().into_owned();
    run(Command::new(bin()).args(["seed", "save", "--seed-dir", &sd])).ok();
    let old = std::fs::read(seed_dir.join("seed.credit")).unwrap();
    fs.fill();
    let r = run(Command::new(bin()).args(["seed", "save", "--seed-dir", &sd]));
    r.code(73)
        .one_line_error()
        .stderr_has(&format!(
            "cannot write {sd}/seed.tmp: No space left on device"
        ))
        .stderr_has("the previous seed is kept");
    assert_eq!(std::fs::read(seed_dir.join("seed.credit")).unwrap(), old);
    assert!(!seed_dir.join("seed.tmp").exists());

    let mut d = Daemon::spawn(
        client_cmd_opts(&srv, &key, &dir, &[("--seed-dir", &sd)]).args([
            "--interval",
            "1h",
            "127.0.0.1",
        ]),
        &dir,
    );
    d.wait_for("a pull", Duration::from_secs(10), |st, _| {
        st.get("state").map(String::as_str) == Some("idle")
    });
    d.signal(Signal::TERM);
    assert_eq!(
        d.wait_exit(Duration::from_secs(5)).code(),
        Some(0),
        "{}",
        d.log()
    );
    let log = d.log();
    assert_eq!(
        log.matches("No space left on device (os error 28); the previous seed is kept")
            .count(),
        2,
        "{log}"
    );
    assert_eq!(d.num("bits_credited"), 128);
    assert_eq!(std::fs::read(seed_dir.join("seed.credit")).unwrap(), old);
    assert!(!seed_dir.join("seed.tmp").exists());
}

// ------------------------------------------------------------- 10. signals

/// Breaks: SIGTERM, SIGINT, SIGHUP or SIGPIPE arrive while the client
/// connects (the server has not sent a byte), streams, or sleeps between
/// top-ups; one client per phase and signal, all at once.
/// Expects: SIGTERM, SIGINT and SIGHUP: the SSH child is killed and reaped,
/// a seed is saved, the status file says "stopped", exit 0 within 2 s.
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
            let d = Daemon::spawn(client_cmd(srv, key, &dir).args(args).arg("127.0.0.1"), &dir);
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
                    Duration::from_secs(5),
                    |st, _| {
                        st.get("bits_credited")
                            .and_then(|v| v.parse::<u64>().ok())
                            .is_some_and(|v| v > credited)
                    },
                );
            }
            d.signal(Signal::TERM);
        }
        let code = d.wait_exit(Duration::from_secs(5));
        assert_eq!(code.code(), Some(0), "{what}: {code}\n{}", d.log());
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{what}: took {:?}",
            t.elapsed()
        );
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
            assert!(stat(k).is_none_or(|s| s.1 != pid), "{what}: child {k} left");
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
        let mut child = Command::new(bin())
            .args(["server", "--rate", "20000", "--client", "sig"])
            .args(["--lock-dir", &dir.s("locks"), "--audit-file", &audit])
            .env("SSH_ORIGINAL_COMMAND", "cat /dev/random")
            .env("SSH_CONNECTION", "127.0.0.1 50000 127.0.0.1 22")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
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
        let o = wait_limit(&mut child, Duration::from_secs(5));
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
        let mut child = default_signals(bin())
            .args(["sink", "--min-bytes", "32", "--max-bytes", "4096"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
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
        let o = wait_limit(&mut child, Duration::from_secs(5));
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

// ------------------------------------------- 11. missing programs and files

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
    let mut c = Command::new(bin());
    c.env("PATH", "/nonexistent").args([
        "client",
        "-i",
        &key.private_str(),
        "--host-key",
        &srv.host_key,
        "--once",
        "64",
        "127.0.0.1",
    ]);
    run(&mut c)
        .code(66)
        .one_line_error()
        .stderr_has("no SSH client found: neither dbclient nor ssh is on PATH");
    let mut c = Command::new(bin());
    c.env_remove("SSH_AUTH_SOCK").args([
        "client",
        "--agent",
        "--host-key",
        &srv.host_key,
        "--once",
        "64",
        "127.0.0.1",
    ]);
    run(&mut c)
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
    d.signal(Signal::TERM);
    assert_eq!(d.wait_exit(Duration::from_secs(5)).code(), Some(0));
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
    let mut c = Command::new(need("unshare"));
    c.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(&copy)
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

// ----------------------------------------------------------- 12. clock jumps

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
/// here; clippy.toml's disallowed-methods keeps clock reads in src/clock.rs.)
/// Expects: --rate 4096 --burst 64 still sends 4096 B/s, as outside.
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
        let mut buf = vec![0u8; 4096 * 2];
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
    // the rate (time "went by") or stall (time went back). The ceiling is the
    // limit itself; the floor only says "not stalled": a reader on a loaded
    // machine may fall behind the server, never get ahead of it.
    for r in &rates {
        assert!(
            (2048.0..=4500.0).contains(r),
            "rate {r} B/s, want 4096: {rates:?}"
        );
    }
}

// ------------------------------------------------------------------- keys

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
        let start = Instant::now();
        while !Path::new(&sock).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "ssh-agent did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
    let ak = srv.authorized_keys.to_string_lossy().into_owned();
    run(Command::new(bin()).args([
        "authorize",
        "--authorized-keys",
        &ak,
        "--binary",
        bin(),
        "--client",
        "c1",
        &key.public_line,
    ]))
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

#[test]
fn forced_command_refuses_everything_else_dropbear() {
    forced_command_refuses_everything_else(Flavor::Dropbear);
}

#[test]
fn forced_command_refuses_everything_else_openssh() {
    forced_command_refuses_everything_else(Flavor::OpenSsh);
}

// --- Session deadlines against an SSH child that chatters or trickles -----

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
    c
}

/// Runs the client of `fake_ssh_client` for `secs`, then SIGTERM; returns
/// its exit status, its log and its status file.
fn fake_ssh_daemon(
    name: &str,
    script: &str,
    extra: &[&str],
    secs: u64,
) -> (i32, String, HashMap<String, String>) {
    let dir = TempDir::new(name);
    let log = dir.join("log");
    let f = std::fs::File::create(&log).unwrap();
    let mut child = fake_ssh_client(&dir, script, extra)
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(secs));
    rustix::process::kill_process(Pid::from_raw(child.id() as i32).unwrap(), Signal::TERM).unwrap();
    let out = wait_limit(&mut child, Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("client ended by {}: {text}", out.status));
    let st = std::fs::read_to_string(dir.join("run/status"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (code, text, st)
}

/// SIGTERM during a stream that delivered nothing ends the client (0)
/// without saying that fetching from the server works.
#[test]
fn sigterm_on_a_silent_stream_does_not_claim_it_works() {
    let (code, log, _) = fake_ssh_daemon(
        "stream-silent",
        "#!/bin/sh
exec sleep 60
",
        &["--mode", "stream", "--connect-timeout", "30s"],
        2,
    );
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
    let r = client_with_fake_ssh(
        "trickle-stream",
        "#!/bin/sh\nwhile :; do head -c 1 /dev/urandom; sleep 0.2; done\n",
        &[
            "--mode",
            "stream",
            "--stall-timeout",
            "5s",
            "--session-timeout",
            "2s",
        ],
        Duration::from_secs(8),
    );
    assert!(
        r.stderr
            .contains("sent less than 512 bytes within --session-timeout; session killed"),
        "{}",
        r.explain()
    );
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

/// An RSA host key that is not the pinned RSA key, through OpenSSH's ssh,
/// against a real sshd and a real Dropbear that hold only that RSA key:
/// exit 76 naming both fingerprints, never 69. (The session never reaches
/// authentication, so no authorized_keys is needed.)
#[test]
fn rsa_pin_mismatch_through_ssh_is_76() {
    need_root();
    let dir = TempDir::new("rsa-pin");
    let ossh_hk = openssh_key(&dir, "sshd_rsa", "rsa");
    let db_hk = dropbear_key(&dir, "dropbear_rsa", "rsa");
    let pinned = openssh_key(&dir, "pinned_rsa", "rsa");
    let id = openssh_key(&dir, "id", "ed25519");
    std::fs::create_dir_all("/run/sshd").unwrap();
    for (name, offered) in [("sshd", &ossh_hk), ("dropbear", &db_hk)] {
        let port = free_port();
        let mut server = if name == "sshd" {
            let cfg = dir.join("sshd_config");
            std::fs::write(
                &cfg,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nUsePAM no\n",
                    offered.private.display()
                ),
            )
            .unwrap();
            Command::new(need("sshd"))
                .args(["-D", "-e", "-f"])
                .arg(&cfg)
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        } else {
            Command::new(need("dropbear"))
                .args(["-F", "-E", "-s", "-p", &format!("127.0.0.1:{port}"), "-r"])
                .arg(&offered.private)
                .args(["-P", &dir.s("dropbear.pid")])
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{name} did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let r = run(Command::new(bin())
            .args(["client", "--ssh", need("ssh").to_str().unwrap()])
            .args(["-p", &port.to_string(), "-i", &id.private_str()])
            .args(["--host-key", &pinned.type_and_key()])
            .args([
                "--status-file",
                &dir.s("run/status"),
                "--seed-dir",
                &dir.s("seed"),
            ])
            .args(["--once", "64", "127.0.0.1"]));
        let _ = server.kill();
        let _ = server.wait();
        let fp = |k: &Keypair| {
            entropyservice::hostkey::PublicKey::parse(&k.public_line)
                .unwrap()
                .fingerprint()
        };
        r.code(76).stderr_has(&fp(&pinned)).stderr_has(&fp(offered));
    }
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
    let log = dir.join("log");
    let f = std::fs::File::create(&log).unwrap();
    let mut child = fake_ssh_client(&dir, "#!/bin/sh\nexec sleep 60\n", &["--mode", "stream"])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    rustix::process::kill_process(Pid::from_raw(child.id() as i32).unwrap(), Signal::TERM).unwrap();
    let out = wait_limit(&mut child, Duration::from_secs(10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{text}");
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
    let setpriv = need("setpriv");
    let dir = TempDir::new("status-dir");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let theirs = open.join("theirs");
    run(Command::new(&setpriv)
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "mkdir",
            "-m",
            "0755",
        ])
        .arg(&theirs))
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
