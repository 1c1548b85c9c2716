//! Real SSH servers on loopback (Dropbear and OpenSSH) with throwaway keys,
//! the authorized_keys lines and client command lines that reach them, and
//! pinned SSH clients (dbclient, ssh) for sessions without our client.

use super::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// The host key's whole public line (`TYPE BASE64 comment`).
    pub host_public: String,
    host_key_file: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl SshServer {
    pub fn start(flavor: Flavor, authorized_keys: &str) -> SshServer {
        Self::start_on(flavor, authorized_keys, "127.0.0.1")
    }

    /// `listen` is the address to bind (127.0.0.1, or ::1 for OpenSSH).
    /// A port taken by another process between `free_port` and the server's
    /// bind makes the server exit: then this tries another port (3 tries).
    pub fn start_on(flavor: Flavor, authorized_keys: &str, listen: &str) -> SshServer {
        Self::start_with(flavor, authorized_keys, listen, "ed25519")
    }

    /// Like `start_on`, with a host key of `host_key_kind` (ed25519, rsa, ...).
    pub fn start_with(
        flavor: Flavor,
        authorized_keys: &str,
        listen: &str,
        host_key_kind: &str,
    ) -> SshServer {
        let mut last = String::new();
        for _ in 0..3 {
            let mut s = Self::prepare(flavor, free_port(), host_key_kind);
            s.set_authorized_keys(authorized_keys);
            match s.try_launch(listen, None) {
                Ok(()) => return s,
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{flavor:?} server found no free port in 3 tries: {last}");
    }

    /// A server that does not run yet, for `port`, with its host key (of
    /// `host_key_kind`: ed25519, rsa, ...) already made, so a client can pin
    /// it while nothing listens. `launch` starts it.
    pub fn prepare(flavor: Flavor, port: u16, host_key_kind: &str) -> SshServer {
        need_root();
        let dir = TempDir::new("sshd");
        std::fs::create_dir(dir.join("ssh")).unwrap();
        let name = format!("host_{host_key_kind}");
        let hk = match flavor {
            Flavor::Dropbear => dropbear_key(&dir, &name, host_key_kind),
            Flavor::OpenSsh => openssh_key(&dir, &name, host_key_kind),
        };
        let authorized_keys = dir.join("ssh/authorized_keys");
        std::fs::write(&authorized_keys, "").unwrap();
        SshServer {
            flavor,
            port,
            authorized_keys,
            host_key: hk.type_and_key(),
            host_public: hk.public_line,
            host_key_file: hk.private,
            log: dir.join("server.log"),
            dir,
            child: None,
        }
    }

    /// Starts listening on `listen`, inside the network namespace `netns`
    /// when given (Dropbear only; the test process cannot connect there, so
    /// this waits for Dropbear's pid file, written once the port is bound).
    pub fn launch(&mut self, listen: &str, netns: Option<&str>) {
        if let Err(e) = self.try_launch(listen, netns) {
            panic!("{e}");
        }
    }

    fn try_launch(&mut self, listen: &str, netns: Option<&str>) -> Result<(), String> {
        let dir = &self.dir;
        let logf = std::fs::File::create(&self.log).unwrap();
        // The forced commands' default --lock-dir, private to this server.
        let run_es = dir.join("run-entropyservice");
        std::fs::create_dir_all(&run_es).unwrap();
        let private_run = format!(
            "mkdir -p /run/entropyservice && mount --bind {} /run/entropyservice || exit 1; ",
            run_es.display()
        );
        let pid_file = dir.join("pid");
        let _ = std::fs::remove_file(&pid_file);
        let script = match self.flavor {
            Flavor::Dropbear => {
                std::fs::create_dir_all("/root/.ssh").unwrap();
                format!(
                    "{MASK_BASHRC}{private_run}mount --bind {} /root/.ssh && exec {} -F -E -s -p {}:{} -r {} -P {}",
                    dir.join("ssh").display(),
                    need("dropbear").display(),
                    listen,
                    self.port,
                    self.host_key_file.display(),
                    pid_file.display()
                )
            }
            Flavor::OpenSsh => {
                assert!(
                    netns.is_none(),
                    "OpenSSH in a network namespace is not supported here"
                );
                std::fs::create_dir_all("/run/sshd").unwrap();
                let cfg = dir.join("sshd_config");
                std::fs::write(
                    &cfg,
                    format!(
                        "Port {}\nListenAddress {listen}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\n\
                         PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                         UsePAM no\nStrictModes no\nLogLevel VERBOSE\nMaxStartups 300:30:400\nMaxSessions 50\n",
                        self.port,
                        self.host_key_file.display(),
                        self.authorized_keys.display()
                    ),
                )
                .unwrap();
                format!(
                    "{MASK_BASHRC}{private_run}exec {} -D -e -f {}",
                    need("sshd").display(),
                    cfg.display()
                )
            }
        };
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = default_signals(need("ip"));
                c.args(["netns", "exec", ns]).arg(need("unshare"));
                c
            }
            None => default_signals(need("unshare")),
        };
        let child = cmd
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap();
        self.child = Some(child);
        match netns {
            None => self.wait_listening(listen),
            Some(_) => self.wait_pid_file(&pid_file),
        }
    }

    fn exited(&mut self) -> Result<(), String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => Err(format!(
                "{:?} server exited with {st}: {}",
                self.flavor,
                self.log_text()
            )),
            _ => Ok(()),
        }
    }

    fn wait_pid_file(&mut self, pid_file: &Path) -> Result<(), String> {
        let start = Instant::now();
        while std::fs::read_to_string(pid_file).map_or(true, |s| s.trim().is_empty()) {
            self.exited()?;
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("dropbear did not start: {}", self.log_text()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
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
            self.exited()?;
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
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

/// `entropyservice authorize --authorized-keys FILE --binary BIN ARGS`,
/// with the key (or its .pub file) last in `args`.
pub fn authorize(file: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(["authorize", "--authorized-keys"])
        .arg(file)
        .args(["--binary", bin()])
        .args(args);
    c
}

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
/// (flag, value) pairs (an option given twice is refused).
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

/// A HOME (`dir`/home) whose .ssh/known_hosts pins `srv`'s host key for
/// 127.0.0.1 and ::1 (dbclient reads $HOME/.ssh/known_hosts and matches by
/// host name only; OpenSSH is pointed at the file and matches [host]:port).
pub fn pinned_home(srv: &SshServer, dir: &TempDir) -> String {
    let ssh = dir.join("home/.ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let k = &srv.host_key;
    let p = srv.port;
    let kh = ssh.join("known_hosts");
    let text = format!("127.0.0.1 {k}\n::1 {k}\n[127.0.0.1]:{p} {k}\n[::1]:{p} {k}\n");
    // Written once: clients started earlier may be reading it.
    if std::fs::read_to_string(&kh).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&kh, text).unwrap();
    }
    dir.s("home")
}

/// The SSH client of `program`'s family (dbclient for Dropbear, ssh for
/// OpenSSH) logging in to `srv` as root with `key`, trusting only the
/// server's host key (`pinned_home` in `dir`); OpenSSH's also reads no
/// config file and uses no agent-held keys and asks no questions. Options,
/// the destination and the remote command follow.
pub fn ssh_client(program: Flavor, srv: &SshServer, key: &Keypair, dir: &TempDir) -> Command {
    let home = pinned_home(srv, dir);
    let port = srv.port.to_string();
    let mut c = match program {
        Flavor::Dropbear => {
            let mut c = Command::new(need("dbclient"));
            c.args(["-p", &port, "-i", &key.private_str(), "-l", "root"]);
            c
        }
        Flavor::OpenSsh => {
            let mut c = Command::new(need("ssh"));
            c.args(["-F", "/dev/null", "-o", "BatchMode=yes"])
                .args(["-o", "StrictHostKeyChecking=yes", "-o"])
                .arg(format!("UserKnownHostsFile={home}/.ssh/known_hosts"))
                .args(["-o", "GlobalKnownHostsFile=/dev/null"])
                .args(["-o", "IdentitiesOnly=yes", "-i", &key.private_str()])
                .args(["-p", &port, "-l", "root"]);
            c
        }
    };
    c.env("HOME", &home).stdin(Stdio::null());
    c
}

/// OpenSSH's `ssh` (`ssh_client`) to `srv`; `args` follow (options, the
/// destination, the remote command).
pub fn pinned_ssh(srv: &SshServer, key: &Keypair, dir: &TempDir, args: &[&str]) -> Command {
    let mut c = ssh_client(Flavor::OpenSsh, srv, key, dir);
    c.args(args);
    c
}

/// A server of `flavor` whose only key runs `command` as its forced command,
/// the client key for it, and a temp dir.
pub fn forced_server(flavor: Flavor, command: &str) -> (SshServer, Keypair, TempDir) {
    let dir = TempDir::new("srv");
    let (srv, key) = forced_server_in(flavor, &dir, command);
    (srv, key, dir)
}

/// `forced_server` with the client key made in `dir`, for a `command`
/// that names files there.
pub fn forced_server_in(flavor: Flavor, dir: &TempDir, command: &str) -> (SshServer, Keypair) {
    let srv = SshServer::start(flavor, "");
    let key = srv.client_key(dir, "id");
    srv.set_authorized_keys(&forced_line(command, &key));
    (srv, key)
}

/// `entropyservice client` arguments for `program` on `port` with `key` and
/// the pinned `host_key`, status file and seeds in `dir`: for a server that
/// is not running yet or is not reachable from here (another network
/// namespace). Options and the server follow.
pub fn client_args(
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
