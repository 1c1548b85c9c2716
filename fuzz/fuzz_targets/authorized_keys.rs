//! authorized_keys and .pub file text, as `authorize` reads it: the first
//! key line (`first_key_line`, `read_public_key`) and the duplicate-key
//! search over the existing file (`find_key`).
//!
//!
//! Input: the file text. A key derived from the input is also appended the
//! way `authorize` appends its line, and must then be found.
#![no_main]

use entropyservice::hostkey::{base64_decode, base64_encode, PublicKey, KEY_TYPES};
use entropyservice::admin::{authorize::find_key, first_key_line};
use libfuzzer_sys::fuzz_target;


/// The line `authorize` writes (explicit-options flavour).
fn authorize_line(key: &PublicKey) -> String {
    format!(
        "command=\"/usr/bin/entropyservice server --client c1\",no-pty,no-port-forwarding \
         {} {} entropyservice:c1\n",
        key.kind, key.b64
    )
}

fn append(text: &[u8], line: &str) -> Vec<u8> {
    let mut t = text.to_vec();
    if t.last().is_some_and(|&b| b != b'\n') {
        t.push(b'\n');
    }
    t.extend_from_slice(line.as_bytes());
    t
}

fn lines_before(t: &[u8]) -> usize {
    t.iter().filter(|&&b| b == b'\n').count()
}

fuzz_target!(|data: &[u8]| {
    // A valid key built from the input, to be searched for.
    let kind = KEY_TYPES[data.first().map_or(0, |b| *b as usize % KEY_TYPES.len())];
    let mut blob = (kind.len() as u32).to_be_bytes().to_vec();
    blob.extend_from_slice(kind.as_bytes());
    blob.extend_from_slice(&data[data.len().min(1)..data.len().min(65)]);
    let mut b64 = String::new();
    base64_encode(&blob, data.len() % 2 == 0, &mut b64);
    let key = PublicKey::parse(&format!("{kind} {b64}")).expect("built key parses");

    // Whatever the file holds, after authorize's append the key is found,
    // at the new line or an earlier one (so a rerun never appends twice).
    let line = authorize_line(&key);
    assert_eq!(line.matches('\n').count(), 1);
    let after = append(data, &line);
    let at = lines_before(&after); // 1-based number of the appended line
    let found = find_key(&after, &key).expect("appended key not found");
    assert!(found <= at, "found at {found}, appended at {at}");
    if let Some(n) = find_key(data, &key) {
        assert_eq!(found, n);
    }

    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    // first_key_line: the first line (trimmed) that parses, and no earlier one.
    match first_key_line(text) {
        Some((k, l)) => {
            let i = text.lines().position(|x| x.trim() == l).unwrap();
            assert!(text
                .lines()
                .take(i)
                .all(|x| PublicKey::parse(x.trim()).is_err()));
            assert_eq!(PublicKey::parse(l), Ok(k));
        }
        None => assert!(text.lines().all(|x| PublicKey::parse(x.trim()).is_err())),
    }
    // Every key line in the file is seen by the duplicate search: if
    // PublicKey::parse accepts a line, find_key finds that key there or
    // earlier. Otherwise `authorize` would add the same key a second time.
    // (Trimmed the way SSH servers and find_key see blanks: ASCII
    // whitespace. first_key_line's Unicode trim() also drops e.g. a leading
    // \v, which sshd would not skip; find_key then rightly misses it.)
    for (i, l) in text.split('\n').enumerate() {
        if let Ok(k) = PublicKey::parse(l.trim_ascii()) {
            let n = find_key(data, &k);
            assert!(
                n.is_some_and(|n| n <= i + 1),
                "key on line {} not found (got {n:?}): {l:?}",
                i + 1
            );
            // Same blob however it is padded.
            let bare = k.b64.trim_end_matches('=');
            assert_eq!(base64_decode(bare), base64_decode(&k.b64));
        }
    }
});
