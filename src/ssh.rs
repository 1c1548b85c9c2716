//! The SSH child: building a safe command line for dbclient or ssh, pinning
//! the host key in a private known_hosts, reading the child's stdout with a
//! poll watchdog, and killing and reaping it on every exit path.

use crate::child::{find_program, Child, SYSTEM_PATH};
use crate::error::{Error, Result, Status};
use crate::fd::{timespec, OsError, Ready, Wait, Want};
use crate::hostkey::PublicKey;
use crate::parse;
use crate::sys::poll;
use crate::text::msg;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Dropbear,
    OpenSsh,
}

/// The SSH client program to run.
#[derive(Clone, Debug)]
pub struct Program {
    pub path: String,
    pub flavor: Flavor,
}

fn flavor_of(path: &str) -> Flavor {
    // OpenWrt links ssh to dropbear's multi-call binary: look at the real file.
    let real = link_target(path);
    let name = real.rsplit('/').next().unwrap_or(path);
    if name.contains("dbclient") || name.contains("dropbear") || path.ends_with("dbclient") {
        Flavor::Dropbear
    } else {
        Flavor::OpenSsh
    }
}

/// Where the symbolic links starting at `path` end (at most 8 hops; the
/// file name is all `flavor_of` needs, so directory links are not resolved).
fn link_target(path: &str) -> String {
    let mut p = path.to_string();
    for _ in 0..8 {
        let Ok(t) = rustix::fs::readlink(p.as_str(), Vec::new()) else {
            break;
        };
        let t = String::from_utf8_lossy(t.as_bytes()).into_owned();
        p = match (t.starts_with('/'), p.rfind('/')) {
            (false, Some(i)) => msg(&[&p[..=i], &t]),
            _ => t,
        };
    }
    p
}

/// Removes the entries of directory `dir` (files, and empty directories).
fn empty_dir(dir: &str) {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::open(dir, flags, Mode::empty()) else {
        return;
    };
    // getdents64 into a stack buffer: rustix's Dir is musl's fdopendir where
    // rustix uses libc (big-endian MIPS), which links calloc and a malloc.
    let mut buf = [core::mem::MaybeUninit::uninit(); 2048];
    let mut entries = rustix::fs::RawDir::new(&fd, &mut buf);
    while let Some(Ok(e)) = entries.next() {
        let name = e.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        if rustix::fs::unlinkat(&fd, name, AtFlags::empty()) == Err(Errno::ISDIR) {
            let _ = rustix::fs::unlinkat(&fd, name, AtFlags::REMOVEDIR);
        }
    }
}

/// Removes a `home-PID` directory: `.ssh`'s files, `.ssh`, the rest, itself.
fn remove_home(dir: &str) {
    empty_dir(&msg(&[dir, "/.ssh"]));
    empty_dir(dir);
    let _ = std::fs::remove_dir(dir);
}

impl Program {
    /// `--ssh` as given (a name on PATH or a path), else dbclient, else ssh.
    pub fn find(choice: Option<&str>) -> Result<Program> {
        let path = match choice {
            Some(c) if c.contains('/') => {
                if std::fs::metadata(c).is_err() {
                    return Err(Error::new(Status::NoInput, msg(&["SSH client ", c, " does not exist; install dropbear or openssh-client, or fix --ssh"])));
                }
                c.to_string()
            }
            Some(c) => find_program(c, "")
                .ok_or_else(|| Error::new(Status::NoInput, msg(&["SSH client ", c, " not found on PATH; install it or give its full path with --ssh"])))?,
            None => find_program("dbclient", "").or_else(|| find_program("ssh", "")).ok_or_else(|| {
                Error::new(Status::NoInput, "no SSH client found: neither dbclient nor ssh is on PATH; install dropbear or openssh-client, or use --ssh PATH")
            })?,
        };
        let flavor = flavor_of(&path);
        Ok(Program { path, flavor })
    }
}

/// One server to fetch from.
#[derive(Clone, Debug)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: Option<String>,
    pub host_key: PublicKey,
    pub agent: bool,
}

impl Server {
    /// `user@host:port`, for log lines.
    pub fn label(&self) -> String {
        let port = crate::text::Num::new(self.port as u64);
        msg(&[&self.user, "@", &self.host, ":", port.as_str()])
    }
}

/// Refuses a private key that is missing or readable by group or others.
pub fn check_key_file(path: &str) -> Result<()> {
    let m = std::fs::metadata(path).map_err(|e| {
        let mut s = msg(&["key file ", path, " cannot be read ("]);
        crate::error::push_display(&mut s, e);
        s.push_str("); create it with `entropyservice keygen --out ");
        s.push_str(path);
        s.push_str("` or fix -i");
        Error::new(Status::NoInput, s)
    })?;
    if !m.is_file() {
        return Err(Error::new(
            Status::NoInput,
            msg(&["key file ", path, " is not a regular file"]),
        ));
    }
    if key_format(path) == KeyFormat::Public {
        return Err(Error::new(
            Status::Usage,
            msg(&[
                "key file ",
                path,
                " is a public key; give -i the private key (usually the same name without .pub)",
            ]),
        ));
    }
    if m.permissions().mode() & 0o077 != 0 {
        return Err(Error::new(
            Status::NoPerm,
            msg(&[
                "key file ",
                path,
                " is readable by group or others; run: chmod 600 ",
                path,
            ]),
        ));
    }
    Ok(())
}

/// Refuses a runtime directory that OpenSSH would not read as one plain
/// path in `UserKnownHostsFile=`: it splits that value on whitespace, takes
/// quotes and backslashes as quoting and expands `%` tokens and a leading
/// `~`, so such a path could make it read a known_hosts someone planted
/// (say `/tmp/a` for `/tmp/a b`) instead of the pinned one.
pub fn check_runtime_dir(dir: &str) -> Result<()> {
    let odd = dir.starts_with('~')
        || dir.bytes().any(|b| {
            b.is_ascii_whitespace()
                || b.is_ascii_control()
                || matches!(b, b'%' | b'"' | b'\'' | b'\\')
        });
    if odd {
        let shown: String = dir
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        return Err(Error::new(
            Status::Usage,
            msg(&[
                "runtime directory ",
                &shown,
                " has a space, '%', a quote, a backslash or a leading '~', which the SSH client would not read as one path; choose --runtime-dir (default: the status file's directory) such as /run/entropyservice",
            ]),
        ));
    }
    Ok(())
}

/// What a key file holds, judged from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFormat {
    /// `-----BEGIN ...` (ssh-keygen's OpenSSH or PEM private key): ssh reads it.
    OpenSsh,
    /// dropbearkey's binary format (a length-prefixed key type): dbclient reads it.
    Dropbear,
    /// A `TYPE BASE64 comment` public key line.
    Public,
    Unknown,
}

pub fn key_format(path: &str) -> KeyFormat {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    key_format_of(&head[..n])
}

pub fn key_format_of(head: &[u8]) -> KeyFormat {
    let is_type =
        |t: &[u8]| t.starts_with(b"ssh-") || t.starts_with(b"ecdsa-") || t.starts_with(b"sk-");
    if head.starts_with(b"-----BEGIN ") {
        return KeyFormat::OpenSsh;
    }
    if is_type(head) {
        return KeyFormat::Public;
    }
    if let Some(len) = head.get(..4) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if (7..=40).contains(&len) && head.get(4..4 + len).is_some_and(is_type) {
            return KeyFormat::Dropbear;
        }
    }
    KeyFormat::Unknown
}

/// The SSH client program (`--ssh`, or by default the one that reads the
/// servers' key files: dbclient for Dropbear keys, ssh for OpenSSH keys,
/// else dbclient, then ssh), refusing a key in a format it cannot read.
pub fn pick_program(choice: Option<&str>, servers: &[Server]) -> Result<Program> {
    let first = servers
        .iter()
        .find_map(|s| s.key.as_deref())
        .map(key_format);
    let p = match (choice, first) {
        (None, Some(KeyFormat::OpenSsh)) => {
            Program::find(Some("ssh")).or_else(|_| Program::find(None))?
        }
        (None, Some(KeyFormat::Dropbear)) => {
            Program::find(Some("dbclient")).or_else(|_| Program::find(None))?
        }
        _ => Program::find(choice)?,
    };
    for k in servers.iter().filter_map(|s| s.key.as_deref()) {
        let (fmt, reader, conv) = match (key_format(k), p.flavor) {
            (KeyFormat::OpenSsh, Flavor::Dropbear) => (
                "OpenSSH",
                "dbclient",
                "use --ssh ssh, or convert it: dropbearconvert openssh dropbear ",
            ),
            (KeyFormat::Dropbear, Flavor::OpenSsh) => (
                "Dropbear",
                "OpenSSH's ssh",
                "use --ssh dbclient, or convert it: dropbearconvert dropbear openssh ",
            ),
            _ => continue,
        };
        let mut m = msg(&[
            "key file ",
            k,
            " is in ",
            fmt,
            " format, which ",
            reader,
            " cannot read; ",
            conv,
            k,
            " ",
        ]);
        m.push_str(k);
        m.push_str(if p.flavor == Flavor::Dropbear {
            ".dropbear"
        } else {
            ".openssh"
        });
        m.push_str(" and pass that with -i");
        return Err(Error::new(Status::Config, m));
    }
    Ok(p)
}

/// A private HOME with `.ssh/known_hosts` holding only the pinned key.
/// Removed on drop.
struct PinnedHome {
    dir: String,
}

impl PinnedHome {
    fn create(runtime: &str, server: &Server, flavor: Flavor) -> Result<PinnedHome> {
        check_runtime_dir(runtime)?;
        sweep_stale_homes(runtime);
        let pid = crate::text::Num::new(std::process::id() as u64);
        let dir = msg(&[runtime, "/home-", pid.as_str()]);
        remove_home(&dir);
        let ssh_dir = msg(&[&dir, "/.ssh"]);
        crate::sys::create_dir_all(&ssh_dir, 0o700)
            .map_err(|e| Error::os(Status::CantCreate, &msg(&["cannot create ", &ssh_dir]), e))?;
        // dbclient matches known_hosts by host name only; OpenSSH wants
        // [host]:port for a port other than 22.
        let mut line = String::new();
        if flavor == Flavor::OpenSsh && server.port != 22 {
            let port = crate::text::Num::new(server.port as u64);
            line.push_str(&msg(&["[", &server.host, "]:", port.as_str()]));
        } else {
            line.push_str(&server.host);
        }
        line.push(' ');
        line.push_str(&server.host_key.line());
        line.push('\n');
        let path = msg(&[&ssh_dir, "/known_hosts"]);
        let home = PinnedHome { dir };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::os(Status::CantCreate, &msg(&["cannot create ", &path]), e))?;
        std::io::Write::write_all(&mut f, line.as_bytes())
            .map_err(|e| Error::os(Status::CantCreate, &msg(&["cannot write ", &path]), e))?;
        Ok(home)
    }

    fn known_hosts(&self) -> String {
        msg(&[&self.dir, "/.ssh/known_hosts"])
    }
}

/// Removes `home-PID` directories of clients that died without cleaning up
/// (kill -9, power loss on a persistent runtime dir). Once per process.
fn sweep_stale_homes(runtime: &str) {
    use core::sync::atomic::{AtomicBool, Ordering};
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::Relaxed) {
        return;
    }
    let flags =
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::open(runtime, flags, rustix::fs::Mode::empty()) else {
        return;
    };
    let mut buf = [core::mem::MaybeUninit::uninit(); 2048];
    let mut entries = rustix::fs::RawDir::new(&fd, &mut buf);
    while let Some(Ok(e)) = entries.next() {
        let Some(name) = e
            .file_name()
            .to_str()
            .ok()
            .and_then(|n| n.strip_prefix("home-"))
        else {
            continue;
        };
        let Some(pid) = parse::decimal(name)
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        if rustix::process::test_kill_process(pid) == Err(Errno::SRCH) {
            remove_home(&msg(&[runtime, "/home-", name]));
        }
    }
}

impl Drop for PinnedHome {
    fn drop(&mut self) {
        remove_home(&self.dir);
    }
}

fn host_key_algorithms(kind: &str) -> &str {
    match kind {
        "ssh-rsa" => "rsa-sha2-512,rsa-sha2-256,ssh-rsa",
        k => k,
    }
}

/// The argument vector for the child, after the program name. Only checked
/// values go in: host and user passed `parse::is_safe_*`, the command is
/// built by this program.
pub fn arguments(
    p: &Program,
    s: &Server,
    known_hosts: &str,
    command: &str,
    connect_timeout_s: u64,
) -> Vec<String> {
    let port = crate::text::Num::new(s.port as u64);
    let mut a: Vec<String> = Vec::with_capacity(40);
    let mut push = |x: &str| a.push(x.to_string());
    match p.flavor {
        Flavor::Dropbear => {
            for x in [
                "-T",
                "-K",
                "15",
                "-I",
                "0",
                "-p",
                port.as_str(),
                "-l",
                &s.user,
            ] {
                push(x);
            }
            if let Some(k) = &s.key {
                push("-i");
                push(k);
            }
        }
        Flavor::OpenSsh => {
            let ct = crate::text::Num::new(connect_timeout_s.max(1));
            let uk = msg(&["UserKnownHostsFile=", known_hosts]);
            let hka = msg(&["HostKeyAlgorithms=", host_key_algorithms(&s.host_key.kind)]);
            let cto = msg(&["ConnectTimeout=", ct.as_str()]);
            for x in [
                "-T",
                "-x",
                "-a",
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                &uk,
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                &hka,
                "-o",
                "CheckHostIP=no",
                "-o",
                "UpdateHostKeys=no",
                "-o",
                &cto,
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=3",
                "-o",
                "PasswordAuthentication=no",
                "-o",
                "KbdInteractiveAuthentication=no",
                "-o",
                "ClearAllForwardings=yes",
                "-p",
                port.as_str(),
                "-l",
                &s.user,
            ] {
                push(x);
            }
            if !s.agent {
                push("-o");
                push("IdentityAgent=none");
            }
            if let Some(k) = &s.key {
                push("-o");
                push("IdentitiesOnly=yes");
                push("-i");
                push(k);
            }
        }
    }
    push(&s.host);
    push(command);
    a
}

/// A running SSH child. Dropping it kills and reaps the child.
///
/// Its stdout is an `embedded_io` reader with a [`Ready`] wait, so the
/// client's stages run on it here and on a fake in tests.
pub struct Session {
    child: Child,
    out: File,
    err: Option<File>,
    errbuf: heapless::Vec<u8, 2048>,
    _home: PinnedHome,
    reaped: bool,
    /// The child asked to accept an unknown host key and was killed: its
    /// output reads as the end of the stream.
    refused: bool,
}

impl Session {
    pub fn start(
        p: &Program,
        s: &Server,
        command: &str,
        runtime: &str,
        connect_timeout_s: u64,
    ) -> Result<Session> {
        // Checked again for every session: a daemon outlives edits to its
        // key file, and dbclient's own message for a missing key is vague.
        if let Some(k) = &s.key {
            check_key_file(k)?;
        }
        let home = PinnedHome::create(runtime, s, p.flavor)?;
        let args = arguments(p, s, &home.known_hosts(), command, connect_timeout_s);
        let sock = crate::sys::env_bytes(c"SSH_AUTH_SOCK").filter(|_| s.agent);
        let spawned = {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut env: heapless::Vec<(&str, &[u8]), 3> = heapless::Vec::new();
            let _ = env.push(("PATH", SYSTEM_PATH.as_bytes()));
            let _ = env.push(("HOME", home.dir.as_bytes()));
            if let Some(sock) = sock {
                let _ = env.push(("SSH_AUTH_SOCK", sock));
            }
            Child::spawn(&p.path, &args, Some(&env), true)
        };
        let (child, out, err) = spawned
            .map_err(|e| Error::os(Status::Unavailable, &msg(&["cannot start ", &p.path]), e))?;
        Ok(Session {
            child,
            out,
            err: Some(err),
            errbuf: heapless::Vec::new(),
            _home: home,
            reaped: false,
            refused: false,
        })
    }

    /// The SSH child asks whether to accept an unknown host key.
    fn asks_to_accept_host_key(&self) -> bool {
        const Q: &[u8] = b"Do you want to continue connecting";
        self.errbuf.windows(Q.len()).any(|w| w == Q)
    }

    fn drain_stderr(&mut self) {
        let mut tmp = [0u8; 512];
        let n = match self.err.as_mut().map(|e| e.read(&mut tmp)) {
            Some(Ok(n)) if n > 0 => n,
            _ => {
                self.err = None;
                return;
            }
        };
        let room = self.errbuf.capacity() - self.errbuf.len();
        let _ = self.errbuf.extend_from_slice(&tmp[..n.min(room)]);
    }

    /// Kills the child (if still running), reaps it and returns what it said
    /// on stderr and whether it exited with status 0 by itself.
    pub fn finish(mut self) -> (bool, String) {
        let clean = self.reap();
        (clean, String::from_utf8_lossy(&self.errbuf).into_owned())
    }

    fn reap(&mut self) -> bool {
        if self.reaped {
            return false;
        }
        self.reaped = true;
        // Give a child that already hit EOF up to 100 ms to exit by itself.
        self.wait_exit(100_000_000);
        if let Ok(Some(st)) = self.child.try_wait() {
            while self.err.is_some() {
                self.drain_stderr();
            }
            return crate::child::success(st);
        }
        self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// Waits up to `timeout_ns` for the child to exit, without reaping it:
    /// one poll on a pidfd (Linux 5.3+), else a short polling loop.
    fn wait_exit(&mut self, timeout_ns: u64) {
        let end = crate::clock::now_ns().saturating_add(timeout_ns);
        let pidfd =
            rustix::process::pidfd_open(self.child.pid(), rustix::process::PidfdFlags::empty())
                .ok();
        loop {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            let now = crate::clock::now_ns();
            if now >= end {
                return;
            }
            match &pidfd {
                Some(fd) => {
                    let ts = timespec(end - now);
                    let mut fds = [PollFd::new(fd, PollFlags::IN)];
                    // Readable once the child has exited; EINTR just loops.
                    let _ = poll(&mut fds, Some(&ts));
                }
                None => {
                    crate::clock::sleep_ns((end - now).min(2_000_000));
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.reaped {
            self.reaped = true;
            self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl embedded_io::ErrorType for Session {
    type Error = OsError;
}

impl embedded_io::Read for Session {
    /// The child's stdout: read after [`Ready::wait`] said it is readable
    /// (it is a blocking pipe). 0 is the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> core::result::Result<usize, OsError> {
        if self.refused {
            return Ok(0);
        }
        self.out
            .read(buf)
            .map_err(|e| OsError(e.raw_os_error().map_or(Errno::IO, Errno::from_raw_os_error)))
    }
}

impl Ready for Session {
    /// Waits until `deadline` for bytes (or the end) on the child's stdout,
    /// collecting its stderr meanwhile: stderr chatter does not end the
    /// wait. Blocking reads, with poll as the watchdog. Only reading is
    /// waited for; a signal other than a terminating one (SIGUSR1, SIGCHLD)
    /// does not end the wait either.
    fn wait(&mut self, _want: Want, deadline: u64) -> Wait {
        loop {
            let now = crate::clock::now_ns();
            if now >= deadline {
                return Wait::Timeout;
            }
            let ts = timespec(deadline - now);
            let (out_ready, err_ready) = {
                let mut fds: heapless::Vec<PollFd<'_>, 2> = heapless::Vec::new();
                let _ = fds.push(PollFd::new(&self.out, PollFlags::IN));
                if let Some(e) = &self.err {
                    let _ = fds.push(PollFd::new(e, PollFlags::IN));
                }
                match poll(&mut fds, Some(&ts)) {
                    Ok(0) => return Wait::Timeout,
                    Ok(_) => {}
                    Err(Errno::INTR) if crate::sys::pending_signal().is_some() => {
                        return Wait::Signal
                    }
                    Err(Errno::INTR) => continue,
                    Err(e) => return Wait::Failed(e),
                }
                let o = !fds[0].revents().is_empty();
                let e = fds.get(1).map(|f| !f.revents().is_empty()).unwrap_or(false);
                (o, e)
            };
            if err_ready {
                self.drain_stderr();
                if self.asks_to_accept_host_key() {
                    // dbclient asks even with no tty and stdin at EOF, and
                    // then spins at 100% CPU: its question is the refusal.
                    self.child.kill();
                    self.refused = true;
                    return Wait::Ready;
                }
            }
            if out_ready {
                return Wait::Ready;
            }
        }
    }
}

/// Classifies an SSH failure from the child's stderr. Host-key failures get
/// a message naming both fingerprints.
pub fn diagnose(s: &Server, stderr: &str) -> Error {
    let hk = [
        "mismatch",
        "IDENTIFICATION HAS CHANGED",
        "not in the trusted hosts",
        "Host key verification failed",
        "Didn't validate host key",
        "no matching host key type",
        "host key is known",
    ];
    if hk.iter().any(|p| stderr.contains(p)) {
        let pinned = s.host_key.fingerprint();
        let offered = stderr
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
            .map(|w| w.trim_end_matches(['.', ',', ')']))
            .find(|w| w.starts_with("SHA256:") && *w != pinned)
            .unwrap_or("unknown (the server offers no key of the pinned type)");
        return Error::new(
            Status::HostKey,
            msg(&[
                "host key of ",
                &s.host,
                " does not match the pinned key ",
                &pinned,
                " (server offered ",
                offered,
                "); update --host-key if the server was re-keyed",
            ]),
        );
    }
    let last = crate::text::last_line(stderr, 300);
    // A refusal relayed from `entropyservice server` (its one "error: ..."
    // line): keep its class, so scripts can tell "try later" from "fix this".
    if let Some(why) = last.strip_prefix("error: ") {
        let (status, hint) = if why.contains("try again later") {
            (Status::TempFail, "")
        } else if why.contains("--max-bytes") {
            (
                Status::Config,
                "; ask for at most the server's --max-bytes (--get-bytes, --once)",
            )
        } else if why.starts_with("bad request") {
            (Status::Data, "")
        } else if why.contains("--allow-from") {
            (Status::NoPerm, "")
        } else {
            (Status::Unavailable, "")
        };
        return Error::new(
            status,
            msg(&["server ", &s.label(), " refused: ", why, hint]),
        );
    }
    let denied = stderr.contains("ermission denied")
        || stderr.contains("No auth methods")
        || stderr.contains("Exhausted available authentication");
    let status = if denied {
        Status::NoPerm
    } else {
        Status::Unavailable
    };
    let mut m = msg(&["SSH session to ", &s.label(), " failed: ", last]);
    if denied {
        m.push_str(
            "; check that the key's public half is in the server's authorized_keys for user ",
        );
        m.push_str(&s.user);
        m.push_str(" (entropyservice authorize there) and that -l/USER@ names that user");
    }
    Error::new(status, m)
}

/// Checks a user-supplied host and user for use as SSH arguments.
/// `HOST:PORT` split in two (one colon, digits after it; an IPv6 address
/// has more colons), which ssh would take as a host name.
pub fn host_with_port(host: &str) -> Option<(&str, &str)> {
    let (h, port) = host.split_once(':')?;
    (!h.is_empty()
        && !port.is_empty()
        && !port.contains(':')
        && port.bytes().all(|b| b.is_ascii_digit()))
    .then_some((h, port))
}

pub fn check_target(host: &str, user: &str) -> Result<()> {
    if let Some((h, port)) = host_with_port(host) {
        return Err(Error::new(
            Status::Usage,
            msg(&[
                "HOST:PORT is not understood (",
                host,
                "): give the port with -p, e.g. -p ",
                port,
                " ",
                h,
            ]),
        ));
    }
    if !parse::is_safe_host(host) {
        return Err(Error::new(
            Status::Usage,
            msg(&[
                "invalid host name ",
                host,
                ": use letters, digits, '.', '-', ':' only",
            ]),
        ));
    }
    if !parse::is_safe_name(user) {
        return Err(Error::new(
            Status::Usage,
            msg(&["invalid user name ", user]),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::NS;

    fn scratch(name: &str) -> String {
        let d = std::env::temp_dir().join(format!("es-ssh-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.to_str().unwrap().to_string()
    }

    #[test]
    fn link_target_follows_relative_and_absolute_links() {
        let d = scratch("links");
        std::fs::write(format!("{d}/dropbear"), b"").unwrap();
        std::os::unix::fs::symlink("dropbear", format!("{d}/dbclient")).unwrap();
        std::os::unix::fs::symlink(format!("{d}/dbclient"), format!("{d}/ssh")).unwrap();
        assert_eq!(link_target(&format!("{d}/ssh")), format!("{d}/dropbear"));
        assert_eq!(flavor_of(&format!("{d}/ssh")), Flavor::Dropbear);
        assert_eq!(link_target(&format!("{d}/none")), format!("{d}/none"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn remove_home_removes_the_tree_and_nothing_else() {
        let d = scratch("home");
        let home = format!("{d}/home-1");
        std::fs::create_dir_all(format!("{home}/.ssh")).unwrap();
        std::fs::write(format!("{home}/.ssh/known_hosts"), b"x").unwrap();
        std::fs::write(format!("{home}/.ssh/known_hosts.old"), b"x").unwrap();
        std::fs::write(format!("{home}/other"), b"x").unwrap();
        std::fs::write(format!("{d}/keep"), b"x").unwrap();
        remove_home(&home);
        assert!(!std::path::Path::new(&home).exists());
        assert!(std::path::Path::new(&format!("{d}/keep")).exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_wait_is_for_what_is_left_until_its_deadline() {
        let t = timespec(10 * NS - (7 * NS + 5));
        assert_eq!((t.tv_sec, t.tv_nsec), (2, 999_999_995));
    }
}
