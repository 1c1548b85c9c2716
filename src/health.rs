//! Continuous health tests on a byte stream (NIST SP 800-90B section 4.4),
//! assuming full entropy per byte (H = 8), plus a repeated-block test over
//! the last few KiB.
//!
//! What they catch: a stuck or heavily biased source, and a source that
//! replays what it sent a little earlier (a buffer or a file sent in a
//! loop). What they cannot catch: anything that looks random byte by byte,
//! such as a counter or a weak generator run through a hash or a cipher,
//! or the same output replayed to another session or after more than the
//! window. They are a tripwire for gross failures, not a certificate.
//!
//! Pure: no I/O, no clock. A `Health` that has failed stays failed, so a
//! caller can never credit bytes after a failure by mistake.

/// Repetition Count Test cutoff at alpha = 2^-40 for H = 8: C = 1 + ceil(40/8).
pub const RCT_CUTOFF: u32 = 6;
/// Adaptive Proportion Test window for non-binary data.
pub const APT_WINDOW: u32 = 512;
/// Adaptive Proportion Test cutoff at alpha = 2^-40, H = 8, W = 512.
pub const APT_CUTOFF: u32 = 19;
/// Block size of the repeated-block test.
pub const BLOCK: usize = 32;
/// Slots of the repeated-block test's digest table (4 KiB). It takes the
/// digest of the 32 bytes ending at every aligned block end and at about
/// every 32nd other position; a new digest displaces the one in its slot,
/// so a repeat up to 8 KiB back is found with at least even odds at each
/// such position (a 4 KiB block sent again fails within its first ~100
/// bytes), and longer repeats still often are.
pub const SLOTS: usize = 512;
/// Polynomial base of the rolling hash over the last `BLOCK` bytes.
const BASE: u64 = 0x0000_0100_0000_01b3;
/// BASE^BLOCK: the weight of the byte that leaves the window.
const BASE_OUT: u64 = {
    let mut p = 1u64;
    let mut i = 0;
    while i < BLOCK {
        p = p.wrapping_mul(BASE);
        i += 1;
    }
    p
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The same byte came `RCT_CUTOFF` times in a row.
    Repetition,
    /// One byte value came `APT_CUTOFF` times within an APT window.
    Proportion,
    /// A 32-byte stretch equal to one seen earlier (see `SLOTS`).
    RepeatedBlock,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Repetition => "repetition count test failed (the same byte 6 times in a row)",
            Failure::Proportion => {
                "adaptive proportion test failed (one byte value 19 times in 512)"
            }
            Failure::RepeatedBlock => "repeated-block test failed (a 32-byte block was repeated)",
        }
    }
}

/// State of the three tests across calls.
#[derive(Clone, Debug)]
pub struct Health {
    last: Option<u8>,
    run: u32,
    apt_value: u8,
    apt_count: u32,
    apt_seen: u32,
    /// The last BLOCK bytes (a ring) and their rolling hash.
    window: [u8; BLOCK],
    hash: u64,
    /// Bytes seen so far.
    seen: u64,
    /// Digests seen, indexed by their low bits (0: empty).
    digests: [u64; SLOTS],
    failed: Option<Failure>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub const fn new() -> Self {
        Health {
            last: None,
            run: 0,
            apt_value: 0,
            apt_count: 0,
            apt_seen: 0,
            window: [0; BLOCK],
            hash: 0,
            seen: 0,
            digests: [0; SLOTS],
            failed: None,
        }
    }

    /// The first failure seen, if any. Once set it never clears.
    pub fn failure(&self) -> Option<Failure> {
        self.failed
    }

    /// Runs every byte of `data` through the tests. Returns the first failure
    /// (now or earlier); `Ok` means every byte so far passed.
    pub fn check(&mut self, data: &[u8]) -> Result<(), Failure> {
        if let Some(f) = self.failed {
            return Err(f);
        }
        for &b in data {
            if let Err(f) = self.byte(b) {
                self.failed = Some(f);
                return Err(f);
            }
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), Failure> {
        // Repetition Count Test.
        if self.last == Some(b) {
            self.run += 1;
            if self.run >= RCT_CUTOFF {
                return Err(Failure::Repetition);
            }
        } else {
            self.last = Some(b);
            self.run = 1;
        }
        // Adaptive Proportion Test: the first byte of a window is the sample
        // counted through the rest of it.
        if self.apt_seen == 0 {
            self.apt_value = b;
            self.apt_count = 1;
        } else if b == self.apt_value {
            self.apt_count += 1;
            if self.apt_count >= APT_CUTOFF {
                return Err(Failure::Proportion);
            }
        }
        self.apt_seen += 1;
        if self.apt_seen == APT_WINDOW {
            self.apt_seen = 0;
        }
        self.repeated_block(b)
    }

    /// Repeated-block test: a rolling hash of the last 32 bytes is
    /// remembered at every aligned block end and wherever its digest has 5
    /// leading zero bits (positions chosen by content, so a repeat at any
    /// offset, not only a multiple of 32, meets the same positions again).
    /// A digest found in the table is a failure: for good data two equal
    /// 64-bit digests of different bytes come once in 2^64.
    fn repeated_block(&mut self, b: u8) -> Result<(), Failure> {
        let slot = (self.seen % BLOCK as u64) as usize;
        let out = self.window[slot];
        self.window[slot] = b;
        self.seen += 1;
        self.hash = self
            .hash
            .wrapping_mul(BASE)
            .wrapping_add(b as u64 + 1)
            .wrapping_sub(if self.seen > BLOCK as u64 {
                (out as u64 + 1).wrapping_mul(BASE_OUT)
            } else {
                0
            });
        if self.seen < BLOCK as u64 {
            return Ok(());
        }
        let d = mix(self.hash).max(1);
        if self.seen % BLOCK as u64 != 0 && d >> 59 != 0 {
            return Ok(());
        }
        let slot = &mut self.digests[d as usize % SLOTS];
        if *slot == d {
            return Err(Failure::RepeatedBlock);
        }
        *slot = d;
        Ok(())
    }
}

/// A 64-bit finalizer (MurmurHash3's fmix64): spreads every input bit over
/// the digest, whose top bits pick the content-defined positions.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift: a deterministic stream that passes the tests.
    fn pseudo(n: usize, mut s: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn good_stream_passes() {
        let mut h = Health::new();
        assert_eq!(h.check(&pseudo(1 << 20, 0x1234_5678_9abc_def1)), Ok(()));
    }

    #[test]
    fn constant_stream_fails_at_the_sixth_byte() {
        let mut h = Health::new();
        assert_eq!(h.check(&[7; 5]), Ok(()));
        assert_eq!(h.check(&[7]), Err(Failure::Repetition));
        // Stays failed, whatever comes next.
        assert_eq!(h.check(&pseudo(64, 9)), Err(Failure::Repetition));
    }

    #[test]
    fn biased_stream_fails_proportion() {
        let mut data = pseudo(512, 3);
        for (i, b) in data.iter_mut().enumerate() {
            if i % 20 == 0 {
                *b = 0xAA;
            }
        }
        data[0] = 0xAA;
        let mut h = Health::new();
        assert_eq!(h.check(&data), Err(Failure::Proportion));
    }

    #[test]
    fn repeated_block_fails() {
        let block = pseudo(32, 11);
        let mut h = Health::new();
        assert_eq!(h.check(&block), Ok(()));
        assert_eq!(h.check(&block), Err(Failure::RepeatedBlock));
    }

    /// A 4 KiB buffer sent in a loop (a file replayed, a stuck DMA ring):
    /// consecutive 32-byte blocks all differ, yet it fails within the
    /// first repeat.
    #[test]
    fn a_4096_byte_block_repeated_fails() {
        let block = pseudo(4096, 21);
        let mut h = Health::new();
        assert_eq!(h.check(&block), Ok(()));
        assert_eq!(h.check(&block[..512]), Err(Failure::RepeatedBlock));
    }

    /// Repeats at offsets that are not a multiple of 32 fail too, by the
    /// content-defined positions, within a few hundred bytes.
    #[test]
    fn unaligned_repeats_fail() {
        for period in [100, 1000, 4100, 6001] {
            let block = pseudo(period, period as u64);
            let mut h = Health::new();
            assert_eq!(h.check(&block), Ok(()), "period {period}");
            let again: Vec<u8> = block.iter().cycle().take(1024).copied().collect();
            assert_eq!(
                h.check(&again),
                Err(Failure::RepeatedBlock),
                "period {period}"
            );
        }
    }

    /// Memory is fixed, and a full table raises no false alarm on good data.
    #[test]
    fn memory_is_fixed() {
        assert!(core::mem::size_of::<Health>() <= 4096 + 128);
        let mut h = Health::new();
        assert_eq!(h.check(&pseudo(4 << 20, 8)), Ok(()));
    }

    #[test]
    fn split_input_gives_the_same_verdict() {
        let mut data = pseudo(100, 5);
        data[40..46].fill(1);
        let mut whole = Health::new();
        let mut parts = Health::new();
        let w = whole.check(&data);
        let p = data.chunks(7).map(|c| parts.check(c)).find(|r| r.is_err());
        assert_eq!(w, Err(Failure::Repetition));
        assert_eq!(p, Some(w));
    }
}
