//! Continuous health tests on a byte stream (NIST SP 800-90B section 4.4),
//! assuming full entropy per byte (H = 8), plus a repeated-block test.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The same byte came `RCT_CUTOFF` times in a row.
    Repetition,
    /// One byte value came `APT_CUTOFF` times within an APT window.
    Proportion,
    /// A 32-byte block equal to the block before it.
    RepeatedBlock,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Repetition => "repetition count test failed (the same byte 6 times in a row)",
            Failure::Proportion => {
                "adaptive proportion test failed (one byte value 19 times in 512)"
            }
            Failure::RepeatedBlock => "a 32-byte block was repeated",
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
    block: [u8; BLOCK],
    prev_block: [u8; BLOCK],
    block_len: usize,
    have_prev: bool,
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
            block: [0; BLOCK],
            prev_block: [0; BLOCK],
            block_len: 0,
            have_prev: false,
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
        // Repeated-block test.
        self.block[self.block_len] = b;
        self.block_len += 1;
        if self.block_len == BLOCK {
            if self.have_prev && self.block == self.prev_block {
                return Err(Failure::RepeatedBlock);
            }
            self.prev_block = self.block;
            self.have_prev = true;
            self.block_len = 0;
        }
        Ok(())
    }
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
