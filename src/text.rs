//! Building text without `format!` (whose machinery costs flash on a
//! router): `msg` joins parts, `Num` and `Seconds` are numbers in stack
//! buffers, `last_line` bounds what a child process said.

/// Builds a message from parts without `format!`.
pub fn msg(parts: &[&str]) -> String {
    parts.concat()
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

const NS: u64 = 1_000_000_000;

/// Nanoseconds as seconds with one decimal ("0.7", "12.0"), for log lines.
pub struct Seconds {
    buf: heapless::String<24>,
}

impl Seconds {
    pub fn new(ns: u64) -> Seconds {
        let mut buf = heapless::String::new();
        let _ = buf.push_str(Num::new(ns / NS).as_str());
        let _ = buf.push('.');
        let _ = buf.push_str(Num::new(ns % NS / (NS / 10)).as_str());
        Seconds { buf }
    }

    pub fn as_str(&self) -> &str {
        &self.buf
    }
}

/// The last non-empty line of a child's stderr, trimmed, cut to at most
/// `max` bytes on a character boundary; "no message" when there is none.
pub fn last_line(stderr: &str, max: usize) -> &str {
    let last = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("no message");
    let mut end = last.len().min(max);
    while !last.is_char_boundary(end) {
        end -= 1;
    }
    &last[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(Num::new(0).as_str(), "0");
        assert_eq!(
            Num::new(18446744073709551615).as_str(),
            "18446744073709551615"
        );
    }

    #[test]
    fn seconds_have_one_decimal() {
        assert_eq!(Seconds::new(0).as_str(), "0.0");
        assert_eq!(Seconds::new(734_000_000).as_str(), "0.7");
        assert_eq!(Seconds::new(600 * NS + NS / 2).as_str(), "600.5");
    }

    #[test]
    fn messages_join_their_parts() {
        assert_eq!(msg(&["a", "", "bc"]), "abc");
        assert_eq!(msg(&[]), "");
    }

    #[test]
    fn last_line_is_bounded_on_a_character_boundary() {
        assert_eq!(last_line("", 10), "no message");
        assert_eq!(last_line("first\n  last  \n\n \n", 10), "last");
        assert_eq!(last_line("0123456789abc", 10), "0123456789");
        // 'é' is two bytes, at 9 and 10: a cut at 10 would split it.
        let l = "012345678é!";
        assert_eq!(last_line(l, 10), "012345678");
        assert_eq!(last_line(l, 11), "012345678é");
        // Every bound gives a prefix that is valid text, never more.
        let l = "ключ не принят сервером";
        for max in 0..=l.len() + 1 {
            let cut = last_line(l, max);
            assert!(cut.len() <= max && l.starts_with(cut), "{max}: {cut}");
            assert!(cut.len() + 1 >= max.min(l.len()), "{max}: {cut}");
        }
    }
}
