//! Log lines on stderr, one per event, `LEVEL: message`: procd hands them to
//! logd and systemd to the journal, both of which add the time and the tag.
//! When stderr is the journal's stream (systemd sets JOURNAL_STREAM to its
//! `DEV:INODE`), each line starts with sd-daemon's `<N>` so the journal files
//! errors as errors (3), warnings as 4 and the rest as info (6).

use crate::text::Num;
use core::sync::atomic::{AtomicU8, Ordering};

/// 0 = not read yet, then 1 error, 2 warning, 3 info (and debug).
static LEVEL: AtomicU8 = AtomicU8::new(0);
/// 0 = not checked yet, 1 = plain lines, 2 = stderr is the journal.
static JOURNAL: AtomicU8 = AtomicU8::new(0);

/// Whether the file at `path` (stderr is `/proc/self/fd/2`) is the stream
/// named by JOURNAL_STREAM (`DEV:INODE`, decimal). std's metadata, not
/// rustix's fstat: on big-endian MIPS the latter links PIC code from musl
/// that the non-PIC release build cannot call (scripts/mips-pic-check.py).
fn is_journal_stream(var: Option<&str>, path: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = var.and_then(|v| v.split_once(':')) else {
        return false;
    };
    match std::fs::metadata(path) {
        Ok(m) => dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()),
        Err(_) => false,
    }
}

fn to_journal() -> bool {
    let mut j = JOURNAL.load(Ordering::Relaxed);
    if j == 0 {
        let var = crate::sys::env(c"JOURNAL_STREAM");
        j = 1 + is_journal_stream(var, "/proc/self/fd/2") as u8;
        JOURNAL.store(j, Ordering::Relaxed);
    }
    j == 2
}

/// The level from ENTROPYSERVICE_LOG (`error`, `warn`/`warning`, `info`,
/// `debug`); info when unset or unknown.
fn enabled(rank: u8) -> bool {
    let mut l = LEVEL.load(Ordering::Relaxed);
    if l == 0 {
        l = match crate::sys::env(c"ENTROPYSERVICE_LOG") {
            Some("error") => 1,
            Some("warn" | "warning") => 2,
            _ => 3,
        };
        LEVEL.store(l, Ordering::Relaxed);
    }
    rank <= l
}

fn line(level: &str, parts: &[&str]) {
    let rank = match level {
        "error: " => 1,
        "warning: " => 2,
        _ => 3,
    };
    if !enabled(rank) {
        return;
    }
    let mut s = String::with_capacity(128);
    if to_journal() {
        s.push_str(["<3>", "<4>", "<6>"][rank as usize - 1]);
    }
    s.push_str(level);
    for p in parts {
        s.push_str(p);
    }
    s.push('\n');
    // One write per line so concurrent writers do not interleave; a closed
    // stderr is not worth dying for. Under procd (which logs stdout at
    // LOG_INFO and stderr at LOG_ERR) the init script asks for info lines
    // on stdout, so that logread shows them at their level.
    if rank == 3 && crate::sys::env_bytes(c"ENTROPYSERVICE_LOG_INFO_STDOUT") == Some(b"1") {
        stdout(s.as_bytes());
    } else {
        write_all(rustix::stdio::stderr(), s.as_bytes());
    }
}

/// Writes `b` to stdout, unbuffered: each caller writes whole lines or
/// documents at once. Not std's `Stdout`, whose line buffer, re-entrant
/// lock and flush at exit cost about 3 KB on MIPS. A closed or full
/// stdout is not worth dying for: errors end the write silently.
pub fn stdout(b: &[u8]) {
    write_all(rustix::stdio::stdout(), b);
}

fn write_all(fd: rustix::fd::BorrowedFd<'_>, mut b: &[u8]) {
    while !b.is_empty() {
        match rustix::io::write(fd, b) {
            Ok(0) => return,
            Ok(n) => b = &b[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return,
        }
    }
}

pub fn info(msg: &str) {
    line("info: ", &[msg]);
}

pub fn warn(msg: &str) {
    line("warning: ", &[msg]);
}

pub fn error(msg: &str) {
    line("error: ", &[msg]);
}

/// `info` from parts, without `format!`.
pub fn info_parts(parts: &[&str]) {
    line("info: ", parts);
}

pub fn warn_parts(parts: &[&str]) {
    line("warning: ", parts);
}

pub const LOG_WARNING: u8 = 4;
pub const LOG_INFO: u8 = 6;
const LOG_AUTH: u8 = 4 << 3;

/// Sends one line to the local syslog socket (/dev/log) as
/// `<PRI>entropyservice[PID]: line`, facility auth. Best effort: without a
/// syslog daemon the line is dropped. (Written here rather than through
/// libc's syslog(3), which pulls printf and time-zone code into the binary.)
pub fn syslog(severity: u8, line: &str) {
    syslog_to("/dev/log", severity, line);
}

fn syslog_to(path: &str, severity: u8, line: &str) {
    use rustix::net::{sendto, socket, AddressFamily, SendFlags, SocketAddrUnix, SocketType};
    let Ok(addr) = SocketAddrUnix::new(path) else {
        return;
    };
    let Ok(sock) = socket(AddressFamily::UNIX, SocketType::DGRAM, None) else {
        return;
    };
    let pri = Num::new((LOG_AUTH | severity) as u64);
    let pid = Num::new(std::process::id() as u64);
    let mut msg = String::with_capacity(line.len() + 40);
    for p in ["<", pri.as_str(), ">entropyservice[", pid.as_str(), "]: "] {
        msg.push_str(p);
    }
    // One line, no control characters, bounded.
    msg.extend(
        line.chars()
            .take(900)
            .map(|c| if c.is_control() { ' ' } else { c }),
    );
    let _ = sendto(&sock, msg.as_bytes(), SendFlags::empty(), &addr);
}

#[cfg(test)]
mod tests {
    #[test]
    fn syslog_datagram_format() {
        use std::os::unix::net::UnixDatagram;
        let path = std::env::temp_dir().join(format!("es-log-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        super::syslog_to(path.to_str().unwrap(), super::LOG_WARNING, "a\nb");
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).unwrap();
        let want = format!("<36>entropyservice[{}]: a b", std::process::id());
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), want);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn journal_stream_is_matched_by_device_and_inode() {
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("es-journal-{}", std::process::id()));
        let f = std::fs::File::create(&path).unwrap();
        let m = f.metadata().unwrap();
        let same = format!("{}:{}", m.dev(), m.ino());
        let other = format!("{}:{}", m.dev(), m.ino() + 1);
        let p = path.to_str().unwrap();
        assert!(super::is_journal_stream(Some(&same), p));
        assert!(!super::is_journal_stream(Some(&other), p));
        assert!(!super::is_journal_stream(Some("garbage"), p));
        assert!(!super::is_journal_stream(Some(""), p));
        assert!(!super::is_journal_stream(None, p));
        assert!(!super::is_journal_stream(Some(&same), "/nonexistent/es"));
        let _ = std::fs::remove_file(&path);
    }
}
