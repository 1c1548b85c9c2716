//! SSH public key lines (`TYPE BASE64 [comment]`): validation and SHA256
//! fingerprints as OpenSSH and Dropbear print them. Pure, no I/O.

/// Key types an SSH client here may negotiate.
pub const KEY_TYPES: [&str; 6] = [
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-dss",
];

/// A validated public key: its type and base64 blob (comment dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: String,
    pub b64: String,
    blob: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    Empty,
    UnknownType,
    BadBase64,
    TypeMismatch,
    TooLong,
}

impl KeyError {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyError::Empty => {
                "empty key; expected \"TYPE BASE64\" such as \"ssh-ed25519 AAAA...\""
            }
            KeyError::UnknownType => {
                "unknown key type; expected ssh-ed25519, ssh-rsa or ecdsa-sha2-*"
            }
            KeyError::BadBase64 => "the key's base64 part does not decode",
            KeyError::TypeMismatch => "the key's type word does not match the type inside the key",
            KeyError::TooLong => "key longer than 8 KiB",
        }
    }
}

impl PublicKey {
    /// Parses `TYPE BASE64 [comment]`; the blob's embedded type must match.
    pub fn parse(line: &str) -> Result<PublicKey, KeyError> {
        if line.len() > 8192 {
            return Err(KeyError::TooLong);
        }
        let mut words = line.split_ascii_whitespace();
        let kind = words.next().ok_or(KeyError::Empty)?;
        if !KEY_TYPES.contains(&kind) {
            return Err(KeyError::UnknownType);
        }
        let b64 = words.next().ok_or(KeyError::BadBase64)?;
        let blob = base64_decode(b64).ok_or(KeyError::BadBase64)?;
        let inner = blob
            .get(..4)
            .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .and_then(|n| blob.get(4..4 + n))
            .ok_or(KeyError::BadBase64)?;
        if inner != kind.as_bytes() {
            return Err(KeyError::TypeMismatch);
        }
        Ok(PublicKey {
            kind: kind.into(),
            b64: b64.into(),
            blob,
        })
    }

    /// `SHA256:...` as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let mut s = String::from("SHA256:");
        base64_encode(&sha256(&self.blob), false, &mut s);
        s
    }

    /// `TYPE BASE64`, the form used in known_hosts.
    pub fn line(&self) -> String {
        let mut s = String::with_capacity(self.kind.len() + self.b64.len() + 1);
        s.push_str(&self.kind);
        s.push(' ');
        s.push_str(&self.b64);
        s
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8], pad: bool, out: &mut String) {
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        let chars = c.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let t = s.trim_end_matches('=');
    // At most the two '=' an encoder writes (so a key has one spelling).
    if s.len() - t.len() > 2 {
        return None;
    }
    let s = t;
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes() {
        let v = B64.iter().position(|&c| c == b)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be zero padding, and a lone 6-bit group is invalid.
    (bits < 6 && acc & ((1 << bits) - 1) == 0).then_some(out)
}

/// SHA-256 (FIPS 180-4), for host-key fingerprints only.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, c) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for (a, b) in h.iter_mut().zip(v) {
            *a = a.wrapping_add(b);
        }
    }
    let mut out = [0u8; 32];
    for (o, v) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_answers() {
        let mut s = String::new();
        base64_encode(&sha256(b"abc"), true, &mut s);
        assert_eq!(s, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
        let mut s = String::new();
        base64_encode(&sha256(&[b'a'; 1000]), true, &mut s);
        assert_eq!(s, "Qe3s5C1j6Nm/UVqbppMuHCDLyfWl0TRkWttdsblzfqM=");
    }

    #[test]
    fn base64_round_trip() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let mut s = String::new();
            base64_encode(&data, true, &mut s);
            assert_eq!(base64_decode(&s), Some(data));
        }
        assert_eq!(base64_decode("A"), None);
        assert_eq!(base64_decode("AB"), None);
        assert_eq!(base64_decode("a*=="), None);
        // Found by fuzzing: three '=' made a second spelling of the same key.
        assert_eq!(base64_decode("AAAA==="), None);
    }

    #[test]
    fn key_lines() {
        // ed25519 blob: string "ssh-ed25519" + string of 32 bytes.
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        blob.extend_from_slice(&[7; 32]);
        let mut b64 = String::new();
        base64_encode(&blob, true, &mut b64);
        let line = format!("ssh-ed25519 {b64} me@host");
        let k = PublicKey::parse(&line).unwrap();
        assert_eq!(k.line(), format!("ssh-ed25519 {b64}"));
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert_eq!(k.fingerprint().len(), 7 + 43);
        assert_eq!(
            PublicKey::parse(&format!("ssh-rsa {b64}")),
            Err(KeyError::TypeMismatch)
        );
        assert_eq!(
            PublicKey::parse("ssh-ed25519 !!!"),
            Err(KeyError::BadBase64)
        );
        assert_eq!(PublicKey::parse("bogus AAAA"), Err(KeyError::UnknownType));
        assert_eq!(PublicKey::parse(""), Err(KeyError::Empty));
        assert_eq!(
            PublicKey::parse("ssh-ed25519 AAAA"),
            Err(KeyError::BadBase64)
        );
    }
}
