//! One SSH session: `get N` fetched and tested whole before any credit
//! (top-up), or a stream credited in tested 512-byte chunks; the child is
//! killed and reaped on every way out. Written against [`World`] and
//! [`Link`] (an `embedded_io` reader with a readiness wait), so tests run
//! every deadline and credit decision on a fake clock.

use super::config::Config;
use super::world::{Link, World};
use super::MAX_GET;
use crate::error::{Error, Result, Status};
use crate::fd::{OsError, Ready as _, Wait, Want};
use crate::health::Health;
use crate::kernel::Pool;
use crate::rate::NS;
use crate::ssh::{self, Server};
use crate::status::State;
use crate::text::{msg, Num};
use embedded_io::Read as _;
use rustix::io::Errno;

/// Stream mode credits in chunks of this size, each tested in full first.
const CHUNK: usize = 512;

/// What one read from a session produced.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Data(usize),
    Eof,
    Timeout,
    /// A terminating signal arrived.
    Signal,
}

/// Reads what `link` has, waiting until `deadline` (ns) at most.
fn read_by<W: World>(w: &W, link: &mut W::Link, buf: &mut [u8], deadline: u64) -> Result<Got> {
    loop {
        match link.wait(Want::Read, deadline) {
            Wait::Ready | Wait::HungUp => match link.read(buf) {
                Ok(0) => return Ok(Got::Eof),
                Ok(n) => return Ok(Got::Data(n)),
                Err(OsError(Errno::INTR | Errno::AGAIN)) => {}
                Err(OsError(e)) => {
                    return Err(Error::os(
                        Status::Unavailable,
                        "reading from the SSH child failed",
                        e,
                    ))
                }
            },
            Wait::Timeout if w.now() >= deadline => return Ok(Got::Timeout),
            Wait::Timeout => {}
            Wait::Signal => return Ok(Got::Signal),
            Wait::Failed(e) => {
                return Err(Error::os(Status::Os, "poll on the SSH child failed", e))
            }
        }
        if w.signalled() {
            return Ok(Got::Signal);
        }
    }
}

/// Reads exactly `buf.len()` bytes from a new session running `command`.
fn fetch_exact<W: World>(
    cfg: &Config,
    w: &mut W,
    s: &Server,
    st: &mut State,
    command: &str,
    buf: &mut [u8],
) -> Result<()> {
    let mut link = w.connect(s, command)?;
    st.sessions += 1;
    let end = w.now().saturating_add(cfg.session_timeout);
    let mut got = 0;
    while got < buf.len() {
        let per_read = if got == 0 {
            cfg.connect_timeout
        } else {
            cfg.stall_timeout
        };
        let now = w.now();
        let deadline = now + cut(per_read, end, now);
        match read_by(w, &mut link, &mut buf[got..], deadline)? {
            Got::Data(n) => got += n,
            Got::Eof => {
                if let Some(e) = ssh_failure(link, s, got == 0, EOF) {
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
            Got::Timeout => {
                if let Some(e) = ssh_failure(link, s, got == 0, !EOF) {
                    return Err(e);
                }
                let what = if w.now() >= end {
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
            Got::Signal => {
                return Err(Error::new(Status::Unavailable, "interrupted by a signal"));
            }
        }
    }
    // A `get N` server exits by itself now: wait (one blocking poll, no
    // polling loop) for the child to close its stdout, then reap it. A
    // legacy `cat` server streams on; finish() kills it.
    let mut extra = [0u8; 64];
    let until = w.now().saturating_add(cfg.stall_timeout.min(2 * NS));
    let _ = read_by(w, &mut link, &mut extra, until);
    extra.fill(0);
    let _ = link.finish();
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
pub(super) fn topup_once<W: World>(
    cfg: &Config,
    w: &mut W,
    s: &Server,
    pool: &mut Pool<W::Device>,
    st: &mut State,
    n: usize,
) -> Result<(u64, bool)> {
    let mut buf = [0u8; MAX_GET];
    let n = n.min(MAX_GET);
    let cmd = msg(&["get ", Num::new(n as u64).as_str()]);
    let r = fetch_exact(cfg, w, s, st, &cmd, &mut buf[..n]);
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
    let reseeded = pool.reseed(w.now())?;
    st.reseeds = pool.totals.reseeds;
    Ok((credited, reseeded))
}

/// Streams from one server, crediting tested 512-byte chunks, until a
/// signal arrives, the session fails, or (`until_ready`) the CRNG is
/// ready. `after_credit` runs after each credited chunk, with the time
/// (the seed schedule, the status file).
pub(super) fn stream_session<W: World>(
    cfg: &Config,
    w: &mut W,
    s: &Server,
    pool: &mut Pool<W::Device>,
    st: &mut State,
    until_ready: bool,
    after_credit: &mut dyn FnMut(&mut State, u64),
) -> Result<()> {
    let mut link = w.connect(s, "cat /dev/random")?;
    st.sessions += 1;
    let mut health = Health::new();
    let mut chunk = [0u8; CHUNK];
    let mut got = 0usize;
    let mut first = true;
    let legacy = w.legacy();
    let mut chunk_end = 0;
    loop {
        if w.signalled() || (until_ready && w.crng_ready()) {
            chunk.fill(0);
            return Ok(());
        }
        if legacy && got == 0 && !first && w.pool_full() {
            // The pool is full enough: let the stream wait (SSH flow control
            // holds the server back) and look again shortly.
            w.pause(NS / 2);
            continue;
        }
        let per_read = if first {
            cfg.connect_timeout
        } else {
            cfg.stall_timeout
        };
        let now = w.now();
        // Minimum progress: each chunk within --session-timeout.
        if got == 0 {
            chunk_end = now.saturating_add(cfg.session_timeout);
        }
        let deadline = now + cut(per_read, chunk_end, now);
        match read_by(w, &mut link, &mut chunk[got..], deadline)? {
            Got::Data(n) => {
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
                    let now = w.now();
                    pool.reseed(now)?;
                    st.reseeds = pool.totals.reseeds;
                    #[allow(clippy::disallowed_methods)] // the wall clock, for a status time only
                    let wall = crate::clock::wall_secs();
                    st.last_success = wall;
                    after_credit(st, now);
                }
            }
            end @ (Got::Eof | Got::Timeout) => {
                chunk.fill(0);
                if let Some(e) = ssh_failure(link, s, first, end == Got::Eof) {
                    return Err(e);
                }
                let what = if end == Got::Eof {
                    " closed the stream; the last partial chunk was not credited"
                } else if w.now() >= chunk_end {
                    " sent less than 512 bytes within --session-timeout; session killed"
                } else {
                    " stalled; session killed"
                };
                return Err(Error::new(
                    Status::Unavailable,
                    msg(&["server ", &s.label(), what]),
                ));
            }
            Got::Signal => {}
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
fn ssh_failure(link: impl Link, s: &Server, nothing_yet: bool, eof: bool) -> Option<Error> {
    let (clean, err) = link.finish();
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
pub(super) mod tests {
    use super::super::config::for_tests;
    use super::super::world::fake::{Answer, FakeWorld, Time};
    use super::*;
    use crate::kernel::fake::FakeRandom;

    /// Deterministic bytes that pass the health tests (splitmix64).
    pub(in crate::client) fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            v.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        v.truncate(n);
        v
    }

    pub(in crate::client) fn fake_pool() -> Pool<FakeRandom> {
        Pool::on(FakeRandom::default(), 60 * NS)
    }

    /// Bits the fake kernel was given with RNDADDENTROPY, and bytes mixed
    /// without credit.
    pub(in crate::client) fn reached(p: &Pool<FakeRandom>) -> (u64, usize) {
        let d = p.device();
        (
            d.credited.iter().map(|&(_, b)| b as u64).sum(),
            d.written.iter().sum(),
        )
    }

    const T0: u64 = 5_000 * NS;

    /// One `get 64` against one scripted session: the result, the world
    /// after it, the pool, the state.
    fn topup(t: &Time, a: Answer) -> (Result<(u64, bool)>, FakeWorld<'_>, Pool<FakeRandom>, State) {
        let cfg = for_tests("/nonexistent");
        let mut w = FakeWorld::new(t, [a]);
        let mut pool = fake_pool();
        let mut st = State::default();
        let r = topup_once(&cfg, &mut w, &cfg.servers[0], &mut pool, &mut st, 64);
        (r, w, pool, st)
    }

    #[test]
    fn a_topup_credits_all_n_bytes_once_they_all_came_and_passed() {
        let t = Time::at(T0);
        // 64 bytes in pieces of 7, 5 s apart.
        let (r, w, pool, st) = topup(&t, Answer::sends(&noise(64, 1), 7, 5 * NS));
        assert_eq!(r.unwrap(), (128, true));
        assert_eq!(reached(&pool), (128, 0));
        assert_eq!(pool.device().credited, vec![(64, 128)]);
        assert_eq!(pool.device().reseed_calls, 1);
        assert_eq!(
            (st.sessions, st.bytes_received, st.bytes_mixed),
            (1, 64, 64)
        );
        assert_eq!(
            w.connects,
            vec![("root@a.example:22".into(), "get 64".into(), T0)]
        );
        // Ten pieces, nine gaps; then EOF at once: no wait for the child.
        assert_eq!(t.now(), T0 + 45 * NS);
        assert_eq!(t.ended.get(), 1, "the child was reaped");
    }

    #[test]
    fn a_short_topup_credits_nothing() {
        let t = Time::at(T0);
        let (r, _, pool, st) = topup(&t, Answer::sends(&noise(63, 2), 63, 0));
        let e = r.unwrap_err();
        assert_eq!(e.status, Status::Data);
        assert_eq!(
            e.msg,
            "server root@a.example:22 sent 63 of 64 bytes; nothing credited"
        );
        assert_eq!(reached(&pool), (0, 0));
        assert_eq!((st.bytes_received, st.bytes_mixed), (0, 0));
        assert_eq!(t.ended.get(), 1);
    }

    #[test]
    fn a_topup_that_fails_the_health_tests_credits_nothing() {
        let t = Time::at(T0);
        let (r, _, pool, st) = topup(&t, Answer::sends(&[0u8; 64], 64, 0));
        let e = r.unwrap_err();
        assert_eq!(e.status, Status::Data);
        assert!(e.msg.contains("failed the health tests"), "{}", e.msg);
        assert!(e.msg.ends_with("; nothing credited"), "{}", e.msg);
        assert_eq!(reached(&pool), (0, 0));
        assert_eq!(st.health_failures, 1);
    }

    /// A silent server is given up at the connect timeout; one that stops
    /// sending at the stall timeout; one that trickles a byte every 59 s
    /// (never a stall) at the 2 min session timeout. Each credits nothing
    /// and leaves no child.
    #[test]
    fn topup_deadlines() {
        let cases = [
            (
                Answer::sends_then_hangs(&[], 1, 0),
                " sent nothing within the connect timeout",
                30,
            ),
            // Three pieces 10 s apart, then 60 s of nothing.
            (
                Answer::sends_then_hangs(&noise(30, 3), 10, 10 * NS),
                " stalled; session killed",
                20 + 60,
            ),
            // The third byte comes at 118 s, the fourth would at 177 s.
            (
                Answer::sends(&noise(64, 4), 1, 59 * NS),
                " did not finish within --session-timeout; session killed",
                120,
            ),
        ];
        for (answer, what, secs) in cases {
            let t = Time::at(T0);
            let (r, _, pool, _) = topup(&t, answer);
            let e = r.unwrap_err();
            assert_eq!(e.status, Status::Unavailable);
            assert_eq!(
                e.msg,
                msg(&["server root@a.example:22", what, "; nothing credited"])
            );
            assert_eq!(t.now(), T0 + secs * NS, "{what}");
            assert_eq!(reached(&pool), (0, 0));
            assert_eq!(t.ended.get(), 1);
        }
    }

    #[test]
    fn a_signal_ends_a_topup_without_credit() {
        let t = Time::at(T0);
        t.signal_at.set(T0 + 7 * NS);
        let (r, _, pool, _) = topup(&t, Answer::sends(&noise(64, 5), 16, 5 * NS));
        assert_eq!(r.unwrap_err().msg, "interrupted by a signal");
        assert_eq!(t.now(), T0 + 7 * NS);
        assert_eq!(reached(&pool), (0, 0));
        assert_eq!(t.ended.get(), 1);
    }

    #[test]
    fn what_the_ssh_client_said_is_the_error_when_nothing_came() {
        let died = |stderr| {
            let t = Time::at(T0);
            let answer = Answer::Session {
                steps: vec![],
                clean: false,
                stderr,
            };
            topup(&t, answer).0.unwrap_err()
        };
        let e = died("dbclient: Connection to root@a.example:22 exited: Connect failed: Connection refused\n");
        assert_eq!(e.status, Status::Unavailable);
        assert!(e.msg.contains("Connection refused"), "{}", e.msg);
        // Killed or unable to run, and silent: not the server's fault.
        let e = died("");
        assert_eq!(e.status, Status::Unavailable);
        assert!(
            e.msg
                .contains("failed before any output and without a message"),
            "{}",
            e.msg
        );
    }

    /// A stream for `until_ready` or until the script or a signal ends it:
    /// the result, the world, the pool, the state and the times of the
    /// credited chunks.
    fn stream(
        t: &Time,
        a: Answer,
        setup: impl FnOnce(&mut FakeWorld<'_>),
        until_ready: bool,
    ) -> (Result<()>, Pool<FakeRandom>, State, Vec<u64>, u32) {
        let cfg = for_tests("/nonexistent");
        let mut w = FakeWorld::new(t, [a]);
        setup(&mut w);
        let mut pool = fake_pool();
        let mut st = State::default();
        let mut times = Vec::new();
        let r = stream_session(
            &cfg,
            &mut w,
            &cfg.servers[0],
            &mut pool,
            &mut st,
            until_ready,
            &mut |_, now| times.push(now),
        );
        (r, pool, st, times, w.pauses)
    }

    #[test]
    fn a_stream_credits_whole_tested_chunks_only() {
        let t = Time::at(T0);
        // Two chunks and 100 bytes, in pieces of 300 bytes a second.
        let (r, pool, st, times, _) =
            stream(&t, Answer::sends(&noise(1124, 6), 300, NS), |_| {}, false);
        let e = r.unwrap_err();
        assert_eq!(
            e.msg,
            "server root@a.example:22 closed the stream; the last partial chunk was not credited"
        );
        assert_eq!(pool.device().credited, vec![(512, 1024), (512, 1024)]);
        assert_eq!((st.bytes_received, st.bytes_mixed), (1124, 1024));
        // The first chunk is whole with the second piece (1 s), the
        // second with the fourth (3 s).
        assert_eq!(times, vec![T0 + NS, T0 + 3 * NS]);
        assert_eq!(t.ended.get(), 1);
    }

    #[test]
    fn a_stream_chunk_that_fails_the_health_tests_ends_the_session() {
        let t = Time::at(T0);
        let mut bytes = noise(512, 7);
        bytes.extend_from_slice(&[0u8; 512]);
        let (r, pool, st, _, _) = stream(&t, Answer::sends(&bytes, 512, 0), |_| {}, false);
        assert!(r.unwrap_err().msg.contains("failed the health tests"));
        assert_eq!(pool.device().credited, vec![(512, 1024)]);
        assert_eq!(st.health_failures, 1);
    }

    #[test]
    fn each_stream_chunk_must_come_within_the_session_timeout() {
        // 100 bytes every 50 s: no stall, but a chunk takes 250 s.
        let t = Time::at(T0);
        let (r, pool, _, _, _) = stream(
            &t,
            Answer::sends(&noise(1024, 8), 100, 50 * NS),
            |_| {},
            false,
        );
        assert_eq!(
            r.unwrap_err().msg,
            "server root@a.example:22 sent less than 512 bytes within --session-timeout; session killed"
        );
        assert_eq!(t.now(), T0 + 120 * NS);
        assert_eq!(reached(&pool), (0, 0));
    }

    #[test]
    fn a_signal_ends_a_stream_cleanly_after_its_credited_chunks() {
        let t = Time::at(T0);
        t.signal_at.set(T0 + 10 * NS + 1);
        let (r, pool, _, times, _) = stream(
            &t,
            Answer::sends_then_hangs(&noise(8 * 512, 9), 512, 2 * NS),
            |_| {},
            false,
        );
        assert!(r.is_ok());
        assert_eq!(times.len(), 6, "chunks at 0, 2, .. 10 s");
        assert_eq!(reached(&pool), (6 * 1024, 0));
        assert_eq!(t.now(), T0 + 10 * NS + 1);
        assert_eq!(t.ended.get(), 1);
    }

    #[test]
    fn a_seeding_stream_stops_once_the_crng_is_ready() {
        let t = Time::at(T0);
        let (r, pool, _, times, _) = stream(
            &t,
            Answer::sends_then_hangs(&noise(8 * 512, 10), 512, NS),
            |w| w.ready_at = T0 + 3 * NS + 1,
            true,
        );
        assert!(r.is_ok());
        assert_eq!(times.len(), 5, "chunks at 0, 1, 2, 3 and 4 s");
        assert_eq!(reached(&pool).0, 5 * 1024);
        assert_eq!(t.ended.get(), 1);
    }

    #[test]
    fn on_an_old_kernel_a_full_pool_holds_the_stream_back() {
        let t = Time::at(T0);
        t.signal_at.set(T0 + 50 * NS);
        let (r, pool, _, times, pauses) = stream(
            &t,
            Answer::sends_then_hangs(&noise(4 * 512, 11), 512, 0),
            |w| {
                w.legacy = true;
                w.full_until = T0 + 20 * NS;
            },
            false,
        );
        assert!(r.is_ok());
        // The first chunk is read; then nothing until the pool drains at
        // 20 s (a look every half second), and no stall is blamed for it.
        assert_eq!(times[0], T0);
        assert_eq!(times[1], T0 + 20 * NS);
        assert_eq!(pauses, 40);
        assert_eq!(reached(&pool).0, 4 * 1024);
    }

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
