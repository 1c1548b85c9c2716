//! `entropyservice sink`: the push-mode forced command on a new host. Reads
//! a bounded amount of stdin, tests all of it, then credits and reseeds.

use crate::cli;
use crate::clock;
use crate::clock::{Clock, Monotonic};
use crate::error::{Error, Result, Status};
use crate::fd::{Fd, Input, OsError, Ready, Wait, Want};
use crate::health::Health;
use crate::kernel::{Pool, RandomDevice};
use crate::text::msg;
use crate::text::Num;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::io::Errno;

pub const MAX: usize = 65536;
/// Longest silence on stdin before giving up.
const STALL_S: u64 = 30;

pub fn run(a: &cli::Sink) -> Result<()> {
    if a.credit_bits_per_byte > 8 {
        return Err(Error::new(
            Status::Usage,
            "--credit-bits-per-byte must be 0 to 8",
        ));
    }
    let (min, max) = (a.min_bytes as usize, a.max_bytes as usize);
    if min == 0 || min > max || max > MAX {
        return Err(Error::new(
            Status::Usage,
            "need 1 <= --min-bytes <= --max-bytes <= 65536",
        ));
    }
    let mut pool = Pool::open(0)?;
    let stdin = std::io::stdin();
    let (got, credited, reseeded) = receive(
        &mut Stdin(Fd(stdin.as_fd())),
        &Monotonic,
        &mut pool,
        (min, max),
        a.credit_bits_per_byte,
    )?;
    let line = msg(&[
        "received ",
        Num::new(got as u64).as_str(),
        if got == 1 { " byte" } else { " bytes" },
        ", credited ",
        Num::new(credited).as_str(),
        " bits, reseeded ",
        if reseeded { "yes" } else { "no" },
        if credited > 0 && pool.totals.bits_counted == 0 {
            " (the CRNG was already ready: mixed, but the kernel's count does not grow)\n"
        } else {
            "\n"
        },
    ]);
    crate::log::stdout(line.as_bytes());
    Ok(())
}

/// Longest time for the whole input, however it trickles in.
const INPUT_S: u64 = 120;
const S: u64 = 1_000_000_000;

fn late() -> Error {
    Error::new(
        Status::Data,
        "input did not end within 120 s; nothing credited",
    )
}

/// Stdin as the input stage. Its waits are whole seconds, rounded up
/// (qemu-user's big-endian MIPS ppoll refuses a non-zero tv_nsec with
/// EINVAL; deadlines of 30 and 120 s need no finer grain).
struct Stdin<'a>(Fd<BorrowedFd<'a>>);

impl embedded_io::ErrorType for Stdin<'_> {
    type Error = OsError;
}

impl embedded_io::Read for Stdin<'_> {
    fn read(&mut self, buf: &mut [u8]) -> core::result::Result<usize, OsError> {
        self.0.read(buf)
    }
}

impl Ready for Stdin<'_> {
    fn wait(&mut self, want: Want, deadline: u64) -> Wait {
        let ns = deadline.saturating_sub(clock::now_ns());
        let ts = rustix::time::Timespec {
            tv_sec: ns.div_ceil(S) as _,
            tv_nsec: 0,
        };
        crate::fd::poll_for(self.0 .0, want, &ts)
    }
}

/// Reads the input, then tests and credits it: returns the bytes
/// received, the bits credited and whether the kernel reseeded. Nothing is
/// credited unless the whole input arrived in time, within the size
/// bounds, and passed the health tests.
fn receive<D: RandomDevice>(
    input: &mut dyn Input,
    clock: &dyn Clock,
    pool: &mut Pool<D>,
    (min, max): (usize, usize),
    bpb: u32,
) -> Result<(usize, u64, bool)> {
    let mut buf = vec![0u8; max + 1];
    let result = read_input(input, clock, &mut buf).and_then(|got| {
        check_and_credit(&buf[..got], min, max, bpb, pool, clock.now()).map(|(c, r)| (got, c, r))
    });
    buf.fill(0);
    result
}

/// Fills `buf` from `input` until end of file or a full `buf`. Gives up
/// after STALL_S without a byte, or INPUT_S for the whole input.
fn read_input(input: &mut dyn Input, clock: &dyn Clock, buf: &mut [u8]) -> Result<usize> {
    let end = clock.now().saturating_add(INPUT_S * S);
    let mut got = 0;
    while got < buf.len() {
        let now = clock.now();
        if now >= end {
            return Err(late());
        }
        match input.wait(Want::Read, now.saturating_add(STALL_S * S).min(end)) {
            Wait::Timeout if clock.now() >= end => return Err(late()),
            Wait::Timeout => {
                return Err(Error::new(
                    Status::Data,
                    "no input on stdin for 30 s; nothing credited",
                ))
            }
            Wait::Failed(e) => return Err(Error::os(Status::Os, "poll on stdin failed", e)),
            Wait::Ready | Wait::HungUp | Wait::Signal => {}
        }
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(OsError(Errno::INTR)) => {}
            Err(OsError(e)) => return Err(Error::os(Status::Io, "reading stdin failed", e)),
        }
    }
    Ok(got)
}

fn check_and_credit<D: RandomDevice>(
    data: &[u8],
    min: usize,
    max: usize,
    bpb: u32,
    pool: &mut Pool<D>,
    now: u64,
) -> Result<(u64, bool)> {
    if data.len() > max {
        return Err(Error::new(
            Status::Data,
            msg(&[
                "input is larger than --max-bytes ",
                Num::new(max as u64).as_str(),
                "; nothing credited",
            ]),
        ));
    }
    if data.len() < min {
        return Err(Error::new(
            Status::Data,
            msg(&[
                "input has ",
                Num::new(data.len() as u64).as_str(),
                " bytes, fewer than --min-bytes ",
                Num::new(min as u64).as_str(),
                "; nothing credited",
            ]),
        ));
    }
    Health::new().check(data).map_err(|f| {
        Error::new(
            Status::Data,
            msg(&[
                "input failed the health tests: ",
                f.as_str(),
                "; nothing credited",
            ]),
        )
    })?;
    let credited = pool.add(data, bpb)?;
    let reseeded = pool.reseed(now)?;
    Ok((credited, reseeded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Fake;
    use crate::fd::fake::{random_bytes, Trickle};
    use crate::kernel::fake::FakeRandom;

    fn pool() -> Pool<FakeRandom> {
        Pool::on(FakeRandom::default(), 0)
    }

    fn nothing_reached(p: &Pool<FakeRandom>) -> bool {
        let d = p.device();
        d.credited.is_empty() && d.written.is_empty() && d.reseed_calls == 0
    }

    /// A sender that trickles a byte every 29 s never trips the 30 s stall
    /// limit, but the whole input has 120 s: cut off then, nothing credited.
    #[test]
    fn a_trickling_sender_is_cut_off_at_120_s() {
        let clock = Fake::at(1000 * S);
        let mut input = Trickle::new(&clock, random_bytes(200, 1), 29 * S, 1);
        let mut p = pool();
        let e = receive(&mut input, &clock, &mut p, (32, 4096), 2).unwrap_err();
        assert!(e.msg.contains("did not end within 120 s"), "{}", e.msg);
        assert_eq!(e.status, Status::Data);
        assert_eq!(clock.now(), 1120 * S);
        assert_eq!(input.pos, 4);
        assert!(nothing_reached(&p));
    }

    /// A sender that goes silent for 30 s is given up on then.
    #[test]
    fn a_silent_sender_is_given_up_after_30_s() {
        let clock = Fake::at(0);
        let mut input = Trickle::new(&clock, random_bytes(200, 1), 10 * S, 100);
        input.every = 40 * S;
        let mut p = pool();
        let e = receive(&mut input, &clock, &mut p, (32, 4096), 2).unwrap_err();
        assert!(e.msg.contains("no input on stdin for 30 s"), "{}", e.msg);
        assert_eq!(clock.now(), 30 * S);
        assert!(nothing_reached(&p));
    }

    /// A slow sender that finishes within the deadlines is credited: the
    /// whole input, `--credit-bits-per-byte` bits a byte, then a reseed.
    #[test]
    fn a_slow_sender_within_the_deadlines_is_credited() {
        let clock = Fake::at(0);
        let mut input = Trickle::new(&clock, random_bytes(1000, 2), 10 * S, 100);
        let mut p = pool();
        let r = receive(&mut input, &clock, &mut p, (32, 4096), 2).ok();
        assert_eq!(r, Some((1000, 2000, true)));
        assert_eq!(clock.now(), 100 * S);
        assert_eq!(p.device().credited, [(512, 1024), (488, 976)]);
        assert_eq!(p.device().reseed_calls, 1);
    }

    /// Input that fails the health tests, or is shorter than --min-bytes or
    /// longer than --max-bytes, is refused as a whole: nothing is mixed,
    /// credited or reseeded.
    #[test]
    fn refused_input_credits_nothing() {
        let mut bad = random_bytes(1000, 3);
        bad[500..520].fill(7);
        for (data, why) in [
            (bad, "input failed the health tests: repetition"),
            (
                random_bytes(20, 4),
                "input has 20 bytes, fewer than --min-bytes 32",
            ),
            (
                random_bytes(5000, 5),
                "input is larger than --max-bytes 4096",
            ),
        ] {
            let clock = Fake::at(0);
            let mut p = pool();
            let e = receive(
                &mut Trickle::all(&clock, data),
                &clock,
                &mut p,
                (32, 4096),
                8,
            )
            .unwrap_err();
            assert!(e.msg.starts_with(why), "{}", e.msg);
            assert!(e.msg.ends_with("; nothing credited"), "{}", e.msg);
            assert_eq!(e.status, Status::Data);
            assert!(nothing_reached(&p));
        }
    }

    /// The credit decision: bits per byte as asked (0 mixes without
    /// credit); without CAP_SYS_ADMIN the bytes are mixed by a plain write,
    /// 0 bits are credited and there is no reseed.
    #[test]
    fn credit_decisions() {
        let clock = Fake::at(0);
        let data = random_bytes(600, 6);
        let mut p = pool();
        let r = receive(
            &mut Trickle::all(&clock, data.clone()),
            &clock,
            &mut p,
            (32, 4096),
            0,
        );
        assert_eq!(r.ok(), Some((600, 0, true)));
        assert_eq!(p.device().credited, [(512, 0), (88, 0)]);
        let mut p = Pool::on(
            FakeRandom {
                add_answer: Some(Errno::PERM),
                ..FakeRandom::default()
            },
            0,
        );
        let r = receive(
            &mut Trickle::all(&clock, data.clone()),
            &clock,
            &mut p,
            (32, 4096),
            8,
        );
        assert_eq!(r.ok(), Some((600, 0, false)));
        assert_eq!(p.device().written, [512, 88]);
        assert_eq!(p.device().reseed_calls, 0);
        // A read error is an error, with nothing credited.
        let mut input = Trickle::all(&clock, data);
        input.end = Some(Errno::IO);
        let mut p = pool();
        let e = receive(&mut input, &clock, &mut p, (32, 4096), 8).unwrap_err();
        assert!(e.msg.starts_with("reading stdin failed"), "{}", e.msg);
        assert!(nothing_reached(&p));
    }
}
