//! The client's state file on tmpfs (`key: value` lines), and the `status`
//! command that prints it with the kernel's view, for people or as JSON.

use crate::error::{Error, Result, Status};
use crate::kernel;
use crate::text::msg;
use crate::text::Num;

pub fn default_status_file() -> String {
    msg(&[&crate::runtime::default_dir(), "/status"])
}

/// Creates the client's runtime directory (mode 0700) if missing and
/// refuses one that another user owns or group or others can write to: the
/// SSH child's pinned known_hosts lives there. (Readable is fine: it holds
/// only public keys and the status.)
pub fn ensure_runtime_dir(dir: &str) -> Result<()> {
    crate::runtime::ensure_private_dir(dir).map_err(|e| {
        Error::new(
            e.status,
            msg(&[
                "runtime directory unusable: ",
                &e.msg,
                "; or choose another with --runtime-dir",
            ]),
        )
    })
}

/// Refuses a status file whose directory is a link, or belongs to another
/// user than this one or root, or that group or others can write to: there
/// a planted link or file could steer the client's writes (the runtime
/// directory is checked on its own; `--status-file` may point elsewhere).
pub fn check_status_dir(status_file: &str) -> Result<()> {
    let dir = match status_file.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((d, _)) => d,
        None => ".",
    };
    let _ = crate::sys::create_dir_all(dir, 0o777);
    let ok = std::fs::symlink_metadata(dir)
        .is_ok_and(|m| crate::files::check_private(&m, 0o022, true).is_ok());
    if ok {
        return Ok(());
    }
    Err(Error::new(
        Status::Config,
        msg(&[
            "status file directory ",
            dir,
            " is a link, not a directory, another user's, or writable by group or others; choose another --status-file",
        ]),
    ))
}

/// Whether `dir` is on a RAM file system (tmpfs or ramfs), where writing
/// the status file on every top-up costs no flash write.
pub fn on_ram_fs(dir: &str) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    match rustix::fs::statfs(dir) {
        // f_type is 32 or 64 bits, signed or not, depending on the target.
        #[allow(clippy::unnecessary_cast)]
        Ok(s) => matches!(s.f_type as u64 & 0xffff_ffff, TMPFS_MAGIC | RAMFS_MAGIC),
        Err(_) => false,
    }
}

/// What the client reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub pid: u32,
    pub mode: &'static str,
    /// seeding, fetching, idle, retrying or stopped.
    pub state: &'static str,
    pub server: String,
    /// Wall-clock seconds of the last successful fetch (0: none yet).
    pub last_success: u64,
    pub bytes_received: u64,
    /// Bytes that passed the health tests and went into the kernel's pool.
    pub bytes_mixed: u64,
    /// Credited bits as the kernel counts them: nothing once the CRNG is
    /// ready on 5.18+ (see `kernel::room`).
    pub bits_credited: u64,
    pub health_failures: u64,
    /// SSH sessions started.
    pub sessions: u64,
    /// Sessions started after a failed one (retries and failovers).
    pub reconnects: u64,
    pub reseeds: u64,
    /// Wall-clock seconds when the client saw the CRNG become ready (0: it
    /// was ready when the client started).
    pub crng_ready_at: u64,
    /// Wall-clock seconds of the last seed file written (0: none yet).
    pub seed_saved_at: u64,
    pub last_error: String,
}

/// Field names, in file order.
pub const FIELDS: [&str; 15] = [
    "pid",
    "mode",
    "state",
    "server",
    "last_success",
    "bytes_received",
    "bytes_mixed",
    "bits_credited",
    "health_failures",
    "sessions",
    "reconnects",
    "reseeds",
    "crng_ready_at",
    "seed_saved_at",
    "last_error",
];

/// Fields holding wall-clock seconds.
const TIME_FIELDS: [&str; 3] = ["last_success", "crng_ready_at", "seed_saved_at"];

impl State {
    /// The status file's text: `key: value` lines in `FIELDS` order.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(512);
        let mut line = |k: &str, v: &str| {
            s.push_str(k);
            s.push_str(": ");
            s.push_str(v);
            s.push('\n');
        };
        let n = |v: u64| Num::new(v);
        line(FIELDS[0], n(self.pid as u64).as_str());
        line(FIELDS[1], self.mode);
        line(FIELDS[2], self.state);
        line(FIELDS[3], &self.server);
        line(FIELDS[4], n(self.last_success).as_str());
        line(FIELDS[5], n(self.bytes_received).as_str());
        line(FIELDS[6], n(self.bytes_mixed).as_str());
        line(FIELDS[7], n(self.bits_credited).as_str());
        line(FIELDS[8], n(self.health_failures).as_str());
        line(FIELDS[9], n(self.sessions).as_str());
        line(FIELDS[10], n(self.reconnects).as_str());
        line(FIELDS[11], n(self.reseeds).as_str());
        line(FIELDS[12], n(self.crng_ready_at).as_str());
        line(FIELDS[13], n(self.seed_saved_at).as_str());
        line(FIELDS[14], &self.last_error.replace('\n', " "));
        s
    }

    /// Replaces the status file atomically (temp file + rename). No fsync:
    /// it belongs on tmpfs, where this costs no flash write.
    pub fn write(&self, path: &str) -> Result<()> {
        if let Some((dir, _)) = path.rsplit_once('/') {
            let _ = crate::sys::create_dir_all(dir, 0o777);
        }
        let how = crate::files::Replace {
            mode: 0o644,
            fsync: false,
            finish: None,
        };
        let tmp = msg(&[path, ".tmp"]);
        crate::files::replace(path, &tmp, self.text().as_bytes(), &how).map_err(|(_, e)| {
            Error::os(
                Status::CantCreate,
                &msg(&["cannot write status file ", path]),
                e,
            )
        })
    }
}

/// Parses a status file into (key, value) pairs, keeping only known keys,
/// each at most once, values at most 512 bytes.
pub fn parse(text: &str) -> Vec<(&'static str, &str)> {
    let mut out: Vec<(&'static str, &str)> = Vec::new();
    for line in text.lines().take(64) {
        let Some((k, v)) = line.split_once(": ") else {
            continue;
        };
        if let Some(key) = FIELDS.iter().find(|f| **f == k) {
            if v.len() <= 512 && !out.iter().any(|(o, _)| o == key) {
                out.push((key, v));
            }
        }
    }
    out
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                let b = c as u8;
                out.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
                out.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn is_number_field(k: &str) -> bool {
    !matches!(k, "mode" | "state" | "server" | "last_error")
}

/// Whether the client that wrote the status file still runs: it holds the
/// status file's lock (`held`, None when there is no lock file), or else its
/// pid is alive; and it did not record a clean stop. The lock is what counts
/// for a client in a PID namespace (ujail): its pid there is 1.
fn client_alive(pairs: &[(&'static str, &str)], held: Option<bool>) -> bool {
    let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let pid = get("pid").and_then(crate::parse::decimal).unwrap_or(0);
    get("state") != Some("stopped")
        && held.unwrap_or_else(|| {
            pid != 0 && std::fs::metadata(msg(&["/proc/", Num::new(pid).as_str()])).is_ok()
        })
}

/// The lock file beside a status file, held by the running client.
fn lock_path(status_file: &str) -> String {
    msg(&[status_file, ".lock"])
}

fn open_lock(path: &str, create: bool) -> rustix::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    let mut flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    flags |= if create {
        OFlags::RDWR | OFlags::CREATE
    } else {
        OFlags::RDONLY
    };
    let f = std::fs::File::from(rustix::fs::open(path, flags, Mode::from_raw_mode(0o644))?);
    // A FIFO or a device planted there is not a lock file.
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        _ => Err(rustix::io::Errno::INVAL),
    }
}

/// Takes the status file's lock for the client's lifetime (the kernel
/// drops it when the process dies, however it dies). A second client on the
/// same status file is refused.
pub fn hold_lock(status_file: &str) -> Result<std::fs::File> {
    use rustix::fs::{flock, FlockOperation};
    let path = lock_path(status_file);
    if let Some((dir, _)) = status_file.rsplit_once('/') {
        let _ = crate::sys::create_dir_all(dir, 0o777);
    }
    let f = open_lock(&path, true).map_err(|e| {
        Error::os(
            Status::CantCreate,
            &msg(&[
                "cannot open lock file ",
                &path,
                " (a link or special file is refused)",
            ]),
            e,
        )
    })?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(f),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::new(
            Status::TempFail,
            msg(&[
                "another client is running with status file ",
                status_file,
                "; give each client its own --status-file",
            ]),
        )),
        Err(e) => Err(Error::os(Status::Os, &msg(&["cannot lock ", &path]), e)),
    }
}

/// Whether a client holds the status file's lock (None: no lock file).
fn lock_held(status_file: &str) -> Option<bool> {
    use rustix::fs::{flock, FlockOperation};
    let f = open_lock(&lock_path(status_file), false).ok()?;
    Some(matches!(
        flock(&f, FlockOperation::NonBlockingLockShared),
        Err(rustix::io::Errno::WOULDBLOCK)
    ))
}

/// Renders the status for `entropyservice status`. `now` is wall-clock
/// seconds, for the "N s ago" notes.
pub fn render(
    file_text: Option<&str>,
    held: Option<bool>,
    k: kernel::Info,
    json: bool,
    now: u64,
) -> String {
    let pairs = file_text.map(parse).unwrap_or_default();
    let running = file_text.is_some() && client_alive(&pairs, held);
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let kernel_pairs = [
        ("crng_ready", yes_no(k.crng_ready).to_string()),
        ("entropy_avail", k.entropy_avail.to_string()),
        ("poolsize", Num::new(k.poolsize as u64).as_str().to_string()),
    ];
    let mut out = String::with_capacity(512);
    if json {
        out.push_str("{\"kernel\":{");
        for (i, (key, v)) in kernel_pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str(&mut out, key);
            out.push(':');
            if *key == "crng_ready" {
                out.push_str(if k.crng_ready { "true" } else { "false" });
            } else {
                out.push_str(v);
            }
        }
        out.push_str("},\"client\":");
        if file_text.is_none() {
            out.push_str("null");
        } else {
            out.push('{');
            for (i, (key, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_str(&mut out, key);
                out.push(':');
                if let Some(n) = crate::parse::decimal(v).filter(|_| is_number_field(key)) {
                    // Num, not v: JSON numbers have no leading zeros.
                    out.push_str(Num::new(n).as_str());
                } else {
                    json_str(&mut out, v);
                }
            }
            if !pairs.is_empty() {
                out.push(',');
            }
            out.push_str("\"running\":");
            out.push_str(if running { "true" } else { "false" });
            out.push('}');
        }
        out.push_str("}\n");
    } else {
        for (key, v) in kernel_pairs {
            out.push_str(key);
            out.push_str(": ");
            out.push_str(&v);
            out.push('\n');
        }
        match file_text {
            None => out.push_str("client: not running (no status file)\n"),
            Some(_) => {
                out.push_str(if running {
                    "client: running\n"
                } else {
                    "client: not running (last state below)\n"
                });
                for (key, v) in pairs {
                    if key == "last_error" && v.is_empty() {
                        continue;
                    }
                    out.push_str(key);
                    out.push_str(": ");
                    // Times as people read them (UTC date, age); --json
                    // keeps the Unix seconds.
                    match crate::parse::decimal(v).filter(|_| TIME_FIELDS.contains(&key)) {
                        Some(0) if key == "crng_ready_at" => {
                            out.push_str("before the client started")
                        }
                        Some(0) => out.push_str("never"),
                        Some(t) => {
                            push_utc(&mut out, t);
                            if t <= now {
                                out.push_str(" (");
                                push_age(&mut out, now - t);
                                out.push_str(" ago)");
                            }
                        }
                        None => out.push_str(v),
                    }
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds `t`.
fn push_utc(out: &mut String, t: u64) {
    // Days to civil date: Howard Hinnant's algorithm, for dates after 1970.
    let (days, secs) = (t / 86_400, t % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    let two = |out: &mut String, v: u64| {
        out.push(char::from(b'0' + (v / 10 % 10) as u8));
        out.push(char::from(b'0' + (v % 10) as u8));
    };
    out.push_str(Num::new(y).as_str());
    out.push('-');
    two(out, m);
    out.push('-');
    two(out, d);
    out.push(' ');
    two(out, secs / 3600);
    out.push(':');
    two(out, secs / 60 % 60);
    out.push(':');
    two(out, secs % 60);
    out.push_str(" UTC");
}

/// `45 s`, `12 min`, `5 h`, `3 days`: whole units, rounded down.
fn push_age(out: &mut String, s: u64) {
    let (n, unit) = match s {
        0..=119 => (s, " s"),
        120..=7199 => (s / 60, " min"),
        7200..=172_799 => (s / 3600, " h"),
        _ => (s / 86_400, " days"),
    };
    out.push_str(Num::new(n).as_str());
    out.push_str(unit);
}

/// The status file `status` reads: --status-file; else the default one;
/// else, if that is missing, the one client instance's in the default
/// directory (`DIR/NAME/status`, as entropyservice@NAME.service keeps it)
/// when there is exactly one. Several: a usage error naming them.
#[cfg(feature = "systemd")]
fn status_file_to_read(given: Option<&str>, dir: &str) -> Result<String> {
    if let Some(p) = given {
        return Ok(p.into());
    }
    let default = msg(&[dir, "/status"]);
    if std::fs::symlink_metadata(&default).is_ok() {
        return Ok(default);
    }
    match instance_files(dir) {
        (0, _) => Ok(default),
        (1, path) => Ok(path),
        (_, list) => Err(Error::new(
            Status::Usage,
            msg(&[
                "several clients keep a status file here (",
                &list,
                "); choose one with --status-file",
            ]),
        )),
    }
}

/// The router build: --status-file, else the default one (OpenWrt's init
/// script passes --status-file for each of its clients).
#[cfg(not(feature = "systemd"))]
fn status_file_to_read(given: Option<&str>, dir: &str) -> Result<String> {
    Ok(given.map_or_else(|| msg(&[dir, "/status"]), Into::into))
}

/// `DIR/NAME/status` for each subdirectory NAME of `dir` that holds one as
/// a regular file (links are not followed): how many, and their paths
/// joined by ", ".
#[cfg(feature = "systemd")]
fn instance_files(dir: &str) -> (usize, String) {
    use rustix::fs::{Mode, OFlags};
    let (mut n, mut list) = (0, String::new());
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::open(dir, flags, Mode::empty()) else {
        return (n, list);
    };
    let mut buf = [core::mem::MaybeUninit::uninit(); 2048];
    let mut entries = rustix::fs::RawDir::new(&fd, &mut buf);
    while let Some(Ok(e)) = entries.next() {
        let Ok(name) = e.file_name().to_str() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = msg(&[dir, "/", name, "/status"]);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            if n > 0 {
                list.push_str(", ");
            }
            list.push_str(&path);
            n += 1;
        }
    }
    (n, list)
}

pub fn run(a: &crate::cli::Status) -> Result<()> {
    let path = status_file_to_read(a.status_file.as_deref(), &crate::runtime::default_dir())?;
    let text = crate::sys::read_to_string(&path).ok();
    #[allow(clippy::disallowed_methods)] // the wall clock, for a status/audit time only
    let out = render(
        text.as_deref(),
        lock_held(&path),
        kernel::info(),
        a.json,
        crate::clock::wall_secs(),
    );
    crate::log::stdout(out.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "systemd")]
    fn status_finds_the_one_instance_file() {
        let dir = std::env::temp_dir().join(format!("es-status-find-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).unwrap();
        let d = dir.to_str().unwrap();
        let find = |given| status_file_to_read(given, d);
        // Nothing there: the default file (reported as no status file).
        assert_eq!(find(None).unwrap(), msg(&[d, "/status"]));
        // A link to a status file is not one.
        std::os::unix::fs::symlink("/etc/passwd", dir.join("home/status")).unwrap();
        assert_eq!(find(None).unwrap(), msg(&[d, "/status"]));
        std::fs::remove_file(dir.join("home/status")).unwrap();
        std::fs::write(dir.join("home/status"), "pid: 1\n").unwrap();
        assert_eq!(find(None).unwrap(), msg(&[d, "/home/status"]));
        assert_eq!(find(Some("/x/status")).unwrap(), "/x/status");
        std::fs::create_dir_all(dir.join("office")).unwrap();
        std::fs::write(dir.join("office/status"), "pid: 2\n").unwrap();
        let e = find(None).unwrap_err();
        assert_eq!(e.status, Status::Usage);
        // In directory order.
        let (home, office) = (msg(&[d, "/home/status"]), msg(&[d, "/office/status"]));
        let one = |x: &str, y: &str| {
            msg(&[
                "several clients keep a status file here (",
                x,
                ", ",
                y,
                "); choose one with --status-file",
            ])
        };
        assert!(
            e.msg == one(&home, &office) || e.msg == one(&office, &home),
            "{}",
            e.msg
        );
        // The default file, when there, wins.
        std::fs::write(dir.join("status"), "pid: 3\n").unwrap();
        assert_eq!(find(None).unwrap(), msg(&[d, "/status"]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_lock_tells_a_running_client() {
        let dir = std::env::temp_dir().join(format!("es-status-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let status = dir.join("status");
        let status = status.to_str().unwrap();
        assert_eq!(lock_held(status), None);
        let held = hold_lock(status).unwrap();
        assert_eq!(lock_held(status), Some(true));
        let again = hold_lock(status).map(|_| ()).unwrap_err();
        assert_eq!(again.status, Status::TempFail);
        assert!(again.msg.contains("another client"), "{}", again.msg);
        drop(held);
        assert_eq!(lock_held(status), Some(false));
        // Pid 1 is alive here, as the pid a jailed client records is: the
        // lock, not the pid, decides.
        let text = "pid: 1\nstate: idle\n";
        let k = kernel::Info::default();
        assert!(render(Some(text), Some(false), k, false, 0).contains("client: not running"));
        assert!(render(Some(text), Some(true), k, false, 0).contains("client: running"));
        assert!(render(Some(text), None, k, false, 0).contains("client: running"));
        // A link or a FIFO planted as the lock file is refused.
        let link = dir.join("l");
        std::os::unix::fs::symlink("/etc/passwd", dir.join("l.lock")).unwrap();
        assert!(hold_lock(link.to_str().unwrap()).is_err());
        let fifo = dir.join("f");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("f.lock").as_path(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(hold_lock(fifo.to_str().unwrap()).is_err());
        assert_eq!(lock_held(fifo.to_str().unwrap()), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn round_trip_and_json() {
        let st = State {
            pid: 7,
            mode: "topup",
            state: "idle",
            server: "u@h:22".into(),
            bits_credited: 128,
            last_error: "a \"quoted\"\nline".into(),
            ..State::default()
        };
        let dir = std::env::temp_dir().join(format!("es-status-{}", std::process::id()));
        let path = dir.join("status");
        st.write(path.to_str().unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let p = parse(&text);
        assert!(p.contains(&("bits_credited", "128")));
        assert!(p.contains(&("last_error", "a \"quoted\" line")));
        let k = kernel::Info {
            poolsize: 256,
            entropy_avail: 256,
            crng_ready: true,
        };
        let j = render(Some(&text), None, k, true, 0);
        assert!(j.starts_with("{\"kernel\":{\"crng_ready\":true,\"entropy_avail\":256,\"poolsize\":256},\"client\":{\"pid\":7,"), "{j}");
        assert!(
            j.contains("\"last_error\":\"a \\\"quoted\\\" line\""),
            "{j}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn times_are_dates_and_ages_for_people() {
        let k = kernel::Info::default();
        let text = "pid: 1\nlast_success: 1764565200\ncrng_ready_at: 0\nseed_saved_at: 1764561600\nlast_error: \n";
        let now = 1_764_565_200 + 185;
        let t = render(Some(text), None, k, false, now);
        assert!(
            t.contains("last_success: 2025-12-01 05:00:00 UTC (3 min ago)\n"),
            "{t}"
        );
        assert!(
            t.contains("seed_saved_at: 2025-12-01 04:00:00 UTC (63 min ago)\n"),
            "{t}"
        );
        assert!(
            t.contains("crng_ready_at: before the client started\n"),
            "{t}"
        );
        assert!(
            !t.contains("last_error"),
            "an empty last_error is left out: {t}"
        );
        let j = render(Some(text), None, k, true, now);
        assert!(j.contains("\"last_success\":1764565200"), "{j}");
        let mut s = String::new();
        push_utc(&mut s, 951_782_400);
        assert_eq!(s, "2000-02-29 00:00:00 UTC");
        for (secs, want) in [
            (0, "0 s"),
            (119, "119 s"),
            (7199, "119 min"),
            (7200, "2 h"),
            (172_800, "2 days"),
        ] {
            let mut s = String::new();
            push_age(&mut s, secs);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn hostile_status_file() {
        let text = "pid: 1\npid: 2\nbogus: x\nmode: \u{1}\"\n";
        let p = parse(text);
        assert_eq!(p, vec![("pid", "1"), ("mode", "\u{1}\"")]);
        let j = render(Some(text), None, kernel::Info::default(), true, 0);
        assert!(j.contains("\"mode\":\"\\u0001\\\"\""), "{j}");
        // Found by fuzzing: a number with leading zeros is not JSON.
        let j = render(Some("pid: 007\n"), None, kernel::Info::default(), true, 0);
        assert!(j.contains("\"pid\":7"), "{j}");
    }
}
