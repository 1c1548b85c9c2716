//! The only clock reads in the program. Everything that decides on time
//! (rate limits, back-off, schedules) takes `now` from here as a parameter.
//! clippy.toml's `disallowed-methods` refuses clock reads anywhere else.
#![allow(clippy::disallowed_methods)]

/// Monotonic nanoseconds since an arbitrary start (immune to wall-clock jumps).
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// A source of monotonic time (ns) for the stages, so tests can run them
/// on a fake clock that moves only when a fake stage waits.
pub trait Clock {
    fn now(&self) -> u64;
}

/// The real monotonic clock.
pub struct Monotonic;

impl Clock for Monotonic {
    fn now(&self) -> u64 {
        now_ns()
    }
}

/// Wall-clock seconds since the epoch, for status lines only.
pub fn wall_secs() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    t.tv_sec.max(0) as u64
}

/// Sleeps up to `ns`; returns early (false) when a signal arrives.
pub fn sleep_ns(ns: u64) -> bool {
    let ts = rustix::time::Timespec {
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    };
    !matches!(
        crate::sys::poll(&mut [], Some(&ts)),
        Err(rustix::io::Errno::INTR)
    )
}

/// Sleeps until `ns` have passed (true), unless a terminating signal
/// arrives (false) or `wake`, asked before each sleep (a signal such as
/// SIGUSR1 ends one), says to end it early (true).
pub fn sleep_unless(ns: u64, mut wake: impl FnMut() -> bool) -> bool {
    let end = now_ns().saturating_add(ns);
    loop {
        if crate::sys::pending_signal().is_some() {
            return false;
        }
        if wake() {
            return true;
        }
        let now = now_ns();
        if now >= end {
            return true;
        }
        sleep_ns(end - now);
    }
}

/// A random u32 for jitter (not for keys).
pub fn jitter() -> u32 {
    let mut b = [0u8; 4];
    let ok = crate::sys::getrandom(&mut b, crate::sys::GRND_INSECURE) == Ok(4)
        || crate::sys::getrandom(&mut b, crate::sys::GRND_NONBLOCK) == Ok(4);
    if ok {
        u32::from_ne_bytes(b)
    } else {
        jitter_fallback(now_ns(), std::process::id())
    }
}

/// Jitter where getrandom cannot give it without blocking (before Linux 5.6
/// there is no GRND_INSECURE, and the CRNG may not be ready): the clock's
/// nanoseconds and the pid, mixed, so routers that booted together still
/// spread out.
fn jitter_fallback(ns: u64, pid: u32) -> u32 {
    let x = (ns ^ (u64::from(pid) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 32) as u32
}

/// A fake clock for in-process tests: it moves only when told to.
#[cfg(test)]
pub struct Fake(pub core::cell::Cell<u64>);

#[cfg(test)]
impl Fake {
    pub fn at(ns: u64) -> Fake {
        Fake(core::cell::Cell::new(ns))
    }
    pub fn set(&self, ns: u64) {
        self.0.set(ns)
    }
    pub fn advance(&self, ns: u64) {
        self.0.set(self.0.get() + ns)
    }
}

#[cfg(test)]
impl Clock for Fake {
    fn now(&self) -> u64 {
        self.0.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_fallback_varies_with_time_and_pid() {
        let a = jitter_fallback(1_000_000_123, 42);
        assert_ne!(a, jitter_fallback(1_000_000_124, 42));
        assert_ne!(a, jitter_fallback(1_000_000_123, 43));
        assert_ne!(jitter_fallback(0, 1), 0);
    }
}
