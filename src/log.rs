//! Log lines on stderr, one per event, `LEVEL: message`: procd hands them to
//! logd and systemd to the journal, both of which add the time and the tag.

use std::io::Write;

fn line(level: &str, parts: &[&str]) {
    let mut s = String::with_capacity(128);
    s.push_str(level);
    for p in parts {
        s.push_str(p);
    }
    s.push('\n');
    // One write per line so concurrent writers do not interleave; a closed
    // stderr is not worth dying for.
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

pub fn info(msg: &str) {
    line("info: ", &[msg]);
}

pub fn warn(msg: &str) {
    line("warning: ", &[msg]);
}

pub fn error(msg: &str) {
    line("error: ", &[msg]);
}

/// `info` from parts, without `format!`.
pub fn info_parts(parts: &[&str]) {
    line("info: ", parts);
}

pub fn warn_parts(parts: &[&str]) {
    line("warning: ", parts);
}

/// Decimal text of `n` in a stack buffer.
pub struct Num {
    buf: [u8; 20],
    start: usize,
}

impl Num {
    pub fn new(mut n: u64) -> Num {
        let mut buf = [0u8; 20];
        let mut i = 20;
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Num { buf, start: i }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        core::str::from_utf8(&self.buf[self.start..]).unwrap_or("?")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers() {
        assert_eq!(super::Num::new(0).as_str(), "0");
        assert_eq!(
            super::Num::new(18446744073709551615).as_str(),
            "18446744073709551615"
        );
    }
}
