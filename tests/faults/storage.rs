//! Faults 7-8: kill -9 of the client at random points, and a full disk
//! when a seed is saved.

use crate::util::*;
use rustix::process::Signal;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

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
        d.wait_exit(Duration::from_secs(15));
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
    let code = d.wait_exit(Duration::from_secs(15));
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
    assert_eq!(d.stop(), 0, "{}", d.log());
    let log = d.log();
    assert_eq!(
        log.matches("No space left on device (os error 28); the previous seed is kept")
            .count(),
        2,
        "{log}"
    );
    // 64 bytes mixed; this host's ready 5.18+ CRNG counts none of them.
    assert_eq!(d.num("bytes_mixed"), 64);
    assert_eq!(d.num("bits_credited"), 0);
    assert_eq!(std::fs::read(seed_dir.join("seed.credit")).unwrap(), old);
    assert!(!seed_dir.join("seed.tmp").exists());
}
