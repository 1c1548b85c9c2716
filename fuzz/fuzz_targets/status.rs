//! The status file (`key: value` lines) -> status::parse and
//! status::render, text and JSON. The JSON must always be valid (checked
//! with serde_json) and say exactly what parse() kept.
//!
//! Input: the file text.
#![no_main]

use entropyservice::kernel::Info;
use entropyservice::parse::decimal;
use entropyservice::status::{parse, render, State, FIELDS};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn check(text: &str, k: Info) {
    let pairs = parse(text);
    assert!(pairs.len() <= FIELDS.len());
    for (i, (key, v)) in pairs.iter().enumerate() {
        assert!(FIELDS.contains(key));
        assert!(v.len() <= 512);
        assert!(!v.contains('\n'));
        assert!(pairs[..i].iter().all(|(o, _)| o != key), "{key} twice");
        assert!(
            text.lines().take(64).any(|l| l == format!("{key}: {v}")),
            "{key}: {v:?} is not a line of the file"
        );
    }

    // JSON does not depend on `now`.
    let j = render(Some(text), None, k, true, 0);
    assert!(j.ends_with("}\n"));
    assert_eq!(j.matches('\n').count(), 1, "JSON output is one line: {j:?}");
    let v: Value = match serde_json::from_str(&j) {
        Ok(v) => v,
        Err(e) => panic!("invalid JSON ({e}) for {text:?}:\n{j}"),
    };
    let obj = v.as_object().expect("top level object");
    assert_eq!(obj.len(), 2);
    let kernel = obj["kernel"].as_object().expect("kernel object");
    assert_eq!(kernel["crng_ready"].as_bool(), Some(k.crng_ready));
    assert_eq!(
        kernel["entropy_avail"].as_i64(),
        Some(k.entropy_avail.into())
    );
    assert_eq!(kernel["poolsize"].as_u64(), Some(k.poolsize.into()));
    let client = obj["client"].as_object().expect("client object");
    assert_eq!(client.len(), pairs.len() + 1, "{j}");
    assert!(client["running"].is_boolean());
    for (key, val) in &pairs {
        match &client[*key] {
            Value::String(s) => assert_eq!(s, val),
            Value::Number(n) => {
                assert_eq!(n.as_u64(), decimal(val), "{key}: {val:?} -> {j}")
            }
            other => panic!("{key}: {other:?}"),
        }
    }

    for now in [0, u64::MAX] {
        let t = render(Some(text), None, k, false, now);
        assert!(t.ends_with('\n'));
        // One output line per kernel field, the client line, and one per
        // field kept (an empty last_error is left out): a value cannot
        // inject extra lines.
        let empty_error = pairs
            .iter()
            .any(|(k, v)| *k == "last_error" && v.is_empty());
        assert_eq!(
            t.matches('\n').count(),
            3 + 1 + pairs.len() - usize::from(empty_error),
            "{t:?}"
        );
    }
}

fn prefix_bytes(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let k = Info {
        poolsize: u32::from_le_bytes(*data.first_chunk().unwrap_or(&[0; 4])),
        entropy_avail: i32::from_le_bytes(*data.last_chunk().unwrap_or(&[0; 4])),
        crng_ready: data.len() % 2 == 1,
    };
    check(
        &text,
        if data.len() % 3 == 0 {
            Info::default()
        } else {
            k
        },
    );

    // A State written by the client reads back field for field.
    if let Some(first) = text.lines().next() {
        let st = State {
            pid: 1,
            mode: "topup",
            state: "idle",
            server: first.chars().take(100).collect(),
            // parse() drops values over 512 bytes (see the report).
            last_error: prefix_bytes(&text, 512),
            ..State::default()
        };
        let file = st.text();
        let p = parse(&file);
        assert_eq!(p.len(), FIELDS.len(), "{file:?}");
        let get = |key: &str| p.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        assert_eq!(get("pid"), Some("1"));
        assert_eq!(
            get("server"),
            Some(st.server.strip_suffix('\r').unwrap_or(&st.server))
        );
        let j = render(Some(&file), None, k, true, 0);
        assert!(serde_json::from_str::<Value>(&j).is_ok(), "{j}");
    }
});
