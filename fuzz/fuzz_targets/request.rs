//! SSH_ORIGINAL_COMMAND -> parse::request.
//!
//! The input is the command text. The server reads it with
//! `std::env::var`, so only UTF-8 reaches `request`; non-UTF-8 inputs are
//! skipped here (see the note on `unwrap_or_default` in the report).
#![no_main]

use entropyservice::parse::{decimal, request, Request, RequestError, MAX_REQUEST};
use libfuzzer_sys::fuzz_target;

const MAXES: [u64; 8] = [0, 1, 2, 63, 64, 4096, 1 << 20, u64::MAX];

fn check(cmd: &str, max: u64) {
    let r = request(cmd, max);
    let words: Vec<&str> = cmd.split_ascii_whitespace().collect();
    if cmd.len() > MAX_REQUEST {
        assert_eq!(r, Err(RequestError::TooLong), "{cmd:?}");
        return;
    }
    match r {
        Ok(Request::Stream) => assert!(
            words.is_empty() || words == ["cat", "/dev/random"] || words == ["cat", "/dev/urandom"],
            "Stream for {cmd:?}"
        ),
        Ok(Request::Get(n)) => {
            assert!(n >= 1 && n <= max, "Get({n}) with max {max} for {cmd:?}");
            assert_eq!(words.len(), 2, "{cmd:?}");
            assert_eq!(words[0], "get", "{cmd:?}");
            assert!(words[1].bytes().all(|b| b.is_ascii_digit()), "{cmd:?}");
            assert_eq!(decimal(words[1]), Some(n), "{cmd:?}");
        }
        Err(e) => {
            assert!(!e.as_str().is_empty());
            // The words of every accepted shape are rejected only for a
            // reason that matches the shape.
            match e {
                RequestError::TooLong => panic!("TooLong for {} bytes", cmd.len()),
                RequestError::UnknownVerb => {
                    assert!(!words.is_empty(), "{cmd:?}");
                    assert!(
                        words[0] != "get"
                            && !(words.len() == 2
                                && words[0] == "cat"
                                && matches!(words[1], "/dev/random" | "/dev/urandom")),
                        "UnknownVerb for {cmd:?}"
                    );
                }
                RequestError::MissingCount => assert_eq!(words, ["get"], "{cmd:?}"),
                RequestError::BadCount => {
                    assert!(words.len() >= 2 && words[0] == "get", "{cmd:?}");
                    assert!(matches!(decimal(words[1]), None | Some(0)), "{cmd:?}");
                }
                RequestError::TooLarge => {
                    assert!(words.len() == 2 && words[0] == "get", "{cmd:?}");
                    assert!(decimal(words[1]).is_some_and(|n| n > max), "{cmd:?}");
                }
                RequestError::TrailingJunk => {
                    assert!(words.len() > 2 && words[0] == "get", "{cmd:?}");
                    assert!(decimal(words[1]).is_some(), "{cmd:?}");
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(cmd) = core::str::from_utf8(data) else {
        return;
    };
    for max in MAXES {
        check(cmd, max);
    }
    // The boundary around the requested count itself.
    if let Some(n) = cmd.split_ascii_whitespace().nth(1).and_then(decimal) {
        check(cmd, n);
        check(cmd, n.saturating_sub(1));
        check(cmd, n.saturating_add(1));
    }
    // Raising max never turns an accepted request into a rejected one or
    // changes what was accepted.
    let mut prev: Option<Request> = None;
    for max in MAXES {
        match (prev, request(cmd, max)) {
            (Some(p), r) => assert_eq!(r, Ok(p), "{cmd:?} max {max}"),
            (None, Ok(r)) => prev = Some(r),
            (None, Err(_)) => {}
        }
    }
});
