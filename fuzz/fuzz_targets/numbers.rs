//! Numeric and name options: parse::decimal, parse::duration_ns,
//! parse::is_safe_name, parse::is_safe_host, parse::user_host (and
//! ssh::check_target, which gates what goes on the ssh command line), and
//! ssh::check_runtime_dir (the path that goes into OpenSSH's
//! UserKnownHostsFile=). Each is checked against an independent oracle.
//!
//! Input: the option value as text.
#![no_main]

use entropyservice::parse::{decimal, duration_ns, is_safe_host, is_safe_name, user_host};
use entropyservice::ssh::{check_runtime_dir, check_target, host_with_port};
use libfuzzer_sys::fuzz_target;

/// How OpenSSH (misc.c argv_split, 8.7+) splits an option's value into
/// words: whitespace separates, quotes group, a backslash escapes a quote,
/// a backslash or (outside quotes) a space.
fn openssh_words(s: &str) -> Vec<String> {
    let b: Vec<char> = s.chars().collect();
    let (mut words, mut i) = (Vec::new(), 0);
    while i < b.len() {
        while i < b.len() && (b[i] == ' ' || b[i] == '\t') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let (mut w, mut quote) = (String::new(), None);
        while i < b.len() {
            let c = b[i];
            if c == '\\'
                && i + 1 < b.len()
                && (matches!(b[i + 1], '\'' | '"' | '\\') || quote.is_none() && b[i + 1] == ' ')
            {
                i += 1;
                w.push(b[i]);
            } else if quote.is_none() && (c == ' ' || c == '\t') {
                break;
            } else if quote.is_none() && (c == '"' || c == '\'') {
                quote = Some(c);
            } else if quote == Some(c) {
                quote = None;
            } else {
                w.push(c);
            }
            i += 1;
        }
        words.push(w);
    }
    words
}

fn oracle_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u128 = 0;
    for b in s.bytes() {
        v = v * 10 + u128::from(b - b'0');
    }
    u64::try_from(v).ok()
}

fn oracle_duration(s: &str) -> Option<u64> {
    const UNITS: [(&str, u128); 5] = [
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
        ("d", 86_400_000_000_000),
    ];
    // "ms" before "s"; with no unit the number is seconds.
    let (num, mul) = UNITS
        .iter()
        .find_map(|(u, m)| s.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((s, 1_000_000_000));
    let v = u128::from(oracle_decimal(num)?) * mul;
    (v <= 100 * 365 * 86_400_000_000_000).then(|| v as u64)
}

fn name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._-".contains(&b)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = core::str::from_utf8(data) else {
        return;
    };

    let d = decimal(s);
    assert_eq!(d, oracle_decimal(s), "decimal({s:?})");
    if let Some(n) = d {
        // Leading zeros are accepted; otherwise the text is n's own.
        let t = s.trim_start_matches('0');
        assert_eq!(
            if t.is_empty() {
                "0".to_string()
            } else {
                t.to_string()
            },
            n.to_string()
        );
        assert_eq!(decimal(&n.to_string()), Some(n));
    }

    let dur = duration_ns(s);
    assert_eq!(dur, oracle_duration(s), "duration_ns({s:?})");
    if let Some(v) = dur {
        assert!(v <= 100 * 365 * 86_400 * 1_000_000_000);
    }

    let name = is_safe_name(s);
    assert_eq!(
        name,
        (1..=64).contains(&s.len()) && !s.starts_with(['.', '-']) && s.bytes().all(name_char),
        "is_safe_name({s:?})"
    );
    if name {
        // Safe in a file name and a log line: no separators, no "..".
        assert!(!s.contains(['/', ' ', '\n', '\0', '@', ':']));
        assert!(s != "." && s != "..");
    }

    let host = is_safe_host(s);
    // A link-local address may carry its zone: `IPV6%ZONE`, the zone 1-15
    // name characters.
    let want = match s.split_once('%') {
        Some((a, z)) => {
            a.parse::<std::net::Ipv6Addr>().is_ok()
                && (1..=15).contains(&z.len())
                && z.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        None => {
            (1..=253).contains(&s.len())
                && !s.starts_with('-')
                && s.bytes().all(|b| name_char(b) || b == b':')
        }
    };
    assert_eq!(host, want, "is_safe_host({s:?})");

    match user_host(s) {
        Some((user, h)) => {
            // Never an option to ssh, never more than one argument.
            assert!(!h.starts_with('-'), "{s:?}");
            assert!(is_safe_host(h));
            assert!(!h.contains(['@', ' ', '\t', '\n', '=', ',']));
            match user {
                Some(u) => {
                    assert!(is_safe_name(u) && !u.starts_with('-'));
                    assert_eq!(format!("{u}@{h}"), s);
                }
                None => {
                    assert_eq!(h, s);
                    assert!(!s.contains('@'));
                }
            }
            // Accepted unless it is HOST:PORT (refused with -p advice).
            assert_eq!(
                check_target(h, user.unwrap_or("root")).is_ok(),
                host_with_port(h).is_none()
            );
        }
        None => {
            // Rejected only when some part is unsafe.
            match s.split_once('@') {
                Some((u, h)) => assert!(!is_safe_name(u) || !is_safe_host(h), "{s:?}"),
                None => assert!(!is_safe_host(s), "{s:?}"),
            }
        }
    }
    if let Some((u, h)) = s.split_once('@') {
        assert_eq!(
            check_target(h, u).is_ok(),
            is_safe_host(h) && is_safe_name(u) && host_with_port(h).is_none()
        );
    }

    // A runtime directory is accepted only if OpenSSH reads the known_hosts
    // path below it as exactly that one path: one word, nothing to unquote,
    // no `%` token, no `~` to expand.
    let ok = check_runtime_dir(s).is_ok();
    let kh = format!("{s}/home-1/.ssh/known_hosts");
    let plain = openssh_words(&kh) == [kh.clone()]
        && !kh.contains(['%', '"', '\'', '\\'])
        && !kh.starts_with('~')
        && !kh
            .chars()
            .any(|c| c.is_ascii_control() || c.is_ascii_whitespace());
    assert_eq!(ok, plain, "check_runtime_dir({s:?})");
});
