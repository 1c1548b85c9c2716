//! Fixtures for the integration tests: temp dirs, real SSH servers on
//! loopback (Dropbear and OpenSSH) with throwaway keys, and a runner that
//! prints the command, status, stdout and stderr when an assertion fails.
//!
//! Needs: root (for RNDADDENTROPY, mount namespaces and sshd), dropbear,
//! dropbearkey, dbclient, sshd, ssh, ssh-keygen, unshare. A missing tool
//! fails the test loudly; nothing is skipped.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_entropyservice")
}

/// The full path of a required tool; panics with an install hint if absent.
pub fn need(tool: &str) -> PathBuf {
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return p;
        }
    }
    panic!("required tool `{tool}` is missing: install it (see .ci/run: dropbear-bin, openssh-server, openssh-client)");
}

/// A command for `program` that starts with every signal at its default
/// disposition, as sshd and Dropbear start a forced command and as init starts
/// a daemon. A test run under `nohup`, or as a `&` job of a non-interactive
/// shell, has SIGHUP or SIGINT ignored, and an exec'd child would inherit that
/// (std resets only SIGPIPE). Real: coreutils' `env --default-signal` (9.1+).
pub fn default_signals(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(need("env"));
    c.arg("--default-signal").arg(program);
    c
}

pub fn need_root() {
    assert!(
        rustix::process::getuid().is_root(),
        "this test needs root (CAP_SYS_ADMIN for RNDADDENTROPY, namespaces); CI runs as root"
    );
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A directory under /tmp removed on drop. Mode 0700 (SSH servers insist).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("es-test-{}-{}-{}", name, std::process::id(), n));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        TempDir { path }
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }

    pub fn s(&self, p: &str) -> String {
        self.join(p).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The result of running a command, with everything needed to explain a failure.
pub struct Run {
    pub cmd: String,
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

impl Run {
    pub fn explain(&self) -> String {
        format!(
            "command: {}\nstatus: {:?}\nstdout: {}\nstderr: {}",
            self.cmd, self.status, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn ok(&self) -> &Run {
        assert_eq!(self.status, Some(0), "expected success\n{}", self.explain());
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.status,
            Some(code),
            "expected exit status {code}\n{}",
            self.explain()
        );
        self
    }

    /// Exited with anything but status 0 (a signal counts too).
    #[track_caller]
    pub fn failed(&self) -> &Run {
        assert_ne!(
            self.status,
            Some(0),
            "expected a failure\n{}",
            self.explain()
        );
        self
    }

    /// Not one byte on stdout (a refusal sends nothing).
    #[track_caller]
    pub fn no_stdout(&self) -> &Run {
        assert!(
            self.raw_stdout.is_empty(),
            "expected nothing on stdout\n{}",
            self.explain()
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, s: &str) -> &Run {
        assert!(
            self.stderr.contains(s),
            "expected stderr to contain {s:?}\n{}",
            self.explain()
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, s: &str) -> &Run {
        assert!(
            self.stdout.contains(s),
            "expected stdout to contain {s:?}\n{}",
            self.explain()
        );
        self
    }

    /// stderr has exactly one non-empty line.
    #[track_caller]
    pub fn one_line_error(&self) -> &Run {
        let lines = self.stderr.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(lines, 1, "expected a one-line error\n{}", self.explain());
        self
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with stdin from /dev/null (unless set), killing it after `limit`.
pub fn run_limit(cmd: &mut Command, limit: Duration) -> Run {
    let desc = describe(cmd);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let out = wait_limit(&mut child, limit);
    Run {
        cmd: desc,
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        raw_stdout: out.stdout,
    }
}

pub fn run(cmd: &mut Command) -> Run {
    if cmd.get_program() == bin() {
        cmd.stdin(Stdio::null());
    }
    run_limit(cmd, Duration::from_secs(60))
}

/// Waits for a child with piped stdout/stderr, killing it after `limit`.
pub fn wait_limit(child: &mut Child, limit: Duration) -> Output {
    use std::io::Read;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// A loopback TCP port no one listens on, for a server a test starts next.
///
/// Taken from 20000-32767, below Linux's ephemeral range (32768-60999): a
/// port the kernel hands out for `bind(0)` or for an outgoing connection (the
/// SSH clients of parallel tests) could be taken again between this check and
/// the server's own bind. Each test process walks the range from its own
/// offset, so concurrent runs rarely meet; `SshServer` still retries on
/// another port when its server cannot bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20000;
    const SPAN: u32 = 12768;
    let offset = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (offset + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback TCP port in {LOW}-{}", LOW + SPAN - 1);
}

pub struct Keypair {
    pub private: PathBuf,
    /// `TYPE BASE64 comment`
    pub public_line: String,
}

impl Keypair {
    pub fn private_str(&self) -> String {
        self.private.to_string_lossy().into_owned()
    }

    /// `TYPE BASE64` without the comment.
    pub fn type_and_key(&self) -> String {
        self.public_line
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A Dropbear-format key made by the real dropbearkey.
pub fn dropbear_key(dir: &TempDir, name: &str, kind: &str) -> Keypair {
    let private = dir.join(name);
    let mut c = Command::new(need("dropbearkey"));
    c.args(["-t", kind, "-f"]).arg(&private);
    if kind == "rsa" {
        c.args(["-s", "2048"]);
    }
    run(&mut c).ok();
    let r = run(Command::new(need("dropbearkey"))
        .args(["-y", "-f"])
        .arg(&private));
    let public_line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("ssh-") || l.starts_with("ecdsa-"))
        .expect("dropbearkey -y printed no key")
        .to_string();
    Keypair {
        private,
        public_line,
    }
}

/// An OpenSSH-format key made by the real ssh-keygen.
pub fn openssh_key(dir: &TempDir, name: &str, kind: &str) -> Keypair {
    let private = dir.join(name);
    run(Command::new(need("ssh-keygen"))
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&private))
    .ok();
    let public_line = std::fs::read_to_string(private.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string();
    Keypair {
        private,
        public_line,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Dropbear,
    OpenSsh,
}

/// A real SSH server on 127.0.0.1:port, authenticating root with the
/// authorized_keys file at `authorized_keys` (which tests may rewrite at any
/// time; both servers read it on each login).
///
/// Dropbear has no option for the authorized_keys path: it reads
/// ~root/.ssh/authorized_keys. It runs in its own mount namespace (unshare -m)
/// with this fixture's directory bind-mounted on /root/.ssh, so tests can run
/// in parallel without touching the real file.
///
/// Both servers run the forced command through root's shell, and bash reads
/// ~/.bashrc when started by an SSH server. A developer's .bashrc (here: a
/// pyenv init that takes a global lock) would make sessions slow and noisy,
/// so each server's namespace also mounts /dev/null over /root/.bashrc.
///
/// The forced commands' default session lock directory, /run/entropyservice,
/// is a directory of this fixture in that namespace too: concurrent test runs
/// never share slots, and the machine's /run/entropyservice stays untouched.
pub struct SshServer {
    pub flavor: Flavor,
    pub port: u16,
    pub dir: TempDir,
    pub authorized_keys: PathBuf,
    /// `TYPE BASE64` of the host key, for --host-key.
    pub host_key: String,
    pub log: PathBuf,
    child: Child,
}

impl SshServer {
    pub fn start(flavor: Flavor, authorized_keys: &str) -> SshServer {
        Self::start_on(flavor, authorized_keys, "127.0.0.1")
    }

    /// `listen` is the address to bind (127.0.0.1, or ::1 for OpenSSH).
    /// A port taken by another process between `free_port` and the server's
    /// bind makes the server exit: then this tries another port (3 tries).
    pub fn start_on(flavor: Flavor, authorized_keys: &str, listen: &str) -> SshServer {
        need_root();
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(flavor, authorized_keys, listen) {
                Ok(s) => return s,
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{flavor:?} server found no free port in 3 tries: {last}");
    }

    fn try_start(flavor: Flavor, authorized_keys: &str, listen: &str) -> Result<SshServer, String> {
        let dir = TempDir::new("sshd");
        let ssh_dir = dir.join("ssh");
        std::fs::create_dir(&ssh_dir).unwrap();
        let authorized = ssh_dir.join("authorized_keys");
        std::fs::write(&authorized, authorized_keys).unwrap();
        let log = dir.join("server.log");
        let logf = std::fs::File::create(&log).unwrap();
        let port = free_port();
        // The forced commands' default --lock-dir, private to this server.
        let run_es = dir.join("run-entropyservice");
        std::fs::create_dir(&run_es).unwrap();
        let private_run = format!(
            "mkdir -p /run/entropyservice && mount --bind {} /run/entropyservice || exit 1; ",
            run_es.display()
        );
        let (child, host_key) = match flavor {
            Flavor::Dropbear => {
                let hk = dropbear_key(&dir, "host_ed25519", "ed25519");
                std::fs::create_dir_all("/root/.ssh").unwrap();
                let script = format!(
                    "{MASK_BASHRC}{private_run}mount --bind {} /root/.ssh && exec {} -F -E -s -p {}:{} -r {} -P {}",
                    ssh_dir.display(),
                    need("dropbear").display(),
                    listen,
                    port,
                    hk.private.display(),
                    dir.join("pid").display()
                );
                let child = default_signals(need("unshare"))
                    .args(["-m", "--propagation", "private", "sh", "-c", &script])
                    .stdin(Stdio::null())
                    .stdout(logf.try_clone().unwrap())
                    .stderr(logf)
                    .spawn()
                    .unwrap();
                (child, hk.type_and_key())
            }
            Flavor::OpenSsh => {
                let hk = openssh_key(&dir, "host_ed25519", "ed25519");
                std::fs::create_dir_all("/run/sshd").unwrap();
                let cfg = dir.join("sshd_config");
                std::fs::write(
                    &cfg,
                    format!(
                        "Port {port}\nListenAddress {listen}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\n\
                         PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                         UsePAM no\nStrictModes no\nLogLevel VERBOSE\nMaxStartups 300:30:400\nMaxSessions 50\n",
                        hk.private.display(),
                        authorized.display()
                    ),
                )
                .unwrap();
                let script = format!(
                    "{MASK_BASHRC}{private_run}exec {} -D -e -f {}",
                    need("sshd").display(),
                    cfg.display()
                );
                let child = default_signals(need("unshare"))
                    .args(["-m", "--propagation", "private", "sh", "-c", &script])
                    .stdin(Stdio::null())
                    .stdout(logf.try_clone().unwrap())
                    .stderr(logf)
                    .spawn()
                    .unwrap();
                (child, hk.type_and_key())
            }
        };
        let mut s = SshServer {
            flavor,
            port,
            dir,
            authorized_keys: authorized,
            host_key,
            log,
            child,
        };
        s.wait_listening(listen)?;
        Ok(s)
    }

    /// Waits for the port to answer, then checks that our server (still
    /// running, its log free of bind errors) is the one that answers.
    fn wait_listening(&mut self, listen: &str) -> Result<(), String> {
        let start = Instant::now();
        let addr = if listen.contains(':') {
            format!("[{listen}]:{}", self.port)
        } else {
            format!("{listen}:{}", self.port)
        };
        while start.elapsed() < Duration::from_secs(10) {
            let answered = std::net::TcpStream::connect(&addr).is_ok();
            if answered {
                // Another process's server could answer on the port ours
                // failed to bind: ours must still be running a moment later.
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!(
                    "{:?} server exited with {st}: {}",
                    self.flavor,
                    self.log_text()
                ));
            }
            if answered {
                let log = self.log_text();
                if log.contains("in use") {
                    self.kill();
                    return Err(format!("{:?} server on {addr}: {log}", self.flavor));
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "{:?} server did not listen on {addr}: {}",
            self.flavor,
            self.log_text()
        ))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn set_authorized_keys(&self, text: &str) {
        std::fs::write(&self.authorized_keys, text).unwrap();
    }

    /// The client program of the same family.
    pub fn client_program(&self) -> PathBuf {
        match self.flavor {
            Flavor::Dropbear => need("dbclient"),
            Flavor::OpenSsh => need("ssh"),
        }
    }

    /// A client key in the format this server's client program reads.
    pub fn client_key(&self, dir: &TempDir, name: &str) -> Keypair {
        match self.flavor {
            Flavor::Dropbear => dropbear_key(dir, name, "ed25519"),
            Flavor::OpenSsh => openssh_key(dir, name, "ed25519"),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        // Dropbear forks per connection; its session children die with their sockets.
        self.kill();
    }
}

/// Shell prefix run inside a server's mount namespace; see `SshServer`.
const MASK_BASHRC: &str =
    "if [ -e /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc || exit 1; fi; ";

/// Shell prefix, run in a private mount namespace (`unshare -m --propagation
/// private`), that gives the commands after it a `/dev/hwrng` whether or not
/// this machine has a hardware RNG: where there is none (most CI machines and
/// containers), a tmpfs with copies of the real null, zero, full, random and
/// urandom nodes and an empty root-owned 0600 `hwrng` file is mounted on /dev,
/// for that namespace only. Tests then mount what they need over
/// /dev/hwrng, or rely on its owner and mode; none reads a real device.
pub const DEV_HWRNG: &str = "if [ ! -e /dev/hwrng ]; then \
     t=$(mktemp -d) && mount -t tmpfs -o mode=0755 es-dev \"$t\" \
     && cp -a /dev/null /dev/zero /dev/full /dev/random /dev/urandom \"$t\"/ \
     && : >\"$t/hwrng\" && chmod 600 \"$t/hwrng\" && mount --bind \"$t\" /dev \
     && umount \"$t\" && rmdir \"$t\" || { echo 'cannot make a stand-in /dev/hwrng' >&2; exit 1; }; fi; ";

/// An authorized_keys line that runs `command` for `key`.
pub fn forced_line(command: &str, key: &Keypair) -> String {
    format!("command=\"{command}\",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding {}\n", key.type_and_key())
}

/// `entropyservice server ARGS` as a forced command.
pub fn server_command(args: &str) -> String {
    format!("{} server {args}", bin())
}

/// An `entropyservice client` command against `srv` with `key`, pinned host
/// key and a private status file; more args follow.
pub fn client_cmd(srv: &SshServer, key: &Keypair, dir: &TempDir) -> Command {
    client_cmd_opts(srv, key, dir, &[])
}

/// Like `client_cmd`, with some of its options replaced by `over`
/// (flag, value) pairs (argh refuses an option given twice).
pub fn client_cmd_opts(
    srv: &SshServer,
    key: &Keypair,
    dir: &TempDir,
    over: &[(&str, &str)],
) -> Command {
    let port = srv.port.to_string();
    let ssh = srv.client_program().to_string_lossy().into_owned();
    let (status, seed, keyf) = (dir.s("status"), dir.s("seed"), key.private_str());
    let defaults: [(&str, &str); 8] = [
        ("--ssh", &ssh),
        ("-p", &port),
        ("-i", &keyf),
        ("--host-key", &srv.host_key),
        ("--status-file", &status),
        ("--seed-dir", &seed),
        ("--connect-timeout", "15s"),
        ("--stall-timeout", "5s"),
    ];
    let mut c = Command::new(bin());
    c.arg("client");
    for (flag, value) in defaults {
        let v = over
            .iter()
            .find(|(f, _)| *f == flag)
            .map(|(_, v)| *v)
            .unwrap_or(value);
        c.args([flag, v]);
    }
    for (flag, value) in over {
        if !defaults.iter().any(|(f, _)| f == flag) {
            c.args([flag, value]);
        }
    }
    c
}

/// Pids of live processes whose parent is `ppid`.
pub fn children_of(ppid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the ")" of the command name: state ppid ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let _state = f.next();
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(ppid) {
            v.push(pid);
        }
    }
    v
}

/// Is `pid` a zombie?
pub fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

/// OpenSSH's `ssh` to `srv` with `key`, trusting only the server's host
/// key (pinned in `dir`/known_hosts), with no config file, agent-held keys or
/// questions; `args` follow (options, the destination, the remote command).
pub fn pinned_ssh(srv: &SshServer, key: &Keypair, dir: &TempDir, args: &[&str]) -> Command {
    let kh = dir.join("known_hosts");
    std::fs::write(&kh, format!("[127.0.0.1]:{} {}\n", srv.port, srv.host_key)).unwrap();
    let mut c = Command::new(need("ssh"));
    c.args(["-F", "/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "IdentitiesOnly=yes", "-i", &key.private_str()])
        .args(["-p", &srv.port.to_string()])
        .args(args)
        .stdin(Stdio::null());
    c
}

/// A server of `flavor` whose only key runs `command` as its forced command,
/// the client key for it, and a temp dir.
pub fn forced_server(flavor: Flavor, command: &str) -> (SshServer, Keypair, TempDir) {
    let dir = TempDir::new("srv");
    let srv = SshServer::start(flavor, "");
    let key = srv.client_key(&dir, "id");
    srv.set_authorized_keys(&forced_line(command, &key));
    (srv, key, dir)
}

/// SSH client processes (dbclient or ssh) with `port` on their command line.
pub fn ssh_clients_for(port: u16) -> Vec<u32> {
    let p = port.to_string();
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args
            .first()
            .is_some_and(|a| a.ends_with("dbclient") || a.ends_with("/ssh"))
            && args.contains(&p)
        {
            v.push(pid);
        }
    }
    v
}

/// No SSH client for `port` may outlive the entropyservice process that ran
/// it: waits up to 3 s for them to go.
#[track_caller]
pub fn assert_no_ssh_client_for(port: u16) {
    let start = Instant::now();
    loop {
        let left = ssh_clients_for(port);
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "SSH client processes left behind for port {port}: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `script` with sh as nobody (`setpriv --reuid 65534`).
pub fn as_nobody(script: &str) -> Command {
    let mut c = Command::new(need("setpriv"));
    c.args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "sh",
        "-c",
        script,
    ]);
    c
}
