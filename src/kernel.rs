//! The kernel's random pool: what state it is in, and the credit decision.
//!
//! Guarantee: `Pool::add` credits only the bytes it is handed, which callers
//! pass only after the health tests accepted them; with no CAP_SYS_ADMIN it
//! falls back to an uncredited write and says so once.

use crate::error::{Error, Result, Status};
use crate::log;
use crate::sys;
use rustix::io::Errno;
use std::fs::File;

/// What the kernel says about its pool right now.
#[derive(Clone, Copy, Debug, Default)]
pub struct Info {
    /// `poolsize` in bits: 256 on kernels 5.18+, 4096 on older ones.
    pub poolsize: u32,
    /// Credited entropy in bits (RNDGETENTCNT).
    pub entropy_avail: i32,
    /// getrandom(GRND_NONBLOCK) succeeds.
    pub crng_ready: bool,
}

impl Info {
    /// True on old kernels where entropy_avail still rises and falls.
    pub fn legacy(&self) -> bool {
        self.poolsize > 256
    }
}

pub fn crng_ready() -> bool {
    let mut b = [0u8; 1];
    !matches!(
        crate::sys::getrandom(&mut b, crate::sys::GRND_NONBLOCK),
        Err(Errno::AGAIN)
    )
}

fn read_proc_u32(path: &str) -> Option<u32> {
    let s = crate::sys::read_to_string(path).ok()?;
    s.trim().parse().ok()
}

/// `poolsize` in bits (256 on 5.18+, where the file may also be missing).
pub fn poolsize() -> u32 {
    read_proc_u32("/proc/sys/kernel/random/poolsize").unwrap_or(256)
}

pub fn info() -> Info {
    let poolsize = poolsize();
    let entropy_avail = File::open("/dev/random")
        .ok()
        .and_then(|f| sys::get_entropy_count(&f).ok())
        .or_else(|| read_proc_u32("/proc/sys/kernel/random/entropy_avail").map(|v| v as i32))
        .unwrap_or(-1);
    Info {
        poolsize,
        entropy_avail,
        crng_ready: crng_ready(),
    }
}

/// This boot's random id (/proc/sys/kernel/random/boot_id), to tell "first
/// time this boot" from "first time since the client started".
pub fn boot_id() -> Option<heapless::String<40>> {
    let s = crate::sys::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    heapless::String::try_from(s.trim()).ok()
}

/// Totals of what was handed to the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub bytes_mixed: u64,
    /// Bits claimed with RNDADDENTROPY (bytes × --credit-bits-per-byte).
    pub bits_credited: u64,
    /// Of those, the bits the kernel could still count when they went in
    /// (see `room`): the figure the status file reports.
    pub bits_counted: u64,
    pub reseeds: u64,
}

/// How many more credited bits the kernel counts right now. Kernels 5.18+
/// (a 256-bit pool) count credits only until the CRNG is ready, up to 256
/// bits; older kernels count up to their pool size at any time.
pub fn room(poolsize: u32, entropy_avail: i32, crng_ready: bool) -> u64 {
    if poolsize <= 256 && crng_ready {
        return 0;
    }
    (poolsize.max(256) as u64).saturating_sub(entropy_avail.max(0) as u64)
}

/// What the pool needs of /dev/random: the two ioctls and a plain write.
/// A `File` in the program; a fake in tests, so every kernel answer can be
/// given without a kernel that gives it.
pub trait RandomDevice {
    /// RNDADDENTROPY: mix `data` (at most `sys::POOL_CHUNK` bytes) and
    /// credit `bits`.
    fn add_entropy(&mut self, data: &[u8], bits: u32) -> core::result::Result<(), Errno>;
    /// RNDRESEEDCRNG.
    fn reseed_crng(&mut self) -> core::result::Result<(), Errno>;
    /// A plain write: mixes `data` without credit.
    fn write_all(&mut self, data: &[u8]) -> core::result::Result<(), Errno>;
    /// What the kernel would still count of a credit now: RNDGETENTCNT
    /// (i32::MAX when unknown, so that nothing is counted) and whether the
    /// CRNG is ready.
    fn count_state(&mut self) -> (i32, bool);
}

impl RandomDevice for File {
    fn add_entropy(&mut self, data: &[u8], bits: u32) -> core::result::Result<(), Errno> {
        sys::add_entropy(&*self, data, bits)
    }

    fn reseed_crng(&mut self) -> core::result::Result<(), Errno> {
        sys::reseed_crng(&*self)
    }

    fn count_state(&mut self) -> (i32, bool) {
        (
            sys::get_entropy_count(&*self).unwrap_or(i32::MAX),
            crng_ready(),
        )
    }

    fn write_all(&mut self, mut data: &[u8]) -> core::result::Result<(), Errno> {
        while !data.is_empty() {
            match rustix::io::write(&*self, data) {
                Ok(0) => return Err(Errno::IO),
                Ok(n) => data = &data[n..],
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A writable handle on /dev/random and the crediting policy.
pub struct Pool<D: RandomDevice = File> {
    random: D,
    can_credit: bool,
    /// False once the kernel answered RNDRESEEDCRNG with EINVAL (before
    /// 4.17 it has no such ioctl).
    can_reseed: bool,
    last_reseed: Option<u64>,
    reseed_interval_ns: u64,
    /// /proc/sys/kernel/random/poolsize: 256 on 5.18+.
    poolsize: u32,
    pub totals: Totals,
}

impl Pool {
    pub fn open(reseed_interval_ns: u64) -> Result<Pool> {
        let random = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/random")
            .map_err(|e| Error::os(Status::Os, "cannot open /dev/random for writing", e))?;
        Ok(Pool::on(random, reseed_interval_ns))
    }
}

impl<D: RandomDevice> Pool<D> {
    pub fn on(random: D, reseed_interval_ns: u64) -> Pool<D> {
        Pool {
            random,
            can_credit: true,
            can_reseed: true,
            last_reseed: None,
            reseed_interval_ns,
            poolsize: poolsize(),
            totals: Totals::default(),
        }
    }

    /// Least time between forced reseeds (--reseed-interval).
    pub fn reseed_interval(&self) -> u64 {
        self.reseed_interval_ns
    }

    pub fn can_credit(&self) -> bool {
        self.can_credit
    }

    /// Mixes `data` and credits `bits_per_byte` for each byte. Returns the
    /// bits credited (0 when the process lacks CAP_SYS_ADMIN).
    pub fn add(&mut self, data: &[u8], bits_per_byte: u32) -> Result<u64> {
        let mut credited = 0u64;
        for chunk in data.chunks(sys::POOL_CHUNK) {
            if self.can_credit {
                let bits = chunk.len() as u32 * bits_per_byte.min(8);
                let (avail, ready) = self.random.count_state();
                let room = room(self.poolsize, avail, ready);
                match self.random.add_entropy(chunk, bits) {
                    Ok(()) => {
                        credited += bits as u64;
                        self.totals.bits_counted += room.min(bits as u64);
                        self.totals.bytes_mixed += chunk.len() as u64;
                        continue;
                    }
                    Err(Errno::PERM) => {
                        self.can_credit = false;
                        log::warn("cannot credit entropy without CAP_SYS_ADMIN (run as root); mixing bytes into /dev/random without credit");
                    }
                    Err(e) => {
                        return Err(Error::os(
                            Status::Os,
                            "RNDADDENTROPY on /dev/random failed",
                            e,
                        ))
                    }
                }
            }
            self.random
                .write_all(chunk)
                .map_err(|e| Error::os(Status::Os, "write to /dev/random failed", e))?;
            self.totals.bytes_mixed += chunk.len() as u64;
        }
        self.totals.bits_credited += credited;
        Ok(credited)
    }

    /// Forces a CRNG reseed unless one was forced less than the reseed
    /// interval ago. Returns whether the kernel reseeded. Before the CRNG is
    /// ready the kernel answers ENODATA: nothing to do then. Kernels before
    /// 4.17 have no RNDRESEEDCRNG and answer EINVAL: said once, not an
    /// error (the bytes were mixed and credited; the kernel reseeds on its
    /// own schedule).
    pub fn reseed(&mut self, now: u64) -> Result<bool> {
        if let Some(t) = self.last_reseed {
            if now.saturating_sub(t) < self.reseed_interval_ns {
                return Ok(false);
            }
        }
        if !self.can_credit || !self.can_reseed {
            return Ok(false);
        }
        let r = self.random.reseed_crng();
        self.reseeded(r, now)
    }

    /// What a RNDRESEEDCRNG answer means (split out so every answer can be
    /// tested without a kernel that gives it).
    fn reseeded(&mut self, r: core::result::Result<(), Errno>, now: u64) -> Result<bool> {
        match r {
            Ok(()) => {
                self.last_reseed = Some(now);
                self.totals.reseeds += 1;
                Ok(true)
            }
            Err(Errno::NODATA) => Ok(false),
            Err(Errno::PERM) => {
                self.can_credit = false;
                Ok(false)
            }
            Err(Errno::INVAL) => {
                self.can_reseed = false;
                log::warn("this kernel cannot force a CRNG reseed (RNDRESEEDCRNG needs Linux 4.17 or later); bytes are still mixed and credited, and the kernel reseeds on its own schedule");
                Ok(false)
            }
            Err(e) => Err(Error::os(
                Status::Os,
                "RNDRESEEDCRNG on /dev/random failed",
                e,
            )),
        }
    }
}

/// Fakes of the kernel for in-process tests.
#[cfg(test)]
pub mod fake {
    use super::RandomDevice;
    use rustix::io::Errno;

    /// /dev/random as the pool sees it, with answers chosen by the test.
    #[derive(Default)]
    pub struct FakeRandom {
        /// RNDADDENTROPY calls: bytes and bits.
        pub credited: Vec<(usize, u32)>,
        /// Plain writes: bytes.
        pub written: Vec<usize>,
        pub reseed_calls: u32,
        /// What RNDADDENTROPY answers: None is success (the call is then
        /// logged in `credited`).
        pub add_answer: Option<Errno>,
        /// What RNDGETENTCNT and getrandom(GRND_NONBLOCK) say.
        pub entropy_avail: i32,
        pub crng_ready: bool,
    }

    impl RandomDevice for FakeRandom {
        fn add_entropy(&mut self, data: &[u8], bits: u32) -> core::result::Result<(), Errno> {
            match self.add_answer {
                Some(e) => Err(e),
                None => {
                    self.credited.push((data.len(), bits));
                    Ok(())
                }
            }
        }
        fn reseed_crng(&mut self) -> core::result::Result<(), Errno> {
            self.reseed_calls += 1;
            Ok(())
        }
        fn write_all(&mut self, data: &[u8]) -> core::result::Result<(), Errno> {
            self.written.push(data.len());
            Ok(())
        }
        fn count_state(&mut self) -> (i32, bool) {
            (self.entropy_avail, self.crng_ready)
        }
    }
}

#[cfg(test)]
impl<D: RandomDevice> Pool<D> {
    /// The device, for tests to see what reached it.
    pub fn device(&self) -> &D {
        &self.random
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeRandom;
    use super::*;

    fn pool() -> Pool {
        Pool {
            random: File::open("/dev/null").unwrap(),
            can_credit: true,
            can_reseed: true,
            last_reseed: None,
            reseed_interval_ns: 0,
            poolsize: 256,
            totals: Totals::default(),
        }
    }

    /// Before 4.17 the kernel answers RNDRESEEDCRNG with EINVAL: not an
    /// error, and never asked again (so it is said once).
    #[test]
    fn einval_means_no_reseed_on_this_kernel() {
        let mut p = pool();
        assert_eq!(p.reseeded(Err(Errno::INVAL), 1).ok(), Some(false));
        assert!(!p.can_reseed);
        // The next top-up does not reach the kernel: /dev/null would answer
        // ENOTTY, an error, if it did.
        assert_eq!(p.reseed(2).ok(), Some(false));
        assert_eq!(p.reseed(3).ok(), Some(false));
        assert!(p.can_credit);
    }

    /// What the status file reports as credited: what the kernel counts.
    #[test]
    fn room_is_what_the_kernel_still_counts() {
        // 5.18+: up to 256 bits before the CRNG is ready, nothing after.
        assert_eq!(room(256, 0, false), 256);
        assert_eq!(room(256, 200, false), 56);
        assert_eq!(room(256, 256, true), 0);
        assert_eq!(room(256, 0, true), 0);
        // Older kernels count up to the pool size, ready or not.
        assert_eq!(room(4096, 256, true), 3840);
        assert_eq!(room(4096, 4096, true), 0);
        assert_eq!(room(4096, 5000, false), 0);
        // RNDGETENTCNT failed: count nothing.
        assert_eq!(room(256, i32::MAX, false), 0);
        assert_eq!(room(4096, -1, false), 4096);
    }

    #[test]
    fn other_answers() {
        let mut p = pool();
        assert_eq!(p.reseeded(Ok(()), 5).ok(), Some(true));
        assert_eq!(p.totals.reseeds, 1);
        assert_eq!(p.reseeded(Err(Errno::NODATA), 6).ok(), Some(false));
        assert!(p.reseeded(Err(Errno::IO), 7).is_err());
        assert!(p.can_reseed);
        // /dev/null is no random device: a real error.
        assert!(p.reseed(8).is_err());
    }

    const S: u64 = 1_000_000_000;

    /// Credit is bits per byte (at most 8) of every byte, in chunks of at
    /// most POOL_CHUNK bytes, each credited with its own bytes' bits.
    #[test]
    fn credit_goes_chunk_by_chunk_and_is_capped_at_8_bits_a_byte() {
        let mut p = Pool::on(FakeRandom::default(), 0);
        p.poolsize = 256;
        assert_eq!(p.add(&[7u8; 1300], 8).ok(), Some(10_400));
        assert_eq!(p.random.credited, [(512, 4096), (512, 4096), (276, 2208)]);
        assert_eq!(p.add(&[7u8; 10], 12).ok(), Some(80));
        assert_eq!(p.add(&[7u8; 10], 2).ok(), Some(20));
        assert_eq!(p.add(&[7u8; 10], 0).ok(), Some(0));
        assert!(p.random.written.is_empty());
        assert_eq!(
            p.totals,
            Totals {
                bytes_mixed: 1330,
                bits_credited: 10_500,
                // The fake's count stays at 0 and the CRNG not ready: each
                // call could count up to 256 bits.
                bits_counted: 256 * 3 + 80 + 20,
                reseeds: 0
            }
        );
    }

    /// The count the status file shows is the kernel's: nothing once a
    /// 5.18+ CRNG is ready, up to the pool size on older kernels.
    #[test]
    fn counted_bits_follow_the_kernels_count() {
        let mut p = Pool::on(
            FakeRandom {
                entropy_avail: 256,
                crng_ready: true,
                ..FakeRandom::default()
            },
            0,
        );
        p.poolsize = 256;
        assert_eq!(p.add(&[7u8; 1024], 2).ok(), Some(2048));
        assert_eq!((p.totals.bits_credited, p.totals.bits_counted), (2048, 0));
        p.poolsize = 4096;
        p.random.entropy_avail = 3000;
        assert_eq!(p.add(&[7u8; 1024], 2).ok(), Some(2048));
        assert_eq!(
            (p.totals.bits_credited, p.totals.bits_counted),
            (4096, 1024 + 1024)
        );
        p.random.entropy_avail = 4096;
        assert_eq!(p.add(&[7u8; 64], 2).ok(), Some(128));
        assert_eq!(p.totals.bits_counted, 2048);
    }

    /// Without CAP_SYS_ADMIN (EPERM) the bytes are still mixed, by a plain
    /// write that credits nothing; the ioctl is not tried again, and no
    /// reseed is asked for.
    #[test]
    fn eperm_falls_back_to_an_uncredited_write() {
        let mut p = Pool::on(
            FakeRandom {
                add_answer: Some(Errno::PERM),
                ..FakeRandom::default()
            },
            0,
        );
        assert_eq!(p.add(&[7u8; 600], 8).ok(), Some(0));
        assert!(!p.can_credit());
        assert_eq!(p.random.written, [512, 88]);
        p.random.add_answer = None;
        assert_eq!(p.add(&[7u8; 100], 8).ok(), Some(0));
        assert!(p.random.credited.is_empty());
        assert_eq!(p.random.written, [512, 88, 100]);
        assert_eq!(p.totals.bytes_mixed, 700);
        assert_eq!(p.totals.bits_credited, 0);
        assert_eq!(p.reseed(10 * S).ok(), Some(false));
        assert_eq!(p.random.reseed_calls, 0);
    }

    /// Any other RNDADDENTROPY failure is an error, and that chunk is not
    /// written either.
    #[test]
    fn other_credit_failures_are_errors() {
        let mut p = Pool::on(
            FakeRandom {
                add_answer: Some(Errno::FAULT),
                ..FakeRandom::default()
            },
            0,
        );
        assert!(p.add(&[7u8; 100], 8).is_err());
        assert!(p.random.written.is_empty());
        assert_eq!(p.totals, Totals::default());
    }

    /// Forced reseeds are at least the reseed interval apart; asked for
    /// sooner, the kernel is not called.
    #[test]
    fn reseeds_keep_the_interval() {
        let mut p = Pool::on(FakeRandom::default(), 60 * S);
        assert_eq!(p.reseed_interval(), 60 * S);
        assert_eq!(p.reseed(100 * S).ok(), Some(true));
        assert_eq!(p.reseed(130 * S).ok(), Some(false));
        assert_eq!(p.reseed(160 * S - 1).ok(), Some(false));
        assert_eq!(p.random.reseed_calls, 1);
        assert_eq!(p.reseed(160 * S).ok(), Some(true));
        assert_eq!(p.random.reseed_calls, 2);
        assert_eq!(p.totals.reseeds, 2);
        // Interval 0: every top-up reseeds.
        let mut p = Pool::on(FakeRandom::default(), 0);
        for t in 0..3 {
            assert_eq!(p.reseed(t).ok(), Some(true));
        }
    }
}
