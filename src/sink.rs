//! `entropyservice sink`: the push-mode forced command on a new host. Reads
//! a bounded amount of stdin, tests all of it, then credits and reseeds.

use crate::cli;
use crate::clock;
use crate::error::{msg, Error, Result, Status};
use crate::health::Health;
use crate::kernel::Pool;
use crate::log::Num;
use rustix::event::{poll, PollFd, PollFlags};
use std::io::Read;

pub const MAX: usize = 65536;
/// Longest silence on stdin before giving up.
const STALL_S: i64 = 30;

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
    let mut buf = vec![0u8; max + 1];
    let mut got = 0;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let start = clock::now_ns();
    while got <= max {
        let Some(ts) = input_wait(start, clock::now_ns()) else {
            return Err(late());
        };
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) if input_wait(start, clock::now_ns()).is_none() => return Err(late()),
            Ok(0) => {
                return Err(Error::new(
                    Status::Data,
                    "no input on stdin for 30 s; nothing credited",
                ))
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::os(Status::Os, "poll on stdin failed", e)),
        }
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::os(Status::Io, "reading stdin failed", e)),
        }
    }
    let result = check_and_credit(&buf[..got], min, max, a.credit_bits_per_byte, &mut pool);
    buf.fill(0);
    let (credited, reseeded) = result?;
    let line = msg(&[
        "received ",
        Num::new(got as u64).as_str(),
        " bytes, credited ",
        Num::new(credited).as_str(),
        " bits, reseeded ",
        if reseeded { "yes" } else { "no" },
        "\n",
    ]);
    crate::log::stdout(line.as_bytes());
    Ok(())
}

/// Longest time for the whole input, however it trickles in.
const INPUT_S: u64 = 120;

fn late() -> Error {
    Error::new(
        Status::Data,
        "input did not end within 120 s; nothing credited",
    )
}

/// The next poll's wait on stdin: the stall limit, cut to what is left of
/// the whole-input deadline and rounded up to whole seconds (qemu-user's
/// big-endian MIPS ppoll refuses a non-zero tv_nsec with EINVAL; a deadline
/// of 120 s needs no finer grain); None once that has passed.
fn input_wait(start_ns: u64, now_ns: u64) -> Option<rustix::time::Timespec> {
    let end = start_ns.saturating_add(INPUT_S * 1_000_000_000);
    let left = end.checked_sub(now_ns).filter(|&l| l > 0)?;
    let w = left.min(STALL_S as u64 * 1_000_000_000);
    Some(rustix::time::Timespec {
        tv_sec: w.div_ceil(1_000_000_000) as _,
        tv_nsec: 0,
    })
}

fn check_and_credit(
    data: &[u8],
    min: usize,
    max: usize,
    bpb: u32,
    pool: &mut Pool,
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
    let reseeded = pool.reseed(clock::now_ns())?;
    Ok((credited, reseeded))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn sink_input_has_a_deadline_for_the_whole_input() {
        // A fake clock: a byte every 29 s never trips the 30 s stall limit,
        // but the waits shrink to the 120 s deadline and then stop.
        let start = 1000 * S;
        assert_eq!(input_wait(start, start).map(|t| t.tv_sec), Some(30));
        assert_eq!(
            input_wait(start, start + 29 * S).map(|t| t.tv_sec),
            Some(30)
        );
        assert_eq!(
            input_wait(start, start + 110 * S).map(|t| t.tv_sec),
            Some(10)
        );
        assert!(input_wait(start, start + 120 * S).is_none());
        assert!(input_wait(start, start + 4000 * S).is_none());
    }
}
