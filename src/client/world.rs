//! What the client's stages need of the world around them, as one trait:
//! SSH sessions, the monotonic clock, the kernel's state, pauses, signals
//! and jitter. [`Real`] is the program's. Tests drive the same session and
//! daemon code with [`fake::FakeWorld`]: a scripted server per session and
//! a fake clock that moves only when a stage waits, so deadlines, back-off
//! and credit decisions are exact and take milliseconds.

use super::config::Config;
use crate::clock;
use crate::fd::Input;
use crate::kernel::{self, Pool, RandomDevice};
use crate::log;
use crate::rate::NS;
use crate::seed::SeedDir;
use crate::ssh::{Server, Session};
use crate::status;
use crate::sys::pending_signal;
use crate::text::Num;
use std::fs::File;

/// An SSH session as the stages use it: the child's stdout as an
/// `embedded_io` reader with a readiness wait (end of stream: a read of 0).
pub(super) trait Link: Input {
    /// Kills the child if it still runs and reaps it: whether it exited 0
    /// by itself, and what it said on stderr.
    fn finish(self) -> (bool, String);
}

impl Link for Session {
    fn finish(self) -> (bool, String) {
        Session::finish(self)
    }
}

pub(super) trait World {
    type Link: Link;
    type Device: RandomDevice;
    /// Monotonic nanoseconds.
    fn now(&self) -> u64;
    /// Starts an SSH session that runs `command` on `s`.
    fn connect(&mut self, s: &Server, command: &str) -> crate::error::Result<Self::Link>;
    /// A terminating signal (SIGTERM, SIGINT, SIGHUP) arrived.
    fn signalled(&self) -> bool;
    fn crng_ready(&mut self) -> bool;
    /// A kernel before 5.18 (a 4096-bit pool): it counts credits at any time.
    fn legacy(&mut self) -> bool;
    /// On such a kernel: its pool holds at least --low-water bits.
    fn pool_full(&mut self) -> bool;
    /// A short wait while a stream holds back (a signal ends it early).
    fn pause(&mut self, ns: u64);
    /// The wait between fetches: `ns` unless a terminating signal arrives
    /// (false). After a failure (`failing`), SIGUSR1 ends it at once (true):
    /// the network came up. A working client ignores SIGUSR1.
    fn idle(&mut self, ns: u64, failing: bool) -> bool;
    /// A random u32 for jitter.
    fn jitter(&mut self) -> u32;
    /// At boot, with the CRNG not ready: the seed file into the pool.
    fn load_seed(&mut self, pool: &mut Pool<Self::Device>);
}

/// The program's world: dbclient or ssh children, the kernel, signals.
pub(super) struct Real<'a> {
    pub(super) cfg: &'a Config,
}

impl World for Real<'_> {
    type Link = Session;
    type Device = File;

    fn now(&self) -> u64 {
        clock::now_ns()
    }

    fn connect(&mut self, s: &Server, command: &str) -> crate::error::Result<Session> {
        let cfg = self.cfg;
        status::ensure_runtime_dir(&cfg.runtime)?;
        Session::start(
            &cfg.program,
            s,
            command,
            &cfg.runtime,
            cfg.connect_timeout / NS,
        )
    }

    fn signalled(&self) -> bool {
        pending_signal().is_some()
    }

    fn crng_ready(&mut self) -> bool {
        kernel::crng_ready()
    }

    fn legacy(&mut self) -> bool {
        kernel::info().legacy()
    }

    fn pool_full(&mut self) -> bool {
        kernel::info().entropy_avail >= self.cfg.low_water as i32
    }

    fn pause(&mut self, ns: u64) {
        clock::sleep_ns(ns);
    }

    fn idle(&mut self, ns: u64, failing: bool) -> bool {
        clock::sleep_unless(ns, || {
            // Taken either way: a working client drops it.
            let retry = crate::sys::take_retry() && failing;
            if retry {
                log::info("trying again now (SIGUSR1: the network came up)");
            }
            retry
        })
    }

    fn jitter(&mut self) -> u32 {
        clock::jitter()
    }

    fn load_seed(&mut self, pool: &mut Pool) {
        // Safe whoever loaded before: see the seed module's notes.
        match SeedDir::open(&self.cfg.seed_dir).and_then(|d| d.load(pool)) {
            Ok(l) => log::info_parts(&[
                "CRNG not ready: loaded ",
                Num::new(l.bytes as u64).as_str(),
                " seed bytes, credited ",
                Num::new(l.bits_credited).as_str(),
                " bits",
            ]),
            Err(e) => log::warn(&e.msg),
        }
    }
}

/// A scripted world for in-process tests.
#[cfg(test)]
pub(super) mod fake {
    use super::{Link, World};
    use crate::clock::{Clock, Fake};
    use crate::error::{Error, Result, Status};
    use crate::fd::{OsError, Ready, Wait, Want};
    use crate::kernel::fake::FakeRandom;
    use crate::kernel::Pool;
    use crate::ssh::Server;
    use core::cell::Cell;
    use rustix::io::Errno;
    use std::collections::VecDeque;

    /// One step of a scripted server session. After the last step the
    /// stream ends (EOF).
    #[derive(Clone, Debug)]
    pub enum Step {
        /// These bytes are there to read.
        Send(Vec<u8>),
        /// Nothing for this long.
        Quiet(u64),
        /// Nothing, ever.
        Hang,
    }

    /// What one `connect` gives.
    pub enum Answer {
        /// A session that runs these steps, then exits (0 if `clean`)
        /// after saying `stderr`.
        Session {
            steps: Vec<Step>,
            clean: bool,
            stderr: &'static str,
        },
        /// The session cannot start.
        Fails(Status, &'static str),
    }

    impl Answer {
        /// A clean session that sends `bytes` in pieces of `piece` bytes,
        /// `gap` ns apart.
        pub fn sends(bytes: &[u8], piece: usize, gap: u64) -> Answer {
            let mut steps = Vec::new();
            for p in bytes.chunks(piece) {
                if gap > 0 && !steps.is_empty() {
                    steps.push(Step::Quiet(gap));
                }
                steps.push(Step::Send(p.to_vec()));
            }
            Answer::Session {
                steps,
                clean: true,
                stderr: "",
            }
        }

        /// `sends`, then silence for good.
        pub fn sends_then_hangs(bytes: &[u8], piece: usize, gap: u64) -> Answer {
            let mut a = Answer::sends(bytes, piece, gap);
            if let Answer::Session { steps, .. } = &mut a {
                steps.push(Step::Hang);
            }
            a
        }
    }

    /// The fake clock and the signals, shared by the world and its links.
    pub struct Time {
        pub clock: Fake,
        /// When a terminating signal arrives (u64::MAX: never).
        pub signal_at: Cell<u64>,
        /// When SIGUSR1 arrives (u64::MAX: never).
        pub usr1_at: Cell<u64>,
        /// Sessions ended (their child reaped).
        pub ended: Cell<u32>,
    }

    impl Time {
        pub fn at(ns: u64) -> Time {
            Time {
                clock: Fake::at(ns),
                signal_at: Cell::new(u64::MAX),
                usr1_at: Cell::new(u64::MAX),
                ended: Cell::new(0),
            }
        }
        pub fn now(&self) -> u64 {
            self.clock.now()
        }
    }

    pub struct FakeLink<'t> {
        t: &'t Time,
        steps: VecDeque<Step>,
        clean: bool,
        stderr: &'static str,
    }

    impl Drop for FakeLink<'_> {
        fn drop(&mut self) {
            self.t.ended.set(self.t.ended.get() + 1);
        }
    }

    impl embedded_io::ErrorType for FakeLink<'_> {
        type Error = OsError;
    }

    impl embedded_io::Read for FakeLink<'_> {
        fn read(&mut self, buf: &mut [u8]) -> core::result::Result<usize, OsError> {
            match self.steps.front_mut() {
                None => Ok(0),
                Some(Step::Send(v)) => {
                    let n = v.len().min(buf.len());
                    buf[..n].copy_from_slice(&v[..n]);
                    v.drain(..n);
                    if v.is_empty() {
                        self.steps.pop_front();
                    }
                    Ok(n)
                }
                Some(_) => Err(OsError(Errno::AGAIN)),
            }
        }
    }

    impl Ready for FakeLink<'_> {
        /// Moves the clock to the next step, the deadline or the signal,
        /// whichever comes first.
        fn wait(&mut self, _want: Want, deadline: u64) -> Wait {
            loop {
                let now = self.t.now();
                let wake = match self.steps.front() {
                    None | Some(Step::Send(_)) => return Wait::Ready,
                    Some(Step::Quiet(ns)) => now.saturating_add(*ns),
                    Some(Step::Hang) => u64::MAX,
                };
                let sig = self.t.signal_at.get();
                let stop = wake.min(deadline).min(sig).max(now);
                self.t.clock.set(stop);
                if stop >= wake {
                    self.steps.pop_front();
                    continue;
                }
                if let Some(Step::Quiet(ns)) = self.steps.front_mut() {
                    *ns = wake - stop;
                }
                return if stop >= sig {
                    Wait::Signal
                } else {
                    Wait::Timeout
                };
            }
        }
    }

    impl Link for FakeLink<'_> {
        fn finish(self) -> (bool, String) {
            (self.clean, self.stderr.into())
        }
    }

    pub struct FakeWorld<'t> {
        pub t: &'t Time,
        /// What each `connect` gives, in order; none left: it fails.
        pub answers: VecDeque<Answer>,
        /// Each connect: the server, the command and when.
        pub connects: Vec<(String, String, u64)>,
        /// The CRNG is ready from then on.
        pub ready_at: u64,
        pub legacy: bool,
        /// An old kernel's pool is full until then.
        pub full_until: u64,
        /// Each idle wait asked for, and whether it ended early by SIGUSR1.
        pub idles: Vec<(u64, bool)>,
        pub pauses: u32,
        pub seed_loads: u32,
        pub jitter: u32,
    }

    impl<'t> FakeWorld<'t> {
        pub fn new(t: &'t Time, answers: impl IntoIterator<Item = Answer>) -> FakeWorld<'t> {
            FakeWorld {
                t,
                answers: answers.into_iter().collect(),
                connects: Vec::new(),
                ready_at: 0,
                legacy: false,
                full_until: 0,
                idles: Vec::new(),
                pauses: 0,
                seed_loads: 0,
                // The top of the jitter range: each back-off delay is
                // exactly its undithered value, each top-up interval
                // exactly 110% of --interval.
                jitter: u32::MAX,
            }
        }
    }

    impl<'t> World for FakeWorld<'t> {
        type Link = FakeLink<'t>;
        type Device = FakeRandom;

        fn now(&self) -> u64 {
            self.t.now()
        }

        fn connect(&mut self, s: &Server, command: &str) -> Result<FakeLink<'t>> {
            self.connects
                .push((s.label(), command.into(), self.t.now()));
            match self.answers.pop_front() {
                Some(Answer::Session {
                    steps,
                    clean,
                    stderr,
                }) => Ok(FakeLink {
                    t: self.t,
                    steps: steps.into(),
                    clean,
                    stderr,
                }),
                Some(Answer::Fails(status, why)) => Err(Error::new(status, why)),
                None => Err(Error::new(Status::Unavailable, "connection refused")),
            }
        }

        fn signalled(&self) -> bool {
            self.t.now() >= self.t.signal_at.get()
        }

        fn crng_ready(&mut self) -> bool {
            self.t.now() >= self.ready_at
        }

        fn legacy(&mut self) -> bool {
            self.legacy
        }

        fn pool_full(&mut self) -> bool {
            self.t.now() < self.full_until
        }

        fn pause(&mut self, ns: u64) {
            self.pauses += 1;
            let now = self.t.now();
            let stop = now.saturating_add(ns).min(self.t.signal_at.get()).max(now);
            self.t.clock.set(stop);
        }

        fn idle(&mut self, ns: u64, failing: bool) -> bool {
            let now = self.t.now();
            let end = now.saturating_add(ns);
            let sig = self.t.signal_at.get();
            let usr1 = self.t.usr1_at.get();
            if usr1 < end && usr1 < sig {
                // Taken either way: a working client drops it.
                self.t.usr1_at.set(u64::MAX);
                if failing {
                    self.t.clock.set(usr1.max(now));
                    self.idles.push((ns, true));
                    return true;
                }
            }
            self.idles.push((ns, false));
            if sig <= end {
                self.t.clock.set(sig.max(now));
                return false;
            }
            self.t.clock.set(end);
            true
        }

        fn jitter(&mut self) -> u32 {
            self.jitter
        }

        fn load_seed(&mut self, _pool: &mut Pool<FakeRandom>) {
            self.seed_loads += 1;
        }
    }
}
