//! Issue 4: seed files, top-up scheduling, failover, push mode and status.
//!
//! Needs: root (RNDADDENTROPY), strace (to see the order of unlink, fsync
//! and ioctl), dropbear, dbclient, sshd and ssh (real servers on loopback).

use crate::util::*;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn seed(action: &str, dir: &str) -> Run {
    run(Command::new(bin()).args(["seed", action, "--seed-dir", dir]))
}

/// The seed files in `dir` by name (seed.tmp included).
fn seed_files(dir: &str) -> HashMap<String, Vec<u8>> {
    let mut m = HashMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return m;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        m.insert(name, std::fs::read(e.path()).unwrap_or_default());
    }
    m
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    entropyservice::sys::getrandom(&mut b, 0).unwrap();
    u64::from_ne_bytes(b)
}

fn write_seed(dir: &str, name: &str, len: usize) -> Vec<u8> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .unwrap();
    let mut v = vec![0u8; len];
    entropyservice::sys::getrandom(&mut v, 0).unwrap();
    std::fs::write(format!("{dir}/{name}"), &v).unwrap();
    v
}

#[test]
fn seed_load_credits_only_a_creditable_seed() {
    need_root();
    let dir = TempDir::new("seedload");
    let sd = dir.s("seed");

    let old = write_seed(&sd, "seed.credit", 32);
    let r = seed("load", &sd);
    r.ok()
        .stderr_has(&format!(
            "seed {sd}/seed.credit: 32 bytes mixed, 256 bits credited (creditable seed)"
        ))
        .stderr_has("new seed saved (creditable)");
    assert_eq!(seed_load_totals(&r), (32, 256), "{}", r.explain());
    let now = seed_files(&sd);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now["seed.credit"], old, "the used seed was not replaced");

    std::fs::remove_file(format!("{sd}/seed.credit")).unwrap();
    write_seed(&sd, "seed.no-credit", 32);
    let r = seed("load", &sd);
    r.ok().stderr_has(&format!(
        "seed {sd}/seed.no-credit: 32 bytes mixed without credit"
    ));
    assert!(
        !r.stderr.contains("bits credited (creditable"),
        "{}",
        r.explain()
    );
    assert_eq!(seed_load_totals(&r), (32, 0), "{}", r.explain());

    // Both kinds, a torn temp file and an empty seed: the temp file is never
    // read, the empty seed is dropped with a warning.
    std::fs::remove_file(format!("{sd}/seed.credit")).unwrap();
    write_seed(&sd, "seed.credit", 64);
    write_seed(&sd, "seed.no-credit", 32);
    write_seed(&sd, "seed.tmp", 7);
    let r = seed("load", &sd);
    r.ok();
    assert_eq!(seed_load_totals(&r), (96, 512), "{}", r.explain());
    std::fs::remove_file(format!("{sd}/seed.credit")).unwrap();
    std::fs::write(format!("{sd}/seed.no-credit"), b"").unwrap();
    let r = seed("load", &sd);
    r.ok().stderr_has("ignoring seed");
    assert_eq!(seed_load_totals(&r), (0, 0), "{}", r.explain());
}

/// The ioctl's own answer, and the order: each seed file is unlinked and the
/// directory fsync'd before its bytes reach RNDADDENTROPY; seed.tmp is never opened for reading.
#[test]
fn seed_is_removed_and_synced_before_the_kernel_sees_it() {
    need_root();
    let strace = need("strace");
    let dir = TempDir::new("seedorder");
    let sd = dir.s("seed");
    write_seed(&sd, "seed.credit", 32);
    write_seed(&sd, "seed.no-credit", 32);
    write_seed(&sd, "seed.tmp", 7);
    let trace = dir.s("trace");
    run(Command::new(strace)
        .args(["-f", "-qq", "-o", &trace, "-e"])
        .arg("trace=openat,open,unlink,unlinkat,fsync,ioctl,rename,renameat,renameat2")
        .args([bin(), "seed", "load", "--seed-dir", &sd]))
    .ok();
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let pos = |pat: &str| {
        lines
            .iter()
            .position(|l| l.contains(pat))
            .unwrap_or_else(|| panic!("no {pat:?} in the trace:\n{text}"))
    };
    for (name, count) in [("seed.no-credit", 0), ("seed.credit", 256)] {
        let unlink = pos(&format!("unlink(\"{sd}/{name}\")"));
        let ioctl = pos(&format!(
            "RNDADDENTROPY, {{entropy_count={count}, buf_size=32"
        ));
        assert!(lines[ioctl].ends_with("= 0"), "ioctl failed:\n{text}");
        assert!(
            lines[unlink..ioctl].iter().any(|l| l.contains("fsync(")),
            "{name}: no fsync of the directory between unlink and ioctl:\n{text}"
        );
        assert!(unlink < ioctl, "{name} used before it was removed:\n{text}");
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("seed.tmp\", O_RDONLY") || l.contains("seed.tmp\", O_RDWR")),
        "seed.tmp was opened for reading:\n{text}"
    );
}

/// kill -9 at random points of `seed save` (and some `seed load`), 200 times.
#[test]
fn seed_files_survive_kill_9() {
    need_root();
    let dir = TempDir::new("seedkill");
    let sd = dir.s("seed");
    // Spread kill points over a whole run: start from the median duration
    // and adapt, so that most runs are killed whatever the machine's load.
    let mut times: Vec<u64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            seed("save", &sd).ok();
            t.elapsed().as_micros() as u64
        })
        .collect();
    times.sort_unstable();
    let mut span_us = times[4].max(200);
    let mut used: HashSet<Vec<u8>> = HashSet::new();
    let (mut killed, mut killed_window, mut full_loads, mut torn_tmp) = (0, 0, 0, 0);
    for i in 0..200 {
        let action = if i % 5 == 4 { "load" } else { "save" };
        let mut child = Command::new(bin())
            .args(["seed", action, "--seed-dir", &sd])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(random_u64() % span_us));
        if child.try_wait().unwrap().is_none() {
            killed += 1;
            killed_window += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        if i % 20 == 19 {
            if killed_window < 10 {
                span_us = span_us * 2 / 3;
            } else if killed_window > 18 {
                span_us = span_us * 3 / 2;
            }
            killed_window = 0;
        }

        let files = seed_files(&sd);
        for (name, content) in &files {
            match name.as_str() {
                "seed.tmp" => torn_tmp += 1,
                "seed.credit" | "seed.no-credit" => {
                    assert!(
                        (32..=512).contains(&content.len()),
                        "torn {name}: {} bytes after a kill (iteration {i})",
                        content.len()
                    );
                    assert!(
                        !used.contains(content),
                        "{name} holds a seed that was already used (iteration {i})"
                    );
                }
                _ => panic!("unexpected file {name} in the seed directory"),
            }
        }
        if i % 10 == 9 {
            // A load that runs to the end: it uses exactly the two real seed
            // files (never seed.tmp), each one for the first time.
            let real: Vec<(&String, &Vec<u8>)> =
                files.iter().filter(|(n, _)| *n != "seed.tmp").collect();
            let total: u64 = real.iter().map(|(_, c)| c.len() as u64).sum();
            let r = seed("load", &sd);
            r.ok();
            assert_eq!(seed_load_totals(&r).0, total, "{}", r.explain());
            full_loads += 1;
            let after = seed_files(&sd);
            for (name, content) in real {
                assert!(
                    used.insert(content.clone()),
                    "{name} was loaded a second time"
                );
                assert_ne!(
                    after.get(name),
                    Some(content),
                    "{name} still there after load"
                );
            }
        }
    }
    eprintln!("kill -9: {killed} of 200 runs killed, seed.tmp left behind {torn_tmp} times");
    assert!(
        killed >= 60,
        "only {killed} of 200 runs were killed before they ended; the test is not testing"
    );
    assert!(torn_tmp > 0, "no kill ever hit a save half-way");
    assert_eq!(full_loads, 20);
}

#[test]
fn topup_mode_sessions_idle_and_cpu() {
    let dir = TempDir::new("topup");
    let audit = dir.s("audit");
    let (srv, key) = forced_server_in(
        Flavor::Dropbear,
        &dir,
        &server_command(&format!("--audit-file {audit}")),
    );
    let log = dir.join("client.log");
    let mut d = Daemon::spawn_at(
        client_cmd(&srv, &key, &dir).args(["--interval", "1s", "--mode", "auto", "127.0.0.1"]),
        log.clone(),
        dir.join("status"),
    );
    let pid = d.pid();
    const TOPUPS: u64 = 4;
    // Per idle period (keyed by the session count): first and last CPU sample.
    let mut idle_cpu: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut seed_inode = None;
    let start = Instant::now();
    loop {
        let a = d.status();
        let sessions = a.get("sessions").and_then(|s| s.parse::<u64>().ok());
        if a.get("state").map(String::as_str) == Some("idle") {
            let cpu = cpu_ticks(pid);
            let kids = children_of(pid);
            let b = d.status();
            if b.get("state") == a.get("state") && b.get("sessions") == a.get("sessions") {
                assert!(
                    kids.is_empty(),
                    "child processes {kids:?} while idle: {a:?}"
                );
                let n = sessions.unwrap();
                let e = idle_cpu.entry(n).or_insert((cpu, cpu));
                e.1 = cpu;
                if n == 1 && seed_inode.is_none() {
                    use std::os::unix::fs::MetadataExt;
                    let m = std::fs::metadata(dir.join("seed/seed.credit"))
                        .expect("no seed after the first pull of the boot");
                    seed_inode = Some(m.ino());
                }
                if n >= TOPUPS {
                    break;
                }
            }
        }
        d.assert_running();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {TOPUPS} top-ups in 60 s: {a:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    // No seed write per top-up: the file from the first pull is still there.
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dir.join("seed/seed.credit")).unwrap();
        assert_eq!(
            Some(m.ino()),
            seed_inode,
            "the seed was rewritten by a top-up"
        );
    }
    let total_cpu = cpu_ticks(pid);
    assert_eq!(d.stop(), 0);
    let logtext = std::fs::read_to_string(&log).unwrap();
    let st = d.status();
    let n: u64 = st["sessions"].parse().unwrap();
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    let ends: Vec<&str> = audit_text.lines().filter(|l| l.contains(" end ")).collect();
    assert_eq!(
        ends.len() as u64,
        n,
        "audit:\n{audit_text}\nlog:\n{logtext}"
    );
    assert!(
        ends.iter().all(|l| l.contains(" bytes=64 ")),
        "audit:\n{audit_text}"
    );
    assert_eq!(st["bytes_received"], (64 * n).to_string(), "{st:?}");
    assert_eq!(st["reconnects"], "0", "{st:?}");
    assert_eq!(st["mode"], "topup");
    assert_eq!(st["state"], "stopped");
    // One seed after the first pull, one at shutdown; none per top-up.
    assert_eq!(
        logtext.matches("saved a creditable seed").count(),
        2,
        "{logtext}"
    );
    for (n, (first, last)) in &idle_cpu {
        assert!(
            last - first <= 1,
            "CPU time rose by {} ticks while idle after top-up {n}",
            last - first
        );
    }
    eprintln!("top-up: {n} sessions, {total_cpu} CPU ticks in total, idle periods {idle_cpu:?}");
    assert!(
        total_cpu <= 10 * n,
        "client used {total_cpu} ticks for {n} top-ups"
    );
}

#[test]
fn sigterm_while_sleeping_saves_a_seed_and_stops() {
    let dir = TempDir::new("sigterm");
    let (srv, key) = forced_server_in(Flavor::Dropbear, &dir, &server_command(""));
    let log = dir.join("client.log");
    let mut d = Daemon::spawn_at(
        client_cmd(&srv, &key, &dir).args(["--interval", "1h", "127.0.0.1"]),
        log.clone(),
        dir.join("status"),
    );
    d.wait_state("idle", 1);
    for f in ["seed.credit", "seed.no-credit"] {
        let _ = std::fs::remove_file(dir.join("seed").join(f));
    }
    let r = run(Command::new(bin()).args(["status", "--json", "--status-file", &dir.s("status")]));
    r.ok()
        .stdout_has("\"state\":\"idle\"")
        .stdout_has("\"running\":true");
    assert_eq!(d.stop(), 0);
    let m = std::fs::metadata(dir.join("seed/seed.credit")).expect("no seed written at SIGTERM");
    assert_eq!(m.len(), 32);
    assert_eq!(d.status()["state"], "stopped");
    let r = run(Command::new(bin()).args(["status", "--json", "--status-file", &dir.s("status")]));
    r.ok()
        .stdout_has("\"state\":\"stopped\"")
        .stdout_has("\"sessions\":1,")
        .stdout_has("\"running\":false");
    let r = run(Command::new(bin()).args(["status", "--status-file", &dir.s("status")]));
    r.ok()
        .stdout_has("client: not running")
        .stdout_has("state: stopped")
        .stdout_has("bytes_received: 64")
        .stdout_has(" s ago)");
}

/// A client command with no positional server yet.
fn bare_client(program: &std::path::Path, dir: &TempDir) -> Command {
    let mut c = Command::new(bin());
    c.arg("client")
        .arg("--ssh")
        .arg(program)
        .args([
            "--status-file",
            &dir.s("status"),
            "--seed-dir",
            &dir.s("seed"),
        ])
        .args(["--connect-timeout", "15s", "--stall-timeout", "5s"]);
    c
}

fn server_spec(srv: &SshServer, key: &Keypair, host_key: &str) -> String {
    format!(
        "host=127.0.0.1,port={},user=root,key={},host-key={host_key}",
        srv.port,
        key.private_str()
    )
}

#[test]
fn failover_past_a_dead_server_and_a_wrong_host_key() {
    let dir = TempDir::new("failover");
    let a = SshServer::start(Flavor::Dropbear, "");
    let b = SshServer::start(Flavor::Dropbear, "");
    let key = a.client_key(&dir, "id");
    let audit_b = dir.s("audit-b");
    a.set_authorized_keys(&forced_line(&server_command(""), &key));
    b.set_authorized_keys(&forced_line(
        &server_command(&format!("--audit-file {audit_b}")),
        &key,
    ));
    let dbclient = a.client_program();

    // First server: nothing listens there.
    let dead = free_port();
    let r = run(bare_client(&dbclient, &dir)
        .args(["-p", &dead.to_string(), "-i", &key.private_str()])
        .args(["--host-key", &a.host_key, "--once", "64", "127.0.0.1"])
        .args(["--server", &server_spec(&a, &key, &a.host_key)]));
    r.ok()
        .stdout_has(&format!("received 64 bytes from root@127.0.0.1:{}", a.port))
        .stderr_has(&format!("root@127.0.0.1:{dead}"));

    // First server: up, but its host key is not the pinned one. In daemon
    // mode it is tried once, then skipped for the back-off period.
    let log = dir.join("client.log");
    let mut d = Daemon::spawn_at(
        bare_client(&dbclient, &dir)
            .args(["-p", &a.port.to_string(), "-i", &key.private_str()])
            .args(["--host-key", &b.host_key, "--interval", "1s", "127.0.0.1"])
            .args(["--server", &server_spec(&b, &key, &b.host_key)]),
        log.clone(),
        dir.join("status"),
    );
    d.wait_state("idle", 4);
    assert_eq!(d.stop(), 0);
    let logtext = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logtext.matches("does not match the pinned key").count(),
        1,
        "{logtext}"
    );
    assert!(
        logtext.contains("skipping this server for 600 s"),
        "{logtext}"
    );
    let st = d.status();
    assert_eq!(st["server"], format!("root@127.0.0.1:{}", b.port), "{st:?}");
    let ends = std::fs::read_to_string(&audit_b)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" end ") && l.contains(" bytes=64 "))
        .count() as u64;
    // Every session except the one refused for its host key went to b.
    assert_eq!(ends + 1, st["sessions"].parse::<u64>().unwrap(), "{st:?}");
    assert_eq!(st["reconnects"], "1", "{st:?}");
}

/// `entropyservice server | ssh newhost` with `sink` as the forced command.
fn push(flavor: Flavor) {
    need_root();
    let dir = TempDir::new("push");
    let (srv, key) = forced_server_in(flavor, &dir, &format!("{} sink", bin()));
    // source | ssh: the source's stdout is the SSH client's stdin.
    let pipeline = |source: &str| {
        let mut src = Command::new("sh")
            .args(["-c", source])
            .env_remove("SSH_ORIGINAL_COMMAND")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = src.stdout.take().unwrap();
        let mut c = ssh_client(flavor, &srv, &key, &dir);
        c.args(["-T", "127.0.0.1", "sink"]).stdin(out);
        let r = run_limit(&mut c, Duration::from_secs(120));
        let _ = src.kill();
        let _ = src.wait();
        r
    };
    let r = pipeline(&format!("{} server --max-bytes 512", bin()));
    r.ok()
        .stdout_has("received 512 bytes, credited 1024 bits, reseeded yes");
    let r = pipeline("head -c 512 /dev/zero");
    r.code(65).stderr_has("failed the health tests");
    assert!(!r.stdout.contains("credited"), "{}", r.explain());
    let r = pipeline(&format!("{} server --max-bytes 100000", bin()));
    r.code(65).stderr_has("larger than --max-bytes 4096");
}

each_flavor!(push_to_sink = push());

/// An endless input is cut off at --max-bytes at once, not read to the end:
/// the writer's pipe breaks after little more than the pipe holds.
#[test]
fn sink_cuts_off_an_endless_stream() {
    need_root();
    let mut child = spawn_piped(
        Command::new(bin())
            .args(["sink", "--max-bytes", "1024"])
            .stdin(Stdio::piped()),
    );
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut written = 0u64;
        loop {
            entropyservice::sys::getrandom(&mut buf, 0).unwrap();
            if stdin.write_all(&buf).is_err() {
                return written;
            }
            written += buf.len() as u64;
        }
    });
    // A sink that read to the end would never end by itself: killed here.
    let r = wait_run(&mut child, "sink", Duration::from_secs(30));
    let written = writer.join().unwrap();
    r.code(65)
        .stderr_has("input is larger than --max-bytes 1024; nothing credited");
    // What the sink read (a little over 1024 bytes) and the pipe's buffer
    // (64 KiB by default): one that kept reading takes megabytes a second.
    assert!(
        written < 1 << 20,
        "{written} bytes went into the pipe before the sink let go"
    );
}

/// Not a test: the figures for the notes. Runs the client in top-up mode
/// with `--interval 1s` for ES_MEASURE_SECS (default 60) seconds against
/// Dropbear and prints sessions, CPU ticks, context switches and RSS.
/// ES_BIN chooses the binary (e.g. target/release/entropyservice).
/// `cargo test --test tests seeding::measure -- --ignored --nocapture`
#[test]
#[ignore]
fn measure_topup_cost() {
    let secs: u64 = std::env::var("ES_MEASURE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let es = std::env::var("ES_BIN").unwrap_or_else(|_| bin().to_string());
    let dir = TempDir::new("measure");
    let (srv, key) = forced_server_in(Flavor::Dropbear, &dir, &server_command(""));
    let args: Vec<std::ffi::OsString> = client_cmd(&srv, &key, &dir)
        .get_args()
        .map(|a| a.to_owned())
        .collect();
    let mut cmd = Command::new(&es);
    cmd.args(args).args(["--interval", "1s", "127.0.0.1"]);
    let log = dir.join("client.log");
    let mut d = Daemon::spawn_at(&mut cmd, log.clone(), dir.join("status"));
    let pid = d.pid();
    let field = |name: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    d.wait_state("idle", 1);
    let rss_idle = field("VmRSS:");
    let (cpu0, v0, n0) = (
        cpu_ticks(pid),
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    );
    let s0: u64 = d.status()["sessions"].parse().unwrap();
    std::thread::sleep(Duration::from_secs(secs));
    d.wait_state("idle", 1);
    let (cpu1, v1, n1) = (
        cpu_ticks(pid),
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    );
    let s1: u64 = d.status()["sessions"].parse().unwrap();
    let hwm = field("VmHWM:");
    let rss_end = field("VmRSS:");
    assert_eq!(d.stop(), 0);
    let n = s1 - s0;
    let ticks = cpu1 - cpu0;
    let (vol, invol) = (v1 - v0, n1 - n0);
    let sw = vol;
    let hz = 100.0;
    eprintln!(
        "binary {es}\n{secs} s at --interval 1s: {n} top-ups, {ticks} CPU ticks ({:.1} ms per top-up), \
         {vol} voluntary context switches ({:.1} per top-up; {invol} involuntary)\n\
         at --interval 10m: 6 top-ups/hour -> {:.0} ms CPU/hour, about {:.0} wakeups/hour, \
         none between top-ups\n\
         VmRSS idle {rss_idle} kB, at the end {rss_end} kB, VmHWM {hwm} kB",
        ticks as f64 * 1000.0 / hz / n as f64,
        sw as f64 / n as f64,
        6.0 * ticks as f64 * 1000.0 / hz / n as f64,
        6.0 * sw as f64 / n as f64,
    );
}

/// A seed `save` whose getrandom is answered short once (strace's injected
/// `retval=1`: the kernel is skipped and claims one byte) still writes a
/// full seed: the short result is continued, not saved with a zero tail.
/// Real: the binary, the kernel's getrandom for every other call; injected:
/// the one short answer.
#[test]
fn a_short_getrandom_never_leaves_a_zero_tail_in_a_seed() {
    let strace = need("strace");
    let dir = TempDir::new("seedshort");
    let sd = dir.s("seed");
    // The save's getrandom is the first call that asks for a seed's length.
    for when in 1..=2 {
        let _ = std::fs::remove_dir_all(&sd);
        let r = run(Command::new(&strace)
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=getrandom",
                "-e",
            ])
            .arg(format!("inject=getrandom:retval=1:when={when}"))
            .args([bin(), "seed", "save", "--seed-dir", &sd]));
        r.ok();
        let files = seed_files(&sd);
        assert_eq!(files.len(), 1, "{files:?}\n{}", r.explain());
        let seed = files.values().next().unwrap();
        assert!(seed.len() >= 32, "{files:?}");
        let zeros = seed.iter().filter(|&&b| b == 0).count();
        // One skipped byte may stay 0; a zero tail would be most of the seed.
        assert!(
            zeros <= 4,
            "{zeros} zero bytes in a {}-byte seed (short getrandom saved as is)\n{}",
            seed.len(),
            r.explain()
        );
    }
}

/// A Linux older than 5.6 whose CRNG is not ready: getrandom(GRND_NONBLOCK)
/// answers EAGAIN and there is no GRND_INSECURE (EINVAL). A seccomp filter
/// (installed by python3 through ctypes, then exec'd into the binary) makes
/// this kernel answer so; the rest is real. `seed load` must still leave a
/// seed for the next boot (from /dev/urandom, not creditable, as busybox
/// seedrng does), and `seed save` must succeed.
#[test]
fn before_5_6_a_seed_comes_from_urandom_and_a_boot_always_leaves_one() {
    need_root();
    let py = need("python3");
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the filter below is for x86_64"
    );
    let dir = TempDir::new("seedold");
    let sd = dir.s("seed");
    write_seed(&sd, "seed.credit", 32);
    let old_kernel = |action: &str| {
        run(Command::new(&py).args([
            "-c",
            OLD_GETRANDOM,
            bin(),
            "seed",
            action,
            "--seed-dir",
            &sd,
        ]))
    };
    let r = old_kernel("load");
    r.ok().stderr_has("not creditable: the CRNG is not ready");
    assert_eq!(seed_load_totals(&r), (32, 256), "{}", r.explain());
    let files = seed_files(&sd);
    let keys: HashSet<&str> = files.keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, HashSet::from(["seed.no-credit"]), "{}", r.explain());
    let s = &files["seed.no-credit"];
    assert!(
        s.len() >= 32 && s.iter().filter(|&&b| b == 0).count() <= 4,
        "{s:?}"
    );

    let r = old_kernel("save");
    r.ok()
        .stderr_has("seed save: new seed written (not creditable");
    assert_ne!(
        &seed_files(&sd)["seed.no-credit"],
        s,
        "the seed was not renewed"
    );
}

/// python3: installs a seccomp filter under which getrandom answers like a
/// pre-5.6 kernel before the CRNG is ready (GRND_INSECURE: EINVAL,
/// GRND_NONBLOCK: EAGAIN), then execs argv[1:].
const OLD_GETRANDOM: &str = r#"
import ctypes, os, struct, sys
def ins(code, jt, jf, k): return struct.pack("HBBI", code, jt, jf, k)
LD, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06
ALLOW, ERRNO = 0x7fff0000, 0x00050000
prog = b"".join([
    ins(LD, 0, 0, 4), ins(JEQ, 0, 5, 0xc000003e),
    ins(LD, 0, 0, 0), ins(JEQ, 0, 3, 318),
    ins(LD, 0, 0, 32), ins(JSET, 2, 0, 4), ins(JSET, 2, 0, 1),
    ins(RET, 0, 0, ALLOW), ins(RET, 0, 0, ERRNO | 22), ins(RET, 0, 0, ERRNO | 11),
])
buf = ctypes.create_string_buffer(prog)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fp = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fp), 0, 0) != 0:
    sys.exit("seccomp: " + os.strerror(ctypes.get_errno()))
os.execv(sys.argv[1], sys.argv[1:])
"#;
