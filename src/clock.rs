//! The only clock reads in the program. Everything that decides on time
//! (rate limits, back-off, schedules) takes `now` from here as a parameter.

/// Monotonic nanoseconds since an arbitrary start (immune to wall-clock jumps).
pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
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
        rustix::event::poll(&mut [], Some(&ts)),
        Err(rustix::io::Errno::INTR)
    )
}

/// Sleeps until `ns` have passed or a terminating signal was received.
/// Returns false if interrupted by such a signal.
pub fn sleep_unless_signalled(ns: u64) -> bool {
    let end = now_ns().saturating_add(ns);
    loop {
        if crate::sys::pending_signal().is_some() {
            return false;
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
    let _ = crate::sys::getrandom(&mut b, crate::sys::GRND_INSECURE);
    u32::from_ne_bytes(b)
}
