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
use std::io::Write;

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

pub fn info() -> Info {
    let poolsize = read_proc_u32("/proc/sys/kernel/random/poolsize").unwrap_or(256);
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
    pub bits_credited: u64,
    pub reseeds: u64,
}

/// A writable handle on /dev/random and the crediting policy.
pub struct Pool {
    random: File,
    can_credit: bool,
    /// False once the kernel answered RNDRESEEDCRNG with EINVAL (before
    /// 4.17 it has no such ioctl).
    can_reseed: bool,
    last_reseed: Option<u64>,
    reseed_interval_ns: u64,
    pub totals: Totals,
}

impl Pool {
    pub fn open(reseed_interval_ns: u64) -> Result<Pool> {
        let random = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/random")
            .map_err(|e| Error::os(Status::Os, "cannot open /dev/random for writing", e))?;
        Ok(Pool {
            random,
            can_credit: true,
            can_reseed: true,
            last_reseed: None,
            reseed_interval_ns,
            totals: Totals::default(),
        })
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
                match sys::add_entropy(&self.random, chunk, bits) {
                    Ok(()) => {
                        credited += bits as u64;
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
        let r = sys::reseed_crng(&self.random);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool {
            random: File::open("/dev/null").unwrap(),
            can_credit: true,
            can_reseed: true,
            last_reseed: None,
            reseed_interval_ns: 0,
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
}
