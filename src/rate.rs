//! Token bucket on a caller-supplied monotonic clock (nanoseconds), and
//! exponential back-off. No clock reads here, so both are deterministic.

pub const NS: u64 = 1_000_000_000;

/// A token bucket: `rate` bytes per second, at most `burst` bytes at once.
/// A rate of 0 means unlimited.
#[derive(Clone, Debug)]
pub struct Bucket {
    rate: u64,
    burst: u64,
    /// Whole bytes available now.
    tokens: u64,
    /// The fraction of the next byte, in byte-nanoseconds-per-second
    /// (always < NS), so refills keep their fractions and the long-run rate
    /// is exact without 128-bit arithmetic (slow and large on 32-bit MIPS).
    frac: u64,
    last: u64,
}

impl Bucket {
    pub fn new(rate: u64, burst: u64, now: u64) -> Self {
        let burst = burst.max(1);
        Bucket {
            rate,
            burst,
            tokens: 0,
            frac: 0,
            last: now,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Changes the rate from `now` on; tokens already earned are kept.
    pub fn set_rate(&mut self, rate: u64, now: u64) {
        self.refill(now);
        self.rate = rate;
    }

    /// Changes the burst; tokens above the new burst are dropped.
    pub fn set_burst(&mut self, burst: u64) {
        self.burst = burst.max(1);
        self.cap();
    }

    /// A full bucket holds exactly `burst` bytes, no fraction.
    fn cap(&mut self) {
        if self.tokens >= self.burst {
            self.tokens = self.burst;
            self.frac = 0;
        }
    }

    fn refill(&mut self, now: u64) {
        let dt = now.saturating_sub(self.last);
        self.last = now.max(self.last);
        // dt * rate = (dt / NS) * rate * NS + (dt % NS) * rate: whole seconds
        // give whole bytes; the rest joins the fraction.
        match (dt % NS)
            .checked_mul(self.rate)
            .and_then(|f| f.checked_add(self.frac))
        {
            Some(f) => {
                let add = (dt / NS).saturating_mul(self.rate).saturating_add(f / NS);
                self.tokens = self.tokens.saturating_add(add);
                self.frac = f % NS;
            }
            // Only at rates above ~18 GB/s: the bucket is full anyway.
            None => self.tokens = self.burst,
        }
        self.cap();
    }

    /// How many bytes (up to `want`) may be sent now; they are taken from the
    /// bucket. Returns 0 when the caller must wait `wait_ns(now)`.
    pub fn take(&mut self, want: u64, now: u64) -> u64 {
        if self.rate == 0 {
            return want;
        }
        self.refill(now);
        let n = self.tokens.min(want);
        self.tokens -= n;
        n
    }

    /// Nanoseconds until `want` bytes (capped at the burst) are available.
    pub fn wait_ns(&mut self, want: u64, now: u64) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        self.refill(now);
        let need = want.min(self.burst);
        if self.tokens >= need {
            return 0;
        }
        // need > tokens, so the product is at least NS > frac.
        let missing = (need - self.tokens).saturating_mul(NS) - self.frac;
        missing.div_ceil(self.rate)
    }
}

/// Exponential back-off from `min` to `max` nanoseconds, with jitter in
/// [delay/2, delay] from a caller-supplied random value.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: u64,
    max: u64,
    next: u64,
}

impl Backoff {
    pub fn new(min: u64, max: u64) -> Self {
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; doubles the next one up to the cap.
    pub fn delay(&mut self, random: u32) -> u64 {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        let half = d / 2;
        half + scale(half, random)
    }

    /// The undithered delay that `delay` would start from.
    pub fn current(&self) -> u64 {
        self.next
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// `x * r / u32::MAX`, exactly, in 64-bit arithmetic: at most `x`.
pub fn scale(x: u64, r: u32) -> u64 {
    const M: u64 = u32::MAX as u64;
    let r = u64::from(r);
    // x = q * M + rem: q * r <= x, and rem * r < 2^64.
    (x / M) * r + (x % M) * r / M
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_takes_everything() {
        let mut b = Bucket::new(0, 64, 0);
        assert_eq!(b.take(1 << 20, 0), 1 << 20);
        assert_eq!(b.wait_ns(100, 0), 0);
    }

    #[test]
    fn long_run_rate_is_exact() {
        // 256 B/s for 100 simulated seconds, sending whenever allowed.
        let mut b = Bucket::new(256, 64, 0);
        let mut now = 0u64;
        let mut sent = 0u64;
        while now < 100 * NS {
            let n = b.take(64, now);
            sent += n;
            now += b.wait_ns(64, now).max(1);
        }
        assert!((25_536..=25_664).contains(&sent), "sent {sent}");
    }

    #[test]
    fn burst_caps_idle_accumulation() {
        let mut b = Bucket::new(1000, 100, 0);
        assert_eq!(b.take(10_000, 3600 * NS), 100);
    }

    #[test]
    fn clock_going_backwards_grants_nothing() {
        let mut b = Bucket::new(1000, 100, 10 * NS);
        assert_eq!(b.take(100, 5 * NS), 0);
        assert_eq!(b.take(100, 10 * NS), 0);
        assert_eq!(b.take(100, 10 * NS + NS / 10), 100);
    }

    #[test]
    fn rate_change_keeps_earned_tokens() {
        let mut b = Bucket::new(100, 1000, 0);
        b.set_rate(10, NS);
        assert_eq!(b.take(1000, NS), 100);
        assert_eq!(b.wait_ns(10, NS), NS);
    }

    #[test]
    fn smaller_burst_drops_excess_tokens() {
        let mut b = Bucket::new(1000, 1000, 0);
        b.set_burst(100);
        assert_eq!(b.take(1000, 10 * NS), 100);
        assert_eq!(b.burst(), 100);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(NS, 8 * NS);
        let d: Vec<u64> = (0..6).map(|_| b.delay(u32::MAX)).collect();
        assert_eq!(d, [NS, 2 * NS, 4 * NS, 8 * NS, 8 * NS, 8 * NS]);
        assert_eq!(b.delay(0), 4 * NS);
        b.reset();
        assert_eq!(b.current(), NS);
    }

    /// The client's retries with `--max-backoff 4s`, for any jitter: the
    /// first within 1 s, the second 1-2 s, then 2-4 s and never above the
    /// cap, so a server that comes back is tried within 4 s. (The process
    /// test's retry delays and its recovery within 7 s: 4 s plus a connect.)
    #[test]
    fn retries_stay_within_the_cap_for_any_jitter() {
        for r in (0..=64u64).map(|k| (k * u64::from(u32::MAX) / 64) as u32) {
            let mut b = Backoff::new(NS, 4 * NS);
            let d: Vec<u64> = (0..20).map(|_| b.delay(r)).collect();
            assert!((NS / 2..=NS).contains(&d[0]), "{d:?}");
            assert!((NS..=2 * NS).contains(&d[1]), "{d:?}");
            assert!(
                d[2..].iter().all(|v| (2 * NS..=4 * NS).contains(v)),
                "{d:?}"
            );
        }
    }

    #[test]
    fn scale_matches_wide_arithmetic() {
        for x in [0, 1, 7, u32::MAX as u64, 1 << 40, u64::MAX / 2, u64::MAX] {
            for r in [0, 1, 12345, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
                let wide = (x as u128 * r as u128 / u32::MAX as u128) as u64;
                assert_eq!(scale(x, r), wide, "x {x} r {r}");
            }
        }
    }

    #[test]
    fn fractions_carry_across_refills() {
        // 3 B/s refilled every third of a second: one byte each time, exactly.
        let mut b = Bucket::new(3, 100, 0);
        let mut got = 0;
        for i in 1..=300u64 {
            got += b.take(100, i * NS / 3 + u64::from(i % 3 == 0));
        }
        assert_eq!(got, 300);
    }
}
