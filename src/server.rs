//! `entropyservice server`: the forced command. Data flow:
//! request check -> peer check -> session slots -> source -> rate -> stdout.
//!
//! Guarantees: a refused session writes nothing to stdout, prints one line on
//! stderr (which SSH hands to the client) and exits with its class's status:
//! 65 bad request, 75 session cap reached, 77 peer not allowed. The client's
//! words are only ever parsed, never run. A client hang-up ends the session
//! with status 0. Every session leaves one audit line when it starts and one
//! when it ends, or a single `refused` line.

use crate::cli;
use crate::clock;
use crate::error::{msg, Error, Result, Status};
use crate::limits;
use crate::log::{self, Num};
use crate::parse::{self, Request};
use crate::rate::{Bucket, NS};
use crate::source::Source;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

const BUF: usize = 16 * 1024;

/// Audit lines: `EVENT client=.. peer=.. pid=.. request=".." ...` to syslog,
/// and with the Unix time in front to `--audit-file`, one write per line.
struct Audit<'a> {
    client: &'a str,
    peer: String,
    request: String,
    file: Option<std::fs::File>,
    /// The start line was written, so an error ends with an `end` line.
    started: bool,
}

impl Audit<'_> {
    fn line(&mut self, event: &str, parts: &[&str]) {
        let pid = Num::new(std::process::id() as u64);
        let mut s = msg(&[
            event,
            " client=",
            self.client,
            " peer=",
            &self.peer,
            " pid=",
            pid.as_str(),
            " request=\"",
            &self.request,
            "\"",
        ]);
        for p in parts {
            s.push_str(p);
        }
        log::syslog(log::LOG_INFO, &s);
        if let Some(f) = self.file.as_mut() {
            let l = msg(&[Num::new(clock::wall_secs()).as_str(), " ", &s, "\n"]);
            let _ = f.write_all(l.as_bytes());
        }
    }
}

/// Printable form of the client's request for logs: control characters
/// and quotes replaced, bounded length.
fn printable(s: &str) -> String {
    s.chars()
        .take(parse::MAX_REQUEST)
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn open_audit(path: &str) -> Option<std::fs::File> {
    match std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(regular_file)
    {
        Ok(f) => Some(f),
        Err(e) => {
            let e = Error::os(
                Status::CantCreate,
                &msg(&[
                    "cannot open audit file ",
                    path,
                    "; audit lines go to syslog only",
                ]),
                e,
            );
            log::syslog(log::LOG_WARNING, &e.msg);
            None
        }
    }
}

/// The audit file must be a regular file: opened without following a link
/// and without blocking on a FIFO, then checked, so neither can steer or
/// stall a session.
fn regular_file(f: std::fs::File) -> std::io::Result<std::fs::File> {
    if f.metadata()?.file_type().is_file() {
        Ok(f)
    } else {
        Err(std::io::Error::other("not a regular file"))
    }
}

pub fn run(a: &cli::Server) -> Result<()> {
    crate::sys::install_signal_handlers();
    if !parse::is_safe_name(&a.client) {
        return Err(Error::new(
            Status::Usage,
            "--client must be 1-64 of letters, digits, '.', '_', '-'",
        ));
    }
    let max_time = parse::duration_ns(&a.max_time).ok_or_else(|| {
        Error::new(
            Status::Usage,
            "--max-time must be a duration such as 30s, 10m or 1h",
        )
    })?;
    let write_timeout = parse::duration_ns(&a.write_timeout)
        .filter(|t| *t > 0)
        .ok_or_else(|| {
            Error::new(
                Status::Usage,
                "--write-timeout must be a duration above 0 such as 30s or 10m",
            )
        })?;
    let allow = match &a.allow_from {
        Some(s) => Some(parse::cidr_list(s).ok_or_else(|| {
            Error::new(
                Status::Usage,
                msg(&[
                    "--allow-from ",
                    s,
                    " is not a comma-separated list of CIDRs such as 192.0.2.0/24,2001:db8::/32",
                ]),
            )
        })?),
        None => None,
    };
    // Not UTF-8 must not read as empty (a stream request): keep it lossy so
    // the parser refuses it.
    let raw_request = crate::sys::env_bytes(c"SSH_ORIGINAL_COMMAND")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let conn = crate::sys::env(c"SSH_CONNECTION").or_else(|| crate::sys::env(c"SSH_CLIENT"));
    let peer = conn.and_then(parse::peer);
    let mut audit = Audit {
        client: &a.client,
        peer: match (&peer, &conn) {
            (Some(p), _) => {
                let mut s = String::new();
                crate::error::push_display(&mut s, p);
                s
            }
            (None, Some(_)) => "malformed".into(),
            (None, None) => "local".into(),
        },
        request: printable(&raw_request),
        file: a.audit_file.as_deref().and_then(open_audit),
        started: false,
    };
    let result = session(
        a,
        &raw_request,
        peer.as_ref(),
        conn.is_some(),
        allow.as_deref(),
        (max_time, write_timeout),
        &mut audit,
    );
    if let Err(e) = &result {
        if !audit.started {
            audit.line(
                "refused",
                &[
                    " status=",
                    Num::new(e.exit_code() as u64).as_str(),
                    " reason=\"",
                    &e.msg,
                    "\"",
                ],
            );
        }
    }
    result
}

/// A lock-directory fault is the server's, not the client's: it must not
/// look like "peer not allowed" (77) to the client.
fn lock_fault(e: Error) -> Error {
    Error::new(
        e.status,
        msg(&[
            "session slots unavailable: ",
            &e.msg,
            "; or choose another --lock-dir",
        ]),
    )
}

fn take_slot(dir: &str, cap: u32, refusal: impl FnOnce() -> String) -> Result<limits::Slot> {
    limits::acquire(dir, cap)
        .map_err(lock_fault)?
        .ok_or_else(|| Error::new(Status::TempFail, refusal()))
}

fn check_peer(
    peer: Option<&parse::Peer>,
    have_conn: bool,
    allow: &[parse::Cidr],
    audit: &Audit<'_>,
) -> Result<()> {
    let Some(p) = peer else {
        let why = if have_conn {
            "SSH_CONNECTION is malformed"
        } else {
            "SSH_CONNECTION and SSH_CLIENT are not set"
        };
        return Err(Error::new(
            Status::NoPerm,
            msg(&[
                "peer not allowed: ",
                why,
                "; --allow-from needs the peer address from sshd or dropbear",
            ]),
        ));
    };
    if allow.iter().any(|c| c.admits(p)) {
        return Ok(());
    }
    Err(Error::new(
        Status::NoPerm,
        msg(&[
            "peer not allowed: ",
            &audit.peer,
            " is not in --allow-from for client ",
            audit.client,
        ]),
    ))
}

fn session(
    a: &cli::Server,
    raw_request: &str,
    peer: Option<&parse::Peer>,
    have_conn: bool,
    allow: Option<&[parse::Cidr]>,
    (max_time, write_timeout): (u64, u64),
    audit: &mut Audit<'_>,
) -> Result<()> {
    let request = parse::request(raw_request, a.max_bytes)
        .map_err(|e| Error::new(Status::Data, msg(&["bad request: ", e.as_str()])))?;
    if let Some(allow) = allow {
        check_peer(peer, have_conn, allow, audit)?;
    }
    let lock_dir = a.lock_dir.clone().unwrap_or_else(limits::default_lock_dir);
    let uses_locks = a.max_sessions > 0 || a.max_total_sessions > 0 || a.total_rate > 0;
    if uses_locks {
        limits::ensure_private_dir(&lock_dir).map_err(lock_fault)?;
    }
    let _client_slot = if a.max_sessions > 0 {
        let dir = msg(&[&lock_dir, "/client-", &a.client]);
        Some(take_slot(&dir, a.max_sessions, || {
            msg(&[
                "session cap reached: client ",
                &a.client,
                " is at its limit of ",
                Num::new(a.max_sessions as u64).as_str(),
                " concurrent sessions (--max-sessions); try again later",
            ])
        })?)
    } else {
        None
    };
    // Every session under a total cap or budget holds a slot here, so the
    // held slots are the live sessions that share --total-rate.
    let all_dir = msg(&[&lock_dir, "/all"]);
    let _total_slot = if a.max_total_sessions > 0 || a.total_rate > 0 {
        let cap = match a.max_total_sessions {
            0 => limits::UNCAPPED_SLOTS,
            n => n,
        };
        Some(take_slot(&all_dir, cap, || {
            msg(&[
                "session cap reached: this server is at its limit of ",
                Num::new(cap as u64).as_str(),
                " concurrent sessions (--max-total-sessions); try again later",
            ])
        })?)
    } else {
        None
    };
    let mut source = Source::open(&a.source, clock::now_ns())?;
    let limit = match request {
        Request::Get(n) => n,
        Request::Stream => a.max_bytes,
    };
    audit.line(
        "start",
        &[
            " source=",
            source.describe(),
            " rate=",
            Num::new(a.rate).as_str(),
        ],
    );
    audit.started = true;
    let start = clock::now_ns();
    let limits = Deadlines {
        session_end: start.saturating_add(max_time),
        write_timeout,
    };
    let (sent, why) = stream(a, &mut source, limit, start, limits, &all_dir, audit);
    let dur_ms = clock::now_ns().saturating_sub(start) / 1_000_000;
    let (why_str, res) = match why {
        End::Done => ("done", Ok(())),
        End::HungUp => ("client hung up", Ok(())),
        End::MaxBytes => ("max-bytes reached", Ok(())),
        End::MaxTime => ("max-time reached", Ok(())),
        End::Stalled => ("client stopped reading (write-timeout)", Ok(())),
        End::Signal => ("signal", Ok(())),
        End::Failed(e) => ("error", Err(e)),
    };
    let err = match &res {
        Err(e) => e.msg.as_str(),
        Ok(()) => "",
    };
    audit.line(
        "end",
        &[
            " source=",
            source.describe(),
            " bytes=",
            Num::new(sent).as_str(),
            " duration_ms=",
            Num::new(dur_ms).as_str(),
            " reason=\"",
            why_str,
            if err.is_empty() { "" } else { ": " },
            err,
            "\"",
        ],
    );
    res
}

enum End {
    Done,
    HungUp,
    MaxBytes,
    MaxTime,
    /// The client took no byte for `--write-timeout`.
    Stalled,
    Signal,
    Failed(Error),
}

/// This session's rate: its own `--rate` (0 = unlimited) capped by an equal
/// share of `--total-rate` among `live` sessions.
fn share(own: u64, total: u64, live: u64) -> u64 {
    if total == 0 {
        return own;
    }
    let fair = (total / live.max(1)).max(1);
    if own == 0 {
        fair
    } else {
        own.min(fair)
    }
}

fn burst_for(a: &cli::Server, rate: u64) -> u64 {
    a.burst.unwrap_or((rate / 4).max(32)).clamp(1, BUF as u64)
}

/// Sleeps up to `ns`, waking early when the client hangs up (the reader of
/// stdout went away). Returns false on hang-up, so an idle or paused session
/// frees its slots at once instead of at its next write.
fn idle(out: impl AsFd, ns: u64) -> bool {
    let ts = rustix::time::Timespec {
        tv_sec: (ns / NS) as _,
        tv_nsec: (ns % NS) as _,
    };
    let mut fds = [PollFd::new(&out, PollFlags::empty())];
    match poll(&mut fds, Some(&ts)) {
        Ok(n) if n > 0 => !fds[0]
            .revents()
            .intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL),
        _ => true,
    }
}

/// What a wait for a writable stdout saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Writable, or the wait ended early: try the write again.
    Ready,
    HungUp,
    Signal,
}

/// Time and readiness for the write loop: the monotonic clock and poll(2),
/// or a fake clock in tests.
trait Waiter {
    fn now(&mut self) -> u64;
    /// Waits at most `ns` for `out` to take more bytes.
    fn writable(&mut self, out: BorrowedFd<'_>, ns: u64) -> Wait;
}

struct RealTime;

impl Waiter for RealTime {
    fn now(&mut self) -> u64 {
        clock::now_ns()
    }

    fn writable(&mut self, out: BorrowedFd<'_>, ns: u64) -> Wait {
        let ts = rustix::time::Timespec {
            tv_sec: (ns / NS) as _,
            tv_nsec: (ns % NS) as _,
        };
        let mut fds = [PollFd::new(&out, PollFlags::OUT)];
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP) => {
                Wait::HungUp
            }
            Err(Errno::INTR) if crate::sys::pending_signal().is_some() => Wait::Signal,
            _ => Wait::Ready,
        }
    }
}

/// When a session must end whatever the client does.
#[derive(Clone, Copy)]
struct Deadlines {
    /// Monotonic time at which `--max-time` is up.
    session_end: u64,
    /// Longest a write may wait for the client to take one more byte
    /// (`--write-timeout`).
    write_timeout: u64,
}

/// Writes all of `buf` to a non-blocking `out`, unbuffered (no copy of the
/// bytes stays in a library buffer). A client that stops reading (a zero SSH
/// window) cannot hold the session past either deadline: the write waits in
/// poll(2) for the time left, never in write(2).
fn write_out(
    out: BorrowedFd<'_>,
    buf: &[u8],
    sent: &mut u64,
    limits: Deadlines,
    w: &mut dyn Waiter,
) -> core::result::Result<(), End> {
    let mut off = 0;
    let mut blocked_since = None;
    while off < buf.len() {
        match rustix::io::write(out, &buf[off..]) {
            Ok(0) | Err(Errno::PIPE) => return Err(End::HungUp),
            Ok(n) => {
                off += n;
                *sent += n as u64;
                blocked_since = None;
            }
            Err(Errno::AGAIN) => {
                let now = w.now();
                let since = *blocked_since.get_or_insert(now);
                let stalled_at = since.saturating_add(limits.write_timeout);
                if now >= limits.session_end {
                    return Err(End::MaxTime);
                }
                if now >= stalled_at {
                    return Err(End::Stalled);
                }
                let left = limits.session_end.min(stalled_at) - now;
                match w.writable(out, left) {
                    Wait::Ready => {}
                    Wait::HungUp => return Err(End::HungUp),
                    Wait::Signal => return Err(End::Signal),
                }
            }
            Err(Errno::INTR) if crate::sys::pending_signal().is_some() => return Err(End::Signal),
            Err(Errno::INTR) => {}
            Err(e) => {
                return Err(End::Failed(Error::os(
                    Status::Io,
                    "writing to the client failed",
                    e,
                )))
            }
        }
    }
    Ok(())
}

/// Puts stdout in non-blocking mode for the session and restores its flags
/// on drop, so the final error line on a shared stderr is written normally.
struct NonBlocking<'a> {
    fd: BorrowedFd<'a>,
    old: Option<rustix::fs::OFlags>,
}

impl<'a> NonBlocking<'a> {
    fn set(fd: BorrowedFd<'a>) -> Self {
        let old = rustix::fs::fcntl_getfl(fd).ok();
        if let Some(f) = old {
            let _ = rustix::fs::fcntl_setfl(fd, f | rustix::fs::OFlags::NONBLOCK);
        }
        NonBlocking { fd, old }
    }
}

impl Drop for NonBlocking<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.old {
            let _ = rustix::fs::fcntl_setfl(self.fd, f);
        }
    }
}

fn stream(
    a: &cli::Server,
    source: &mut Source,
    limit: u64,
    start: u64,
    limits: Deadlines,
    all_dir: &str,
    audit: &mut Audit<'_>,
) -> (u64, End) {
    let out = rustix::stdio::stdout();
    let _nonblocking = NonBlocking::set(out);
    let mut buf = [0u8; BUF];
    let mut bucket = Bucket::new(a.rate, burst_for(a, a.rate), start);
    let mut sent = 0u64;
    let mut next_eval = start;
    let mut paused = false;
    let legacy_reserve = a.reserve_bits > 0 && crate::kernel::info().legacy();
    loop {
        if crate::sys::pending_signal().is_some() {
            return (sent, End::Signal);
        }
        let now = clock::now_ns();
        if now >= limits.session_end {
            return (sent, End::MaxTime);
        }
        if sent >= limit {
            let end = if a.max_bytes == limit {
                End::MaxBytes
            } else {
                End::Done
            };
            return (sent, end);
        }
        if now >= next_eval {
            next_eval = now + NS;
            if a.total_rate > 0 {
                let live = limits::count_live(all_dir) as u64;
                let rate = share(a.rate, a.total_rate, live);
                if rate != bucket.rate() {
                    bucket.set_rate(rate, now);
                    bucket.set_burst(burst_for(a, rate));
                }
            }
            // Only old kernels (poolsize 4096) let entropy_avail fall; on
            // 5.18+ it stays at 256 once the CRNG is ready, so this is a no-op.
            paused = legacy_reserve && crate::kernel::info().entropy_avail < a.reserve_bits as i32;
        }
        let want = (limit - sent).min(BUF as u64).min(if bucket.rate() == 0 {
            BUF as u64
        } else {
            bucket.burst()
        });
        // Send once half a burst is there: waiting for a full burst would let
        // every late wake-up overflow the bucket and lose its tokens, and the
        // long-run rate would come out low.
        let wait = if paused {
            next_eval - now
        } else {
            bucket.wait_ns(want.div_ceil(2), now)
        };
        if wait > 0 {
            if !idle(out, wait.min(next_eval.saturating_sub(now)).max(1)) {
                return (sent, End::HungUp);
            }
            continue;
        }
        let n = bucket.take(want, now) as usize;
        if let Err(e) = source.fill(&mut buf[..n], now) {
            return (sent, End::Failed(e));
        }
        if let Some(d) = source.dropped.take() {
            audit.line("source", &[" warning=\"", &d, "\""]);
        }
        let w = write_out(out, &buf[..n], &mut sent, limits, &mut RealTime);
        buf[..n].fill(0);
        if let Err(end) = w {
            return (sent, end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_the_smaller_of_own_rate_and_fair_share() {
        assert_eq!(share(1000, 0, 5), 1000);
        assert_eq!(share(0, 0, 5), 0);
        assert_eq!(share(0, 20_000, 10), 2000);
        assert_eq!(share(1000, 20_000, 10), 1000);
        assert_eq!(share(5000, 20_000, 2), 5000);
        assert_eq!(share(0, 20_000, 0), 20_000);
        assert_eq!(share(0, 3, 10), 1);
    }

    /// A fake clock that moves only when the code under test waits, and
    /// optionally drains the pipe's far end like a client that reads.
    struct FakeTime {
        now: u64,
        waits: Vec<u64>,
        reader: Option<rustix::fd::OwnedFd>,
    }

    impl Waiter for FakeTime {
        fn now(&mut self) -> u64 {
            self.now
        }
        fn writable(&mut self, _out: BorrowedFd<'_>, ns: u64) -> Wait {
            self.waits.push(ns);
            match &self.reader {
                // A slow client: it takes one page 1.5 s into each wait.
                Some(r) if ns >= 3 * NS / 2 => {
                    self.now += 3 * NS / 2;
                    let mut b = [0u8; 4096];
                    assert_eq!(rustix::io::read(r, &mut b), Ok(4096));
                }
                _ => self.now += ns,
            }
            Wait::Ready
        }
    }

    /// A pipe whose write end is non-blocking and already full: a client
    /// that stopped reading.
    fn full_pipe() -> (rustix::fd::OwnedFd, rustix::fd::OwnedFd) {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (r, w) = pipe_with(PipeFlags::CLOEXEC).unwrap();
        rustix::fs::fcntl_setfl(&w, rustix::fs::OFlags::NONBLOCK).unwrap();
        let page = [0x5au8; 4096];
        while rustix::io::write(&w, &page).is_ok() {}
        (r, w)
    }

    #[test]
    fn max_time_ends_a_write_the_client_never_reads() {
        let (_r, w) = full_pipe();
        let mut t = FakeTime {
            now: 1000 * NS,
            waits: vec![],
            reader: None,
        };
        let limits = Deadlines {
            session_end: 1005 * NS,
            write_timeout: 600 * NS,
        };
        let mut sent = 0;
        let r = write_out(w.as_fd(), &[1u8; BUF], &mut sent, limits, &mut t);
        assert!(matches!(r, Err(End::MaxTime)));
        // One wait, exactly the time left, then the session ends on time.
        assert_eq!(t.waits, [5 * NS]);
        assert_eq!(t.now, 1005 * NS);
        assert_eq!(sent, 0);
    }

    #[test]
    fn write_timeout_ends_a_stalled_client_before_max_time() {
        let (_r, w) = full_pipe();
        let mut t = FakeTime {
            now: 0,
            waits: vec![],
            reader: None,
        };
        let limits = Deadlines {
            session_end: 3600 * NS,
            write_timeout: 2 * NS,
        };
        let mut sent = 0;
        let r = write_out(w.as_fd(), &[1u8; BUF], &mut sent, limits, &mut t);
        assert!(matches!(r, Err(End::Stalled)));
        assert_eq!(t.waits, [2 * NS]);
    }

    #[test]
    fn a_slow_reader_that_makes_progress_is_not_stalled() {
        let (r, w) = full_pipe();
        let mut t = FakeTime {
            now: 0,
            waits: vec![],
            reader: Some(r),
        };
        let limits = Deadlines {
            session_end: 3600 * NS,
            write_timeout: 2 * NS,
        };
        let mut sent = 0;
        let r = write_out(w.as_fd(), &[1u8; BUF], &mut sent, limits, &mut t);
        assert!(r.is_ok());
        assert_eq!(sent, BUF as u64);
        // Four pages, 1.5 s apart: 6 s in all, yet never 2 s without progress.
        assert_eq!(t.waits.len(), 4);
        assert!(t.waits.iter().all(|&w| w == 2 * NS));
        // The same reader against a 5 s session: cut off at the deadline.
        let (r, w) = full_pipe();
        let mut t = FakeTime {
            now: 0,
            waits: vec![],
            reader: Some(r),
        };
        let limits = Deadlines {
            session_end: 5 * NS,
            write_timeout: 2 * NS,
        };
        let mut sent = 0;
        let r = write_out(w.as_fd(), &[1u8; BUF], &mut sent, limits, &mut t);
        assert!(matches!(r, Err(End::MaxTime)));
        assert_eq!(sent, 3 * 4096);
        assert_eq!(t.waits, [2 * NS, 2 * NS, 2 * NS, NS / 2]);
    }

    #[test]
    fn printable_requests() {
        assert_eq!(printable("get 64"), "get 64");
        assert_eq!(printable("a\"b\nc\u{e9}"), "a?b?c?");
        assert_eq!(printable(&"x".repeat(100)).len(), parse::MAX_REQUEST);
    }
}
