//! Host key / public key lines (`--host-key`, `hostkey` output, .pub files)
//! -> hostkey::PublicKey::parse, plus the base64 and SHA-256 helpers.
//!
//! Input: any bytes. As text (if UTF-8) it is a key line and a base64
//! string; as bytes it is a blob to encode and hash.
#![no_main]

use entropyservice::hostkey::{base64_decode, base64_encode, sha256, PublicKey, KEY_TYPES};
use libfuzzer_sys::fuzz_target;
use sha2::Digest;

fn b64(data: &[u8], pad: bool) -> String {
    let mut s = String::new();
    base64_encode(data, pad, &mut s);
    s
}

fn check_key(line: &str) {
    let Ok(k) = PublicKey::parse(line) else {
        return;
    };
    let mut words = line.split_ascii_whitespace();
    assert_eq!(Some(k.kind.as_str()), words.next(), "{line:?}");
    assert_eq!(Some(k.b64.as_str()), words.next(), "{line:?}");
    assert!(KEY_TYPES.contains(&k.kind.as_str()));
    assert!(line.len() <= 8192);
    // The blob starts with the SSH string holding the type word.
    let blob = base64_decode(&k.b64).expect("accepted base64 decodes");
    let n = u32::from_be_bytes(blob[..4].try_into().unwrap()) as usize;
    assert_eq!(&blob[4..4 + n], k.kind.as_bytes());
    // line() is what goes into known_hosts: it must parse back to the
    // same key, be one line, and carry no comment.
    let l = k.line();
    assert!(!l.contains(['\n', '\r']), "{l:?}");
    assert_eq!(l.split_ascii_whitespace().count(), 2, "{l:?}");
    assert_eq!(PublicKey::parse(&l), Ok(k.clone()), "{line:?}");
    // Comments and surrounding blanks do not change the key.
    assert_eq!(
        PublicKey::parse(&format!("  {l}  any comment ")),
        Ok(k.clone())
    );
    // Fingerprint as ssh-keygen -l prints it: SHA-256 of the blob.
    let fp = k.fingerprint();
    let want = format!("SHA256:{}", b64(&sha2::Sha256::digest(&blob), false));
    assert_eq!(fp, want);
    assert_eq!(fp.len(), 7 + 43);
}

fuzz_target!(|data: &[u8]| {
    // SHA-256 against the sha2 crate.
    assert_eq!(sha256(data)[..], sha2::Sha256::digest(data)[..]);

    // Encode -> decode round trip, padded and not.
    let padded = b64(data, true);
    let bare = b64(data, false);
    assert_eq!(padded.len() % 4, 0);
    assert_eq!(padded.trim_end_matches('='), bare);
    assert_eq!(base64_decode(&padded).as_deref(), Some(data));
    assert_eq!(base64_decode(&bare).as_deref(), Some(data));

    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    // Decode accepts only canonical base64 (any number of trailing '=').
    if let Some(v) = base64_decode(text) {
        assert_eq!(b64(&v, false), text.trim_end_matches('='), "{text:?}");
    }
    check_key(text);
    // Also with a known type word in front, and as a full blob built from
    // the input, so the fuzzer reaches the accepting paths. One type per
    // input (by length) keeps executions fast.
    let kind = KEY_TYPES[data.len() % KEY_TYPES.len()];
    check_key(&format!("{kind} {text}"));
    let mut blob = (kind.len() as u32).to_be_bytes().to_vec();
    blob.extend_from_slice(kind.as_bytes());
    blob.extend_from_slice(data);
    let line = format!("{kind} {}", b64(&blob, data.len() % 2 == 0));
    check_key(&line);
    assert!(
        PublicKey::parse(&line).is_ok() || line.len() > 8192,
        "{line:?}"
    );
});
