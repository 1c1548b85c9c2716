//! `entropyservice sink`: the push-mode forced command on a new host. Reads
//! a bounded amount of stdin, tests all of it, then credits and reseeds.

use crate::cli;
use crate::clock;
use crate::clock::{Clock, Monotonic};
use crate::error::{msg, Error, Result, Status};
use crate::fd::{Fd, Input, OsError, Ready, Wait, Want};
use crate::health::Health;
use crate::kernel::{Pool, RandomDevice};
use crate::log::Num;
use rustix::fd::{AsFd, BorrowedFd};
use rustix::io::Errno;
use std::io::Write;

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
        " bytes, credited ",
        Num::new(credited).as_str(),
        " bits, reseeded ",
        if reseeded { "yes" } else { "no" },
        "\n",
    ]);
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
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
