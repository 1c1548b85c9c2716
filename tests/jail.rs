//! The client under OpenWrt's ujail, reproduced with the kernel's own
//! features, against a real Dropbear on loopback.
//!
//! REAL: the entropyservice binary, dbclient and dropbear (Debian's), the
//! kernel's PID and mount namespaces, setuid to an unprivileged user, the
//! capability sets and no_new_privs (util-linux `unshare` and `setpriv`),
//! RNDADDENTROPY on the host kernel.
//!
//! What ujail does to the process, and how it is reproduced here:
//! - a new PID namespace whenever it makes a mount namespace, so the client
//!   is PID 1 there (procd `jail/jail.c`): `unshare --pid --fork --mount-proc`;
//! - a fresh root holding only the paths the init script lists with
//!   `procd_add_jail_mount` (read-only) and `procd_add_jail_mount_rw`, plus
//!   the program and the shared libraries of the ELF files mounted: a tmpfs
//!   with those paths bind-mounted at the same place (read-only where the
//!   jail mounts read-only), entered with chroot (ujail uses pivot_root);
//! - `procfs`: /proc mounted in the jail; /dev/null is bind-mounted (ujail
//!   makes its own /dev with null, zero, random, urandom);
//! - `procd_set_param user/group`, the capabilities JSON file and
//!   no_new_privs: setpriv --reuid/--regid, only CAP_SYS_ADMIN in the
//!   inheritable, ambient and bounding sets, --no-new-privs.
//!
//! NOT reproduced: ujail's seccomp filter (its whitelist is per service and
//! the package ships none), its exact mount table (/dev/log for `log`,
//! /dev/pts, /sys), and the user namespace ujail can add (not used by the
//! init script). setpriv itself is mounted into the jail to drop root there
//! (ujail does that in its own code before exec).

use crate::util::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The jail user: OpenWrt's Require-User picks uids from 32768 up.
const UID: u32 = 32768;

/// Paths a file or program needs inside the jail: itself and the shared
/// libraries `ldd` names (what ujail adds for mounted ELF files).
fn with_libraries(path: &str, out: &mut Vec<String>) {
    out.push(path.into());
    let r = run(Command::new(need("ldd")).arg(path));
    for line in r.stdout.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let p = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(String::from);
        if let Some(p) = p {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
}

/// A jail description: read-only and writable bind mounts.
pub struct Jail {
    pub dir: TempDir,
    ro: Vec<String>,
    rw: Vec<String>,
}

impl Jail {
    pub fn new() -> Jail {
        need_root();
        need("unshare");
        need("setpriv");
        let dir = TempDir::new("jail");
        std::fs::create_dir(dir.join("root")).unwrap();
        // The image's /etc/passwd and /etc/group, with the package's user.
        std::fs::write(
            dir.join("passwd"),
            format!("root:x:0:0:root:/root:/bin/ash\nentropyservice:x:{UID}:{UID}:entropyservice:/var/run/entropyservice:/bin/false\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("group"),
            format!("root:x:0:\nentropyservice:x:{UID}:\n"),
        )
        .unwrap();
        let mut ro = Vec::new();
        with_libraries(bin(), &mut ro);
        with_libraries(need("dbclient").to_str().unwrap(), &mut ro);
        with_libraries(need("ssh").to_str().unwrap(), &mut ro);
        with_libraries(need("setpriv").to_str().unwrap(), &mut ro);
        // The rest of the init script's procd_add_jail_mount list.
        for f in ["/etc/hosts", "/etc/resolv.conf"] {
            if Path::new(f).exists() {
                ro.push(f.into());
            }
        }
        ro.push("/dev/random".into());
        ro.push("/dev/urandom".into());
        ro.push("/dev/null".into());
        Jail {
            dir,
            ro,
            rw: Vec::new(),
        }
    }

    pub fn ro(&mut self, p: &str) -> &mut Jail {
        self.ro.push(p.into());
        self
    }

    pub fn rw(&mut self, p: &str) -> &mut Jail {
        self.rw.push(p.into());
        self
    }

    /// `args` run as PID 1 of a new PID namespace in the jail, as `user`
    /// (the jail user with CAP_SYS_ADMIN only, or root unconfined for the
    /// init script's own steps).
    pub fn command(&self, as_root: bool, args: &[&str]) -> Command {
        let root = self.dir.s("root");
        let mut script = String::from("set -e\n");
        script += &format!("R='{root}'\nmount -t tmpfs -o mode=0755 jail \"$R\"\n");
        script += "bindp() { d=\"$R$1\"; if [ -d \"$1\" ]; then mkdir -p \"$d\"; else mkdir -p \"${d%/*}\"; : >\"$d\"; fi; mount --bind \"$1\" \"$d\"; if [ \"$2\" = ro ]; then mount -o remount,bind,ro \"$d\"; fi; }\n";
        for p in &self.ro {
            script += &format!("bindp '{p}' ro\n");
        }
        for p in &self.rw {
            script += &format!("bindp '{p}' rw\n");
        }
        script += &format!(
            "mkdir -p \"$R/etc\" \"$R/proc\"\n: >\"$R/etc/passwd\"; : >\"$R/etc/group\"\n\
             mount --bind '{}' \"$R/etc/passwd\"; mount --bind '{}' \"$R/etc/group\"\n\
             mount -t proc proc \"$R/proc\"\n",
            self.dir.s("passwd"),
            self.dir.s("group")
        );
        let setpriv = need("setpriv");
        let drop = if as_root {
            String::new()
        } else {
            format!(
                "'{}' --reuid={UID} --regid={UID} --clear-groups \
                 --inh-caps=-all,+sys_admin --ambient-caps=-all,+sys_admin \
                 --bounding-set=-all,+sys_admin --no-new-privs -- ",
                setpriv.display()
            )
        };
        script += &format!("exec chroot \"$R\" {drop}");
        for a in args {
            script += &format!(" '{}'", a.replace('\'', "'\\''"));
        }
        script.push('\n');
        let mut c = Command::new(need("unshare"));
        c.args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--mount",
            // A test that fails must not leave a jailed daemon behind.
            "--kill-child",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null());
        c
    }
}

/// A directory owned by the jail user, mode 0700 (what the init script makes).
fn user_dir(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    std::os::unix::fs::chown(p, Some(UID), Some(UID)).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// A Dropbear serving `entropyservice server`, a client key the jail user
/// owns, and a jail with the init script's mounts for one instance.
struct Setup {
    srv: SshServer,
    key: Keypair,
    keys: TempDir,
    state: TempDir,
    jail: Jail,
}

fn setup() -> Setup {
    let (srv, _k, _d) = forced_server(Flavor::Dropbear, &server_command(""));
    let keys = TempDir::new("jailkeys");
    let key = dropbear_key(&keys, "id_client", "ed25519");
    srv.set_authorized_keys(&forced_line(&server_command(""), &key));
    std::os::unix::fs::chown(&key.private, Some(UID), Some(UID)).unwrap();
    let state = TempDir::new("jailstate");
    // The init script's layout: the client's own seed dir and run dir.
    user_dir(&state.join("client-seed"));
    user_dir(&state.join("run"));
    user_dir(&state.join("run/alpha"));
    user_dir(&state.join("run/beta"));
    let mut jail = Jail::new();
    jail.ro(&key.private_str())
        .rw(&state.s("client-seed"))
        .rw(&state.s("run"));
    Setup {
        srv,
        key,
        keys,
        state,
        jail,
    }
}

impl Setup {
    /// The client of `instance` with `extra` options, in the jail as the
    /// jail user.
    fn client(&self, instance: &str, extra: &[&str]) -> Command {
        let args = client_args(self, instance, extra);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        self.jail.command(false, &argv)
    }

    /// Polls the status file of `instance` (up to 30 s) until `done` holds;
    /// if it never does, kills `jailed` (so no jailed daemon is left
    /// behind) and fails the test.
    #[track_caller]
    fn wait_status(
        &self,
        instance: &str,
        jailed: &mut Child,
        what: &str,
        mut done: impl FnMut(&std::collections::HashMap<String, String>) -> bool,
    ) {
        let path = self.state.join(&format!("run/{instance}.status"));
        let mut st = Default::default();
        if !poll(Duration::from_secs(30), || {
            st = read_status(&path);
            done(&st)
        }) {
            let _ = jailed.kill();
            panic!("no {what} in the jailed client's status: {st:?}");
        }
    }
}

fn client_args(s: &Setup, instance: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        bin().into(),
        "client".into(),
        "--ssh".into(),
        need("dbclient").to_string_lossy().into_owned(),
        "-p".into(),
        s.srv.port.to_string(),
        "-i".into(),
        s.key.private_str(),
        "--host-key".into(),
        s.srv.host_key.clone(),
        "--seed-dir".into(),
        s.state.s("client-seed"),
        "--status-file".into(),
        s.state.s(&format!("run/{instance}.status")),
        "--runtime-dir".into(),
        s.state.s(&format!("run/{instance}")),
        "--connect-timeout".into(),
        "15s".into(),
    ];
    v.extend(extra.iter().map(|e| e.to_string()));
    v.push("127.0.0.1".into());
    v
}

/// The defect this reproduces: as PID 1, every SSH child saw getppid() == 1,
/// took it for a dead parent and exited before exec, so nothing was fetched.
#[test]
fn jailed_client_is_pid_1_and_fetches_and_credits() {
    let s = setup();
    let r = run_limit(
        &mut s.client("alpha", &["--once", "64"]),
        Duration::from_secs(60),
    );
    r.ok()
        .stdout_has("received 64 bytes from root@127.0.0.1:")
        .stdout_has("credited 128 bits");
    assert_no_ssh_client_for(s.srv.port);
    let _ = &s.keys;
}

/// The jailed client of `instance` seen from outside: its host pid and
/// /proc/PID/status (this test's command line, running as the jail user).
fn jailed_client(s: &Setup, instance: &str) -> (u32, String) {
    let mut found = None;
    poll(Duration::from_secs(10), || {
        found = std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            // The client itself, after the exec: setpriv before it has the
            // same arguments and may already have the jail user's uid, but
            // not yet the jail's capability sets. Its status is read after
            // its command line, so it is the client's too.
            let args = cmdline(pid);
            let run_dir = s.state.s(&format!("run/{instance}"));
            if args.first().map(String::as_str) != Some(bin())
                || !args.iter().any(|a| a.contains(&run_dir))
            {
                return None;
            }
            let st = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            st.contains(&format!("Uid:\t{UID}\t")).then_some((pid, st))
        });
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("jailed client not found"))
}

/// `status` outside the jail, as root on the host.
fn host_status(s: &Setup, instance: &str) -> Run {
    run(Command::new(bin()).args([
        "status",
        "--status-file",
        &s.state.s(&format!("run/{instance}.status")),
    ]))
}

/// The jailed client records pid 1 (its pid in its namespace), and pid 1 is
/// alive outside too: `status` on the host must tell by the status file's
/// lock, which the kernel drops when the client dies, even by SIGKILL.
#[test]
fn status_outside_the_jail_sees_a_killed_jailed_client_stop() {
    let s = setup();
    let mut child = s
        .client("alpha", &["--interval", "1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (host_pid, _) = jailed_client(&s, "alpha");
    s.wait_status("alpha", &mut child, "idle state", |st| {
        st.get("state").map(String::as_str) == Some("idle")
    });
    let status = s.state.join("run/alpha.status");
    assert!(std::fs::read_to_string(&status)
        .unwrap()
        .contains("pid: 1\n"));
    host_status(&s, "alpha").ok().stdout_has("client: running");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(host_pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let _ = wait_limit(&mut child, Duration::from_secs(20));
    host_status(&s, "alpha")
        .ok()
        .stdout_has("client: not running")
        .stdout_has("state: idle");
    assert_no_ssh_client_for(s.srv.port);
}

/// The jail's constraints hold where the client runs: PID 1, the jail
/// user, CAP_SYS_ADMIN alone, no_new_privs, a read-only key mount.
#[test]
fn jail_reproduction_has_ujails_constraints() {
    let s = setup();
    // Read from outside through /proc: the jail holds no shell or cat.
    let mut child = spawn_piped(
        s.client("alpha", &["--interval", "1h"])
            .env("ENTROPYSERVICE_LOG_INFO_STDOUT", "1"),
    );
    let (host_pid, st) = jailed_client(&s, "alpha");
    let field = |name: &str| {
        st.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    // PID 1 in its namespace (last NSpid entry), the jail user, only bit 21.
    assert!(field("NSpid:").ends_with(" 1"), "NSpid {}", field("NSpid:"));
    assert_eq!(field("CapEff:"), "0000000000200000");
    assert_eq!(field("CapBnd:"), "0000000000200000");
    assert_eq!(field("CapAmb:"), "0000000000200000");
    assert_eq!(field("NoNewPrivs:"), "1");
    // Its root holds only what was mounted: the jail's passwd, no shell,
    // no /etc/shadow; the key is mounted read-only.
    let root = format!("/proc/{host_pid}/root");
    let passwd = std::fs::read_to_string(format!("{root}/etc/passwd")).unwrap();
    assert!(passwd.contains("entropyservice:x:32768:"), "{passwd}");
    assert!(!Path::new(&format!("{root}/bin/sh")).exists());
    assert!(!Path::new(&format!("{root}/etc/shadow")).exists());
    let key_in_jail = format!("{root}{}", s.key.private_str());
    let w = std::fs::OpenOptions::new().write(true).open(&key_in_jail);
    assert_eq!(
        w.err().and_then(|e| e.raw_os_error()),
        Some(libc::EROFS),
        "key mount is not read-only"
    );
    // It fetches: the status file shows mixed bytes (credited with
    // RNDADDENTROPY; this host's ready CRNG counts none of them).
    s.wait_status("alpha", &mut child, "bytes mixed", |st| {
        status_num(st, "bytes_mixed") > 0
    });
    let status = s.state.join("run/alpha.status");
    // Written from inside the jail, so its owner is the jail user.
    assert_eq!(std::fs::metadata(&status).unwrap().uid(), UID);
    // SIGTERM from outside reaches PID 1 (it has a handler): it stops
    // cleanly and leaves no SSH child.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(host_pid as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = wait_run(&mut child, "the jailed client", Duration::from_secs(20));
    out.ok();
    assert_no_ssh_client_for(s.srv.port);
    // The init script's environment: info lines on stdout (daemon.info).
    out.stdout_has("info: fetching from");

    // The client left its seed in its own directory, as the jail user.
    let left = s.state.join("client-seed/seed.credit");
    assert_eq!(std::fs::metadata(&left).map(|m| m.uid()).ok(), Some(UID));
    // `status`, run in the jail as the jail user, reads the stopped client.
    let st = client_status(&s);
    st.ok()
        .stdout_has("state: stopped")
        .stdout_has("client: not running");
    // Root's `seed save` (the init script's stop step, PID 1 of a PID
    // namespace here) mixes the client's seed without credit and removes it.
    let root_seed = private_dir(s.state.join("seed"));
    let mut root_jail = Jail::new();
    root_jail
        .rw(&s.state.s("client-seed"))
        .rw(&s.state.s("seed"));
    let r = run_limit(
        &mut root_jail.command(
            true,
            &[
                bin(),
                "seed",
                "save",
                "--seed-dir",
                &s.state.s("seed"),
                "--client-seed-dir",
                &s.state.s("client-seed"),
            ],
        ),
        Duration::from_secs(20),
    );
    r.ok()
        .stderr_has("bytes from the unprivileged client mixed without credit");
    assert!(!left.exists(), "{}", r.explain());
    assert!(root_seed.join("seed.credit").is_file(), "{}", r.explain());
}

fn client_status(s: &Setup) -> Run {
    run_limit(
        &mut s.jail.command(
            false,
            &[
                bin(),
                "status",
                "--status-file",
                &s.state.s("run/alpha.status"),
            ],
        ),
        Duration::from_secs(20),
    )
}

/// Two instances jailed at once, each PID 1 of its own namespace: with one
/// shared runtime dir both would use `home-1` and remove each other's
/// pinned known_hosts. The init script gives each its own runtime dir.
#[test]
fn two_jailed_instances_fetch_side_by_side() {
    let s = setup();
    let spawn = |instance: &str| spawn_piped(&mut s.client(instance, &["--once", "64"]));
    for _round in 0..3 {
        let mut kids = [spawn("alpha"), spawn("beta")];
        for k in kids.iter_mut() {
            wait_run(k, "a jailed client", Duration::from_secs(60))
                .ok()
                .stdout_has("received 64 bytes");
        }
    }
    assert_no_ssh_client_for(s.srv.port);
}

/// An SSH client that dies before it says or sends anything (here: killed
/// by a signal at once, as a child that never reached exec looks to the
/// client) is the client side's failure: exit status 69 with a line that
/// says so, not "server sent 0 of 64 bytes" (65) and not a penalty for a
/// healthy server.
#[test]
fn ssh_client_dying_silently_is_not_blamed_on_the_server() {
    let dir = TempDir::new("silent");
    let fake = dir.join("dbclient");
    std::fs::write(&fake, "#!/bin/sh\nkill -9 $$\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = dropbear_key(&dir, "id", "ed25519");
    let hk = dropbear_key(&dir, "hk", "ed25519").type_and_key();
    let spec = format!(
        "host=127.0.0.2,port=1,key={},host-key={hk}",
        key.private_str()
    );
    let r = run(Command::new(bin()).args([
        "client",
        "--ssh",
        fake.to_str().unwrap(),
        "-i",
        &key.private_str(),
        "--host-key",
        &hk,
        "-p",
        "1",
        "--status-file",
        &dir.s("run/status"),
        "--seed-dir",
        &dir.s("seed"),
        "--server",
        &spec,
        "--once",
        "64",
        "127.0.0.1",
    ]));
    r.code(69)
        .stderr_has(
            "the SSH client for root@127.0.0.1:1 failed before any output and without a message",
        )
        .stderr_has("the SSH client for root@127.0.0.2:1 failed before any output");
    assert!(!r.stderr.contains("sent 0 of"), "{}", r.explain());
    assert!(
        !r.stderr.contains("skipping this server"),
        "{}",
        r.explain()
    );
}

// --- Root's seed files next to a jail user's ------------------------------

fn seed_cmd(action: &str, dir: &str, client: Option<&str>) -> Run {
    let mut c = Command::new(bin());
    c.args(["seed", action, "--seed-dir", dir]);
    if let Some(cd) = client {
        c.args(["--client-seed-dir", cd]);
    }
    run_limit(c.stdin(Stdio::null()), Duration::from_secs(20))
}

/// `p` made as a directory of root's, mode 0700.
fn private_dir(p: PathBuf) -> PathBuf {
    std::fs::create_dir_all(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    p
}

/// A FIFO, a symlink or another user's file where root looks for a seed
/// is refused with one line each, never blocks boot, and the new seed is
/// still saved; a directory named seed.no-credit does not stop seed.credit.
#[test]
fn seed_load_refuses_links_fifos_and_foreign_files() {
    need_root();
    let dir = TempDir::new("seedsafe");
    let sd = private_dir(dir.join("seed"));
    let sds = sd.to_str().unwrap();
    // A FIFO as seed.credit: a plain open would block until a writer came.
    run(Command::new(need("mkfifo")).arg(sd.join("seed.credit"))).ok();
    let secret = dir.join("secret");
    std::fs::write(&secret, random_bytes(64)).unwrap();
    std::os::unix::fs::symlink(&secret, sd.join("seed.no-credit")).unwrap();
    let start = Instant::now();
    let r = seed_cmd("load", sds, None);
    // A blocked open would hold it until seed_cmd's 20 s kill.
    assert_within(start, Duration::from_secs(10), "seed load");
    r.ok()
        .stderr_has(&format!(
            "ignoring {sds}/seed.credit: not a regular file owned by this user"
        ))
        .stderr_has(&format!(
            "ignoring {sds}/seed.no-credit: not a regular file"
        ));
    assert_eq!(seed_load_totals(&r), (0, 0), "{}", r.explain());
    assert_eq!(
        std::fs::read(&secret).unwrap().len(),
        64,
        "link target touched"
    );
    // The new seed replaced the FIFO (or the link): a regular file of root's.
    let saved = ["seed.credit", "seed.no-credit"]
        .iter()
        .filter(|n| std::fs::symlink_metadata(sd.join(n)).is_ok_and(|m| m.file_type().is_file()))
        .count();
    assert_eq!(saved, 1, "{}", r.explain());

    // Another user's regular file in root's directory is not loaded.
    for n in ["seed.credit", "seed.no-credit"] {
        let _ = std::fs::remove_file(sd.join(n));
    }
    std::fs::write(sd.join("seed.credit"), random_bytes(64)).unwrap();
    std::os::unix::fs::chown(sd.join("seed.credit"), Some(UID), Some(UID)).unwrap();
    let r = seed_cmd("load", sds, None);
    r.ok().stderr_has("another user's file");
    assert_eq!(seed_load_totals(&r), (0, 0), "{}", r.explain());

    // A hard link to another of root's files (the jail user may plant one
    // to a root file where protected_hardlinks is off) is not loaded.
    std::fs::remove_file(sd.join("seed.credit")).unwrap();
    let other = dir.join("other");
    std::fs::write(&other, random_bytes(64)).unwrap();
    std::fs::hard_link(&other, sd.join("seed.credit")).unwrap();
    let r = seed_cmd("load", sds, None);
    r.ok().stderr_has(&format!("ignoring {sds}/seed.credit"));
    assert_eq!(seed_load_totals(&r), (0, 0), "{}", r.explain());
    assert_eq!(std::fs::read(&other).unwrap().len(), 64);

    // A directory named seed.no-credit: seed.credit still loads and credits,
    // and the new seed is saved.
    let _ = std::fs::remove_file(sd.join("seed.credit"));
    std::fs::write(sd.join("seed.credit"), random_bytes(64)).unwrap();
    std::fs::create_dir(sd.join("seed.no-credit")).unwrap();
    let r = seed_cmd("load", sds, None);
    r.ok().stderr_has("new seed saved");
    assert_eq!(seed_load_totals(&r), (64, 512), "{}", r.explain());
    assert!(sd.join("seed.credit").is_file(), "{}", r.explain());
}

/// Root does not load from a directory the jail user owns (it could plant
/// links and FIFOs there at will), nor from a link to a directory.
#[test]
fn seed_load_refuses_a_directory_root_does_not_own() {
    need_root();
    let dir = TempDir::new("seeddir");
    let sd = dir.join("seed");
    user_dir(&sd);
    std::fs::write(sd.join("seed.credit"), random_bytes(64)).unwrap();
    let sds = sd.to_str().unwrap();
    let r = seed_cmd("load", sds, None);
    r.code(77).one_line_error().stderr_has(&format!(
        "seed directory {sds} must be owned by the user running this command"
    ));
    assert!(
        sd.join("seed.credit").exists(),
        "touched a refused directory"
    );
    let own = private_dir(dir.join("own"));
    let link = dir.join("link");
    std::os::unix::fs::symlink(&own, &link).unwrap();
    seed_cmd("save", link.to_str().unwrap(), None)
        .code(73)
        .one_line_error()
        .stderr_has("a symlink is refused");
}

/// The jailed client's own seed directory: root mixes what it finds there
/// without credit and removes it, and a link or FIFO there is refused
/// without blocking.
#[test]
fn seed_save_takes_the_jailed_clients_seed_without_credit() {
    need_root();
    let dir = TempDir::new("seedadopt");
    let sd = private_dir(dir.join("seed"));
    let cd = dir.join("client-seed");
    user_dir(&cd);
    std::fs::write(cd.join("seed.credit"), random_bytes(64)).unwrap();
    std::os::unix::fs::chown(cd.join("seed.credit"), Some(UID), Some(UID)).unwrap();
    run(Command::new(need("mkfifo")).arg(cd.join("seed.no-credit"))).ok();
    std::os::unix::fs::chown(cd.join("seed.no-credit"), Some(UID), Some(UID)).unwrap();
    let (sds, cds) = (sd.to_str().unwrap(), cd.to_str().unwrap());
    let r = seed_cmd("save", sds, Some(cds));
    r.ok()
        .stderr_has(&format!(
            "seed {cds}/seed.credit: 64 bytes from the unprivileged client mixed without credit"
        ))
        .stderr_has(&format!("ignoring {cds}/seed.no-credit"));
    assert!(!cd.join("seed.credit").exists(), "client seed not removed");
    assert!(sd.join("seed.credit").is_file() || sd.join("seed.no-credit").is_file());
    // A link planted in the client's directory is refused, its target kept.
    let secret = dir.join("secret");
    std::fs::write(&secret, random_bytes(64)).unwrap();
    std::os::unix::fs::symlink(&secret, cd.join("seed.credit")).unwrap();
    let r = seed_cmd("load", sds, Some(cds));
    r.ok().stderr_has(&format!("ignoring {cds}/seed.credit"));
    assert_eq!(std::fs::read(&secret).unwrap().len(), 64);
}

// --- What the init script asks of the binary ------------------------------

/// `client --check`: the values UCI's types let through but the client
/// refuses (validate_data reads integers with strtol base 0) fail here with
/// the client's own one-line error and status 64, without connecting; a
/// good command line passes. The init script starts no instance that fails.
#[test]
fn client_check_is_the_judge_of_a_command_line() {
    let dir = TempDir::new("check");
    let key = dropbear_key(&dir, "id", "ed25519");
    let hk = dropbear_key(&dir, "hk", "ed25519").type_and_key();
    let check = |extra: &[&str]| {
        let mut c = Command::new(bin());
        c.args([
            "client",
            "--check",
            "--ssh",
            need("dbclient").to_str().unwrap(),
        ])
        .args(["-i", &key.private_str(), "--host-key", &hk])
        .args(["--status-file", &dir.s("never/status")])
        .args(extra)
        .arg("192.0.2.1");
        run(&mut c)
    };
    check(&[]).ok().no_stdout();
    for (bad, says) in [
        (
            &["--get-bytes", "0"][..],
            "--get-bytes and --once take 1 to 4096 bytes",
        ),
        (
            &["--get-bytes", "5000"],
            "--get-bytes and --once take 1 to 4096 bytes",
        ),
        (
            &["--credit-bits-per-byte", "0x4"],
            "'--credit-bits-per-byte' with value '0x4'",
        ),
        (
            &["--credit-bits-per-byte", "9"],
            "--credit-bits-per-byte must be 0 to 8",
        ),
        (
            &["--interval", "99999999999d"],
            "--interval 99999999999d is not a duration",
        ),
        (
            &["--interval", "0"],
            "--interval 0 would open SSH sessions back to back",
        ),
    ] {
        check(bad).code(64).one_line_error().stderr_has(says);
    }
    let mut c = Command::new(bin());
    c.args(["client", "--check", "-i", &key.private_str()])
        .args(["--host-key", "ssh-ed25519 AAAA", "192.0.2.1"]);
    run(&mut c)
        .code(64)
        .one_line_error()
        .stderr_has("--host-key for 192.0.2.1");
    // Nothing was created: --check starts no runtime dir or status file.
    assert!(!dir.join("never").exists());
}

/// With ENTROPYSERVICE_LOG_INFO_STDOUT=1 (the init script sets it; procd
/// logs stdout at LOG_INFO and stderr at LOG_ERR) info lines go to stdout
/// and warnings and errors stay on stderr.
#[test]
fn info_lines_on_stdout_when_asked() {
    need_root();
    let dir = TempDir::new("logsplit");
    let sd = private_dir(dir.join("seed"));
    let sds = sd.to_str().unwrap();
    // A stale entry that is no seed file: one warning. (The host CRNG is
    // ready, so the new seed is seed.credit.)
    std::fs::create_dir(sd.join("seed.no-credit")).unwrap();
    let r = run(Command::new(bin())
        .args(["seed", "save", "--seed-dir", sds])
        .env("ENTROPYSERVICE_LOG_INFO_STDOUT", "1"));
    r.ok().stdout_has("info: seed save: new seed written");
    assert!(!r.stdout.contains("warning:"), "{}", r.explain());
    r.stderr_has("warning: ignoring");
    assert!(!r.stderr.contains("info:"), "{}", r.explain());
    // Unset: everything on stderr, as before.
    let r = run(Command::new(bin()).args(["seed", "save", "--seed-dir", sds]));
    r.ok().no_stdout().stderr_has("info: seed save");
}

/// SIGUSR1 (`/etc/init.d/entropyservice reconnect`, run when the WAN comes
/// up) makes a client that waits after a failure try again at once, and
/// does not kill it.
#[test]
fn sigusr1_ends_the_wait_after_a_failure() {
    need_root();
    let dir = TempDir::new("usr1");
    let key = dropbear_key(&dir, "id", "ed25519");
    let hk = dropbear_key(&dir, "hk", "ed25519").type_and_key();
    // A port nothing listens on: every attempt fails at once.
    let port = free_port().to_string();
    let mut d = Daemon::spawn_at(
        Command::new(bin())
            .args(["client", "--ssh", need("dbclient").to_str().unwrap()])
            .args(["-i", &key.private_str(), "--host-key", &hk, "-p", &port])
            .args([
                "--status-file",
                &dir.s("run/status"),
                "--seed-dir",
                &dir.s("seed"),
            ])
            .args(["--mode", "topup", "--max-backoff", "1h", "127.0.0.1"]),
        dir.join("log"),
        dir.join("run/status"),
    );
    // Back-off doubles from 1 s, each wait jittered to between half and
    // all of it: after 4 failures the waits are 4-8 s, then 8-16, 16-32 and
    // 32-64 s.
    d.wait_for("4 retries", Duration::from_secs(30), |st, _| {
        status_num(st, "sessions") >= 4
    });
    // SIGUSR1 after each failure: four more attempts, where the back-off
    // alone would take at least 8 + 16 + 32 = 56 s for the last three. The
    // bound only catches a client that waited for its back-off.
    let t = Instant::now();
    for n in 5..=8 {
        d.wait_for(
            "the wait after a failure",
            Duration::from_secs(30),
            |st, _| {
                st.get("state").map(String::as_str) == Some("retrying")
                    && status_num(st, "sessions") >= n - 1
            },
        );
        d.signal(rustix::process::Signal::USR1);
        d.wait_for(
            "the retry SIGUSR1 asks for",
            Duration::from_secs(30),
            |st, _| status_num(st, "sessions") >= n,
        );
    }
    assert_within(t, Duration::from_secs(30), d.log());
    assert!(d.running(), "SIGUSR1 killed the client\n{}", d.log());
    assert_eq!(d.stop(), 0, "{}", d.log());
    assert!(d.log().contains("trying again now (SIGUSR1"), "{}", d.log());
}
