//! Fixtures for the integration tests: temp dirs, throwaway keys, and a
//! runner that prints the command, status, stdout and stderr when an
//! assertion fails. `servers`: real SSH servers on loopback (Dropbear and
//! OpenSSH) and the commands that reach them; `daemon`: the client daemon
//! under test; `procfs`: what /proc says about processes, and the checks
//! that nothing was left behind. All of it is re-exported here, so a test
//! module says `use crate::util::*`.
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

pub mod daemon;
pub mod procfs;
pub mod servers;

pub use daemon::*;
pub use procfs::*;
pub use servers::*;

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
        self.code(0)
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

    /// Succeeded with exactly `n` bytes on stdout.
    #[track_caller]
    pub fn ok_bytes(&self, n: usize) -> &Run {
        self.ok();
        assert_eq!(
            self.raw_stdout.len(),
            n,
            "expected {n} bytes on stdout\n{}",
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
        self.has("stderr", &self.stderr, s)
    }

    #[track_caller]
    pub fn stdout_has(&self, s: &str) -> &Run {
        self.has("stdout", &self.stdout, s)
    }

    #[track_caller]
    fn has(&self, name: &str, text: &str, s: &str) -> &Run {
        assert!(
            text.contains(s),
            "expected {name} to contain {s:?}\n{}",
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

/// Starts `cmd` with its stdout and stderr on pipes (stdin as the caller
/// set it).
pub fn spawn_piped(cmd: &mut Command) -> Child {
    let desc = describe(cmd);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"))
}

/// Polls `done` every 10 ms until it holds (true) or `limit` has passed
/// (false).
pub fn poll(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `poll`, failing the test, saying what did not happen, after `limit`.
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, done: impl FnMut() -> bool) {
    assert!(poll(limit, done), "no {what} within {limit:?}");
}

/// Fails the test, naming `what`, if more than `limit` has passed since
/// `start`. In a process test only as a generous bound, one that catches a
/// wait that never ends or a timeout that should not have come into it
/// (each use says which); timing itself belongs to the in-process tests
/// with a fake clock.
#[track_caller]
pub fn assert_within(start: Instant, limit: Duration, what: impl std::fmt::Display) {
    let took = start.elapsed();
    assert!(took < limit, "{what} took {took:?}, more than {limit:?}");
}

/// Runs `cmd` to completion with stdin from /dev/null (unless set), killing it after `limit`.
pub fn run_limit(cmd: &mut Command, limit: Duration) -> Run {
    let desc = describe(cmd);
    let mut child = spawn_piped(cmd);
    wait_run(&mut child, &desc, limit)
}

/// Runs `cmd` with `input` on its stdin (then closed), killing it after
/// `limit`. A program that exits before it read everything is no error
/// here: its status says what happened.
pub fn run_input(cmd: &mut Command, input: &[u8], limit: Duration) -> Run {
    use std::io::Write;
    let desc = describe(cmd);
    let mut child = spawn_piped(cmd.stdin(Stdio::piped()));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    wait_run(&mut child, &desc, limit)
}

/// `wait_limit` for a child started with `spawn_piped`, as a `Run`
/// (`what` names it when an assertion fails).
pub fn wait_run(child: &mut Child, what: &str, limit: Duration) -> Run {
    let out = wait_limit(child, limit);
    Run {
        cmd: what.to_string(),
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

/// `n` bytes from the kernel's getrandom.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    entropyservice::sys::getrandom(&mut v, 0).unwrap();
    v
}

/// `(bytes mixed, bits credited)` from the `seed load: N bytes mixed, M
/// bits credited` line of a run.
#[track_caller]
pub fn seed_load_totals(r: &Run) -> (u64, u64) {
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("seed load: "))
        .unwrap_or_else(|| panic!("no `seed load:` line\n{}", r.explain()));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
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

/// The two SSH implementations every SSH test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Dropbear,
    OpenSsh,
}

pub const BOTH: [Flavor; 2] = [Flavor::Dropbear, Flavor::OpenSsh];

/// One test per SSH flavour from one body: `each_flavor!(name);` makes the
/// tests `name::dropbear` and `name::openssh`, which call the function
/// `name(Flavor::Dropbear)` and `name(Flavor::OpenSsh)` of the module it
/// stands in; `each_flavor!(name = body(args));` calls `body(flavor, args)`.
/// A filter `name` selects both.
macro_rules! each_flavor {
    ($name:ident) => {
        each_flavor!($name = $name());
    };
    ($name:ident = $body:ident($($arg:expr),*)) => {
        mod $name {
            #[test]
            fn dropbear() {
                super::$body(crate::util::Flavor::Dropbear $(, $arg)*);
            }

            #[test]
            fn openssh() {
                super::$body(crate::util::Flavor::OpenSsh $(, $arg)*);
            }
        }
    };
}

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

/// `sh -c SCRIPT sh` in a private mount namespace (`unshare -m
/// --propagation private`): what it mounts vanishes with it. Arguments
/// added to the command are the script's `$1`, `$2`, ...
pub fn in_mount_namespace(script: &str) -> Command {
    let mut c = Command::new(need("unshare"));
    c.args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .stdin(Stdio::null());
    c
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

/// `cmd` as it runs on a kernel before 5.18, by that kernel's one difference
/// the client looks at: /proc/sys/kernel/random/poolsize reads 4096 (a file
/// in `dir` bind-mounted over it in a private mount namespace, made by
/// `in_mount_namespace`; `unshare` and
/// `sh` exec into the program, so its pid is the spawned child's). Real:
/// this host's ioctls and getrandom; the host's RNDGETENTCNT stays 256, so
/// such a kernel always has room for credits and the stream never pauses.
/// Not reproduced: the old kernel's own credit accounting.
pub fn on_old_kernel(cmd: &Command, dir: &TempDir) -> Command {
    need_root();
    let f = dir.join("old-kernel-poolsize");
    std::fs::write(&f, "4096\n").unwrap();
    let mut c = in_mount_namespace(
        "mount --bind \"$1\" /proc/sys/kernel/random/poolsize && shift && exec \"$@\"",
    );
    c.arg(&f).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}
