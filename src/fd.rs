//! File descriptors as `embedded_io` streams, and the readiness wait the
//! streaming stages block in.
//!
//! The stages (server output, source device, sink input) are written
//! against `embedded_io::{Read, Write}` plus [`Ready`], so the same loop
//! runs on a real descriptor here and on a fake with a fake clock in
//! tests. Descriptors are used as the kernel gives them: a non-blocking
//! one answers EAGAIN (kept as the `Errno`), and the stage then waits in
//! [`Ready::wait`] (poll(2)) until a deadline, never in read or write.

use crate::clock;
use crate::sys::poll;
use embedded_io::ErrorKind;
use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::io::Errno;

/// An OS error from a descriptor stage: the kernel's errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OsError(pub Errno);

impl core::fmt::Display for OsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

impl core::error::Error for OsError {}

impl embedded_io::Error for OsError {
    fn kind(&self) -> ErrorKind {
        match self.0 {
            Errno::PIPE => ErrorKind::BrokenPipe,
            Errno::INTR => ErrorKind::Interrupted,
            Errno::TIMEDOUT => ErrorKind::TimedOut,
            Errno::PERM | Errno::ACCESS => ErrorKind::PermissionDenied,
            Errno::NOENT => ErrorKind::NotFound,
            Errno::EXIST => ErrorKind::AlreadyExists,
            Errno::INVAL => ErrorKind::InvalidInput,
            Errno::CONNRESET => ErrorKind::ConnectionReset,
            Errno::CONNREFUSED => ErrorKind::ConnectionRefused,
            Errno::NOTCONN => ErrorKind::NotConnected,
            Errno::NOMEM => ErrorKind::OutOfMemory,
            Errno::NOSYS | Errno::NOTTY | Errno::OPNOTSUPP => ErrorKind::Unsupported,
            // EAGAIN has no kind of its own (embedded-io streams block);
            // callers that use non-blocking descriptors match the errno.
            _ => ErrorKind::Other,
        }
    }
}

/// A descriptor (owned like a `File`, or borrowed like stdout) as an
/// unbuffered `embedded_io` stream.
pub struct Fd<T>(pub T);

impl<T> embedded_io::ErrorType for Fd<T> {
    type Error = OsError;
}

impl<T: AsFd> embedded_io::Read for Fd<T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, OsError> {
        rustix::io::read(self.0.as_fd(), buf).map_err(OsError)
    }
}

impl<T: AsFd> embedded_io::Write for Fd<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, OsError> {
        rustix::io::write(self.0.as_fd(), buf).map_err(OsError)
    }

    fn flush(&mut self) -> Result<(), OsError> {
        Ok(())
    }
}

/// What a stage waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Bytes to read (or end of file).
    Read,
    /// Room to write.
    Write,
    /// Nothing but the deadline: a pause that ends early when the far
    /// end hangs up.
    HangUp,
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Ready, or the wait ended early for no reason: try again.
    Ready,
    /// The deadline passed first.
    Timeout,
    /// The far end hung up (a reader of our output went away).
    HungUp,
    /// A terminating signal arrived.
    Signal,
    /// The wait itself failed.
    Failed(Errno),
}

/// Waiting for a stage to be able to make progress, up to a deadline on
/// the monotonic clock (ns). Fakes move a fake clock instead.
pub trait Ready {
    fn wait(&mut self, want: Want, deadline: u64) -> Wait;
}

impl<T: AsFd> Ready for Fd<T> {
    fn wait(&mut self, want: Want, deadline: u64) -> Wait {
        wait_fd(self.0.as_fd(), want, deadline)
    }
}

/// A readable stage: the source device, the sink's stdin.
pub trait Input: embedded_io::Read<Error = OsError> + Ready {}
impl<T: embedded_io::Read<Error = OsError> + Ready + ?Sized> Input for T {}

/// A writable stage: the server's stdout.
pub trait Output: embedded_io::Write<Error = OsError> + Ready {}
impl<T: embedded_io::Write<Error = OsError> + Ready + ?Sized> Output for T {}

/// A span of `ns` nanoseconds as a poll timeout.
pub fn timespec(ns: u64) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    }
}

/// poll(2) on one descriptor until `deadline`.
fn wait_fd(fd: BorrowedFd<'_>, want: Want, deadline: u64) -> Wait {
    poll_for(
        fd,
        want,
        &timespec(deadline.saturating_sub(clock::now_ns())),
    )
}

/// poll(2) on one descriptor for at most `ts`.
pub fn poll_for(fd: BorrowedFd<'_>, want: Want, ts: &rustix::time::Timespec) -> Wait {
    let (events, gone) = match want {
        Want::Read => (PollFlags::IN, PollFlags::empty()),
        Want::Write => (PollFlags::OUT, PollFlags::ERR | PollFlags::HUP),
        Want::HangUp => (
            PollFlags::empty(),
            PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL,
        ),
    };
    let mut fds = [PollFd::new(&fd, events)];
    match poll(&mut fds, Some(ts)) {
        Ok(0) => Wait::Timeout,
        Ok(_) if fds[0].revents().intersects(gone) => Wait::HungUp,
        Ok(_) => Wait::Ready,
        Err(Errno::INTR) if want != Want::Read && crate::sys::pending_signal().is_some() => {
            Wait::Signal
        }
        Err(Errno::INTR) => Wait::Ready,
        Err(e) => Wait::Failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_io::{Error as _, Read as _, Write as _};

    #[test]
    fn errno_kinds() {
        assert_eq!(OsError(Errno::PIPE).kind(), ErrorKind::BrokenPipe);
        assert_eq!(OsError(Errno::INTR).kind(), ErrorKind::Interrupted);
        assert_eq!(OsError(Errno::PERM).kind(), ErrorKind::PermissionDenied);
        assert_eq!(OsError(Errno::NOTTY).kind(), ErrorKind::Unsupported);
        assert_eq!(OsError(Errno::AGAIN).kind(), ErrorKind::Other);
    }

    /// The real descriptor stage over a pipe: bytes through, EAGAIN kept,
    /// readiness and hang-up seen by poll, a deadline in the past is a
    /// timeout at once.
    #[test]
    fn a_pipe_as_a_stage() {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap();
        let (mut r, mut w) = (Fd(r), Fd(w));
        let now = clock::now_ns();
        assert_eq!(r.wait(Want::Read, now), Wait::Timeout);
        assert_eq!(r.read(&mut [0u8; 4]), Err(OsError(Errno::AGAIN)));
        assert_eq!(w.wait(Want::Write, now), Wait::Ready);
        assert_eq!(w.write(b"abc"), Ok(3));
        assert_eq!(r.wait(Want::Read, now), Wait::Ready);
        let mut b = [0u8; 4];
        assert_eq!(r.read(&mut b), Ok(3));
        assert_eq!(&b[..3], b"abc");
        assert_eq!(w.wait(Want::HangUp, now), Wait::Timeout);
        drop(r);
        assert_eq!(w.wait(Want::HangUp, now + 1_000_000_000), Wait::HungUp);
        assert_eq!(w.wait(Want::Write, now + 1_000_000_000), Wait::HungUp);
        assert_eq!(w.write(b"x"), Err(OsError(Errno::PIPE)));
    }
}

/// Fake stages on a fake clock, for the in-process tests of the stages.
#[cfg(test)]
pub mod fake {
    use super::{OsError, Ready, Wait, Want};
    use crate::clock::Fake as Clock;
    use rustix::io::Errno;

    /// A client reading the server's output: it takes `room` bytes, then
    /// blocks (EAGAIN) until its reader drains `refill.1` more bytes every
    /// `refill.0` ns of waiting; it hangs up at `hang_up_at`. Every write
    /// is logged with its time.
    pub struct Pipe<'c> {
        pub clock: &'c Clock,
        pub room: usize,
        pub refill: Option<(u64, usize)>,
        pub hang_up_at: u64,
        pub writes: Vec<(u64, usize)>,
        pub waits: Vec<(Want, u64)>,
    }

    impl<'c> Pipe<'c> {
        /// A reader that keeps up with anything.
        pub fn open(clock: &'c Clock) -> Self {
            Pipe {
                clock,
                room: usize::MAX,
                refill: None,
                hang_up_at: u64::MAX,
                writes: Vec::new(),
                waits: Vec::new(),
            }
        }

        /// A reader that took `room` bytes and stopped reading.
        pub fn stopped(clock: &'c Clock, room: usize) -> Self {
            Pipe {
                room,
                ..Pipe::open(clock)
            }
        }

        /// Bytes written in [from, to).
        pub fn bytes_between(&self, from: u64, to: u64) -> u64 {
            self.writes
                .iter()
                .filter(|(t, _)| (from..to).contains(t))
                .map(|(_, n)| *n as u64)
                .sum()
        }

        pub fn total(&self) -> u64 {
            self.writes.iter().map(|(_, n)| *n as u64).sum()
        }
    }

    impl embedded_io::ErrorType for Pipe<'_> {
        type Error = OsError;
    }

    impl embedded_io::Write for Pipe<'_> {
        fn write(&mut self, buf: &[u8]) -> Result<usize, OsError> {
            if self.clock.0.get() >= self.hang_up_at {
                return Err(OsError(Errno::PIPE));
            }
            if self.room == 0 {
                return Err(OsError(Errno::AGAIN));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.writes.push((self.clock.0.get(), n));
            Ok(n)
        }

        fn flush(&mut self) -> Result<(), OsError> {
            Ok(())
        }
    }

    impl Ready for Pipe<'_> {
        fn wait(&mut self, want: Want, deadline: u64) -> Wait {
            self.waits.push((want, deadline));
            let now = self.clock.0.get();
            let deadline = deadline.max(now);
            if self.hang_up_at <= deadline {
                self.clock.set(self.hang_up_at.max(now));
                return Wait::HungUp;
            }
            match (want, self.refill) {
                (Want::Write, Some((every, n))) if now + every <= deadline => {
                    self.clock.set(now + every);
                    self.room += n;
                    Wait::Ready
                }
                (Want::Write, None) if self.room > 0 => Wait::Ready,
                _ => {
                    self.clock.set(deadline);
                    Wait::Timeout
                }
            }
        }
    }

    /// A reader of a device or of stdin that trickles: of `data`, `ready`
    /// bytes are there from the start and `per` more arrive every `every`
    /// ns of the clock. After `data` it gives `end`: end of file (None) or
    /// an error.
    pub struct Trickle<'c> {
        pub clock: &'c Clock,
        pub data: Vec<u8>,
        pub pos: usize,
        pub t0: u64,
        pub ready: usize,
        pub every: u64,
        pub per: usize,
        pub end: Option<Errno>,
    }

    impl<'c> Trickle<'c> {
        pub fn new(clock: &'c Clock, data: Vec<u8>, every: u64, per: usize) -> Self {
            Trickle {
                t0: clock.0.get(),
                clock,
                data,
                pos: 0,
                ready: 0,
                every,
                per,
                end: None,
            }
        }

        /// All of `data` at once, then end of file.
        pub fn all(clock: &'c Clock, data: Vec<u8>) -> Self {
            let ready = data.len();
            Trickle {
                ready,
                ..Trickle::new(clock, data, u64::MAX, 0)
            }
        }

        fn arrivals(&self, now: u64) -> u64 {
            now.saturating_sub(self.t0) / self.every.max(1)
        }

        fn available(&self, now: u64) -> usize {
            let k = self.arrivals(now).saturating_mul(self.per as u64);
            (self.ready as u64)
                .saturating_add(k)
                .min(self.data.len() as u64) as usize
        }
    }

    impl embedded_io::ErrorType for Trickle<'_> {
        type Error = OsError;
    }

    impl embedded_io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, OsError> {
            if self.pos == self.data.len() {
                return match self.end {
                    None => Ok(0),
                    Some(e) => Err(OsError(e)),
                };
            }
            let n = buf.len().min(self.available(self.clock.0.get()) - self.pos);
            if n == 0 {
                return Err(OsError(Errno::AGAIN));
            }
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    impl Ready for Trickle<'_> {
        fn wait(&mut self, want: Want, deadline: u64) -> Wait {
            let now = self.clock.0.get();
            let deadline = deadline.max(now);
            let readable = self.pos == self.data.len() || self.available(now) > self.pos;
            if want == Want::Read {
                if readable {
                    return Wait::Ready;
                }
                let next = self
                    .t0
                    .saturating_add((self.arrivals(now) + 1).saturating_mul(self.every));
                if self.per > 0 && next <= deadline {
                    self.clock.set(next);
                    return Wait::Ready;
                }
            }
            self.clock.set(deadline);
            Wait::Timeout
        }
    }

    /// Bytes that pass the health tests (xorshift64*), from `seed`.
    pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}
