//! One SSH session: `get N` fetched and tested whole before any credit
//! (top-up), or a stream credited in tested 512-byte chunks; the child is
//! killed and reaped on every way out.

use super::config::Config;
use super::MAX_GET;
use crate::clock;
use crate::error::{Error, Result, Status};
use crate::health::Health;
use crate::kernel::{self, Pool};
use crate::rate::NS;
use crate::ssh::{self, Read, Server, Session};
use crate::status::{self, State};
use crate::sys::pending_signal;
use crate::text::{msg, Num};

/// Stream mode credits in chunks of this size, each tested in full first.
const CHUNK: usize = 512;

/// Reads exactly `buf.len()` bytes from a new session running `command`.
fn fetch_exact(
    cfg: &Config,
    s: &Server,
    st: &mut State,
    command: &str,
    buf: &mut [u8],
) -> Result<()> {
    status::ensure_runtime_dir(&cfg.runtime)?;
    let mut sess = Session::start(
        &cfg.program,
        s,
        command,
        &cfg.runtime,
        cfg.connect_timeout / NS,
    )?;
    st.sessions += 1;
    let end = clock::now_ns().saturating_add(cfg.session_timeout);
    let mut got = 0;
    while got < buf.len() {
        let timeout = if got == 0 {
            cfg.connect_timeout
        } else {
            cfg.stall_timeout
        };
        let timeout = cut(timeout, end, clock::now_ns());
        match sess.read(&mut buf[got..], timeout)? {
            Read::Data(n) => got += n,
            Read::Eof => {
                if let Some(e) = ssh_failure(sess, s, got == 0, EOF) {
                    return Err(e);
                }
                let (a, b) = (Num::new(got as u64), Num::new(buf.len() as u64));
                return Err(Error::new(
                    Status::Data,
                    msg(&[
                        "server ",
                        &s.label(),
                        " sent ",
                        a.as_str(),
                        " of ",
                        b.as_str(),
                        " bytes; nothing credited",
                    ]),
                ));
            }
            Read::Timeout => {
                if let Some(e) = ssh_failure(sess, s, got == 0, !EOF) {
                    return Err(e);
                }
                let what = if clock::now_ns() >= end {
                    " did not finish within --session-timeout; session killed"
                } else if got == 0 {
                    " sent nothing within the connect timeout"
                } else {
                    " stalled; session killed"
                };
                return Err(Error::new(
                    Status::Unavailable,
                    msg(&["server ", &s.label(), what, "; nothing credited"]),
                ));
            }
            Read::Interrupted => {
                if pending_signal().is_some() {
                    return Err(Error::new(Status::Unavailable, "interrupted by a signal"));
                }
            }
        }
    }
    // A `get N` server exits by itself now: wait (one blocking poll, no
    // polling loop) for the child to close its stdout, then reap it. A
    // legacy `cat` server streams on; finish() kills it.
    let mut extra = [0u8; 64];
    let _ = sess.read(&mut extra, cfg.stall_timeout.min(2 * NS));
    extra.fill(0);
    let _ = sess.finish();
    Ok(())
}

fn health_error(s: &Server, f: crate::health::Failure) -> Error {
    Error::new(
        Status::Data,
        msg(&[
            "bytes from ",
            &s.label(),
            " failed the health tests: ",
            f.as_str(),
            "; nothing credited",
        ]),
    )
}

/// One `get N` round: fetch, test all N bytes, credit, reseed.
pub(super) fn topup_once(
    cfg: &Config,
    s: &Server,
    pool: &mut Pool,
    st: &mut State,
    n: usize,
) -> Result<(u64, bool)> {
    let mut buf = [0u8; MAX_GET];
    let n = n.min(MAX_GET);
    let cmd = msg(&["get ", Num::new(n as u64).as_str()]);
    let r = fetch_exact(cfg, s, st, &cmd, &mut buf[..n]);
    if let Err(e) = r {
        buf.fill(0);
        return Err(e);
    }
    st.bytes_received += n as u64;
    let mut h = Health::new();
    if let Err(f) = h.check(&buf[..n]) {
        st.health_failures += 1;
        buf.fill(0);
        return Err(health_error(s, f));
    }
    let counted = pool.totals.bits_counted;
    let credited = pool.add(&buf[..n], cfg.bits_per_byte);
    buf.fill(0);
    let credited = credited?;
    st.bits_credited += pool.totals.bits_counted - counted;
    st.bytes_mixed += n as u64;
    let reseeded = pool.reseed(clock::now_ns())?;
    st.reseeds = pool.totals.reseeds;
    Ok((credited, reseeded))
}

/// Streams from one server, crediting tested 512-byte chunks, until `done`
/// says stop, a signal arrives, or the session fails. `after_credit` runs
/// after each credited chunk (the seed schedule).
pub(super) fn stream_session(
    cfg: &Config,
    s: &Server,
    pool: &mut Pool,
    st: &mut State,
    done: &dyn Fn() -> bool,
    after_credit: &mut dyn FnMut(&mut State),
) -> Result<()> {
    status::ensure_runtime_dir(&cfg.runtime)?;
    let mut sess = Session::start(
        &cfg.program,
        s,
        "cat /dev/random",
        &cfg.runtime,
        cfg.connect_timeout / NS,
    )?;
    st.sessions += 1;
    let mut health = Health::new();
    let mut chunk = [0u8; CHUNK];
    let mut got = 0usize;
    let mut first = true;
    let legacy = kernel::info().legacy();
    let mut chunk_end = 0;
    loop {
        if pending_signal().is_some() || done() {
            chunk.fill(0);
            return Ok(());
        }
        if legacy && got == 0 && !first && kernel::info().entropy_avail >= cfg.low_water as i32 {
            // The pool is full enough: let the stream wait (SSH flow control
            // holds the server back) and look again shortly.
            clock::sleep_ns(NS / 2);
            continue;
        }
        let timeout = if first {
            cfg.connect_timeout
        } else {
            cfg.stall_timeout
        };
        // Minimum progress: each chunk within --session-timeout.
        if got == 0 {
            chunk_end = clock::now_ns().saturating_add(cfg.session_timeout);
        }
        let timeout = cut(timeout, chunk_end, clock::now_ns());
        match sess.read(&mut chunk[got..], timeout)? {
            Read::Data(n) => {
                first = false;
                got += n;
                st.bytes_received += n as u64;
                if got == CHUNK {
                    got = 0;
                    if let Err(f) = health.check(&chunk) {
                        st.health_failures += 1;
                        chunk.fill(0);
                        return Err(health_error(s, f));
                    }
                    let counted = pool.totals.bits_counted;
                    let r = pool.add(&chunk, cfg.bits_per_byte);
                    chunk.fill(0);
                    r?;
                    st.bits_credited += pool.totals.bits_counted - counted;
                    st.bytes_mixed += CHUNK as u64;
                    pool.reseed(clock::now_ns())?;
                    st.reseeds = pool.totals.reseeds;
                    #[allow(clippy::disallowed_methods)] // the wall clock, for a status time only
                    let wall = clock::wall_secs();
                    st.last_success = wall;
                    after_credit(st);
                }
            }
            end @ (Read::Eof | Read::Timeout) => {
                chunk.fill(0);
                if let Some(e) = ssh_failure(sess, s, first, end == Read::Eof) {
                    return Err(e);
                }
                let what = if end == Read::Eof {
                    " closed the stream; the last partial chunk was not credited"
                } else if clock::now_ns() >= chunk_end {
                    " sent less than 512 bytes within --session-timeout; session killed"
                } else {
                    " stalled; session killed"
                };
                return Err(Error::new(
                    Status::Unavailable,
                    msg(&["server ", &s.label(), what]),
                ));
            }
            Read::Interrupted => {}
        }
    }
}

/// A read's wait: `per_read`, cut to what is left until `end` (ns).
fn cut(per_read: u64, end: u64, now: u64) -> u64 {
    per_read.min(end.saturating_sub(now))
}

/// `ssh_failure`'s `eof`: the child closed its stdout (not a timeout).
const EOF: bool = true;

/// Ends a session that hit EOF or a timeout. If nothing came yet and the
/// SSH client said why (host key, auth, connection), that is the error. A
/// client that closed its output unasked, with nothing on stdout or stderr
/// and a failed exit, never reached the server (killed, or it died before
/// or right after exec): that is not the server's fault.
fn ssh_failure(sess: Session, s: &Server, nothing_yet: bool, eof: bool) -> Option<Error> {
    let (clean, err) = sess.finish();
    if !nothing_yet {
        return None;
    }
    if !err.trim().is_empty() {
        return Some(ssh::diagnose(s, &err));
    }
    (eof && !clean).then(|| {
        Error::new(
            Status::Unavailable,
            msg(&[
                "the SSH client for ",
                &s.label(),
                " failed before any output and without a message (killed, or it cannot run here); nothing credited",
            ]),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_deadline_cuts_every_wait() {
        // A fake clock: a server that sends a byte just before each stall
        // timeout gets shorter and shorter waits, then none.
        let s = NS;
        let end = 100 * s + 120 * s;
        assert_eq!(cut(60 * s, end, 100 * s), 60 * s);
        assert_eq!(cut(60 * s, end, 159 * s), 60 * s);
        assert_eq!(cut(60 * s, end, 218 * s), 2 * s);
        assert_eq!(cut(60 * s, end, 220 * s), 0);
        assert_eq!(cut(60 * s, end, 999 * s), 0);
    }
}
