//! OpenWrt's usign: Ed25519 keys and signatures in usign's own files, the
//! signature `opkg update` checks (`Packages.sig` over the uncompressed
//! `Packages`).
//!
//! Every file is two lines: `untrusted comment: TEXT` and the base64 of a
//! packed struct (usign main.c): public key `"Ed" fingerprint[8] pub[32]`;
//! secret key `"Ed" "BK" kdfrounds:u32be salt[16] checksum[8] fingerprint[8]
//! seed[32] pub[32]` (checksum = SHA-512 of seed||pub, first 8 bytes; only
//! kdfrounds 0, no passphrase, as usign itself supports); signature `"Ed"
//! fingerprint[8] sig[64]`. The fingerprint is the key id that `usign -F`
//! prints and `opkg-key add` names the key file after: 16 hex digits,
//! without leading zeros.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha512};

use crate::Error;

const PUB_LEN: usize = 2 + 8 + 32;
const SEC_LEN: usize = 2 + 2 + 4 + 16 + 8 + 8 + 64;
const SIG_LEN: usize = 2 + 8 + 64;

pub struct SecretKey {
    pub fingerprint: [u8; 8],
    signing: SigningKey,
}

pub struct PublicKey {
    pub fingerprint: [u8; 8],
    verifying: VerifyingKey,
}

/// The key id as usign prints it (`%PRIx64` of the big-endian fingerprint).
pub fn key_id(fingerprint: &[u8; 8]) -> String {
    format!("{:x}", u64::from_be_bytes(*fingerprint))
}

/// The base64 line of a usign file: the second line; the first must be the
/// `untrusted comment:` line.
fn payload(text: &str, what: &str, len: usize) -> Result<Vec<u8>, Error> {
    let mut lines = text.lines();
    match lines.next() {
        Some(l) if l.starts_with("untrusted comment:") => {}
        _ => {
            return Err(Error::msg(format!(
                "{what}: first line is not 'untrusted comment: ...'"
            )))
        }
    }
    let line = lines.next().unwrap_or("").trim();
    let raw = STANDARD
        .decode(line)
        .map_err(|_| Error::msg(format!("{what}: second line is not base64")))?;
    if raw.len() != len || &raw[..2] != b"Ed" {
        return Err(Error::msg(format!(
            "{what}: not a usign Ed25519 {} ({} bytes, want {len} starting with 'Ed')",
            what,
            raw.len()
        )));
    }
    Ok(raw)
}

fn file_text(comment: &str, raw: &[u8]) -> String {
    format!("untrusted comment: {comment}\n{}\n", STANDARD.encode(raw))
}

impl SecretKey {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let raw = payload(text, "usign secret key", SEC_LEN)?;
        if &raw[2..4] != b"BK" {
            return Err(Error::msg("usign secret key: kdf is not 'BK'"));
        }
        if raw[4..8] != [0, 0, 0, 0] {
            return Err(Error::msg(
                "usign secret key: passphrase-protected keys are not supported (usign does not support them either)",
            ));
        }
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&raw[32..40]);
        let sec = &raw[40..104];
        let sum = Sha512::digest(sec);
        if sum[..8] != raw[24..32] {
            return Err(Error::msg(
                "usign secret key: checksum does not match (damaged key file)",
            ));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&sec[..32]);
        let signing = SigningKey::from_bytes(&seed);
        if signing.verifying_key().as_bytes() != &sec[32..64] {
            return Err(Error::msg(
                "usign secret key: public half does not match the secret half",
            ));
        }
        Ok(SecretKey {
            fingerprint,
            signing,
        })
    }

    /// A new key pair from random bytes: fingerprint (8) and seed (32), as
    /// `usign -G` reads them from /dev/urandom.
    pub fn generate(random: &[u8; 40]) -> Self {
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&random[..8]);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&random[8..40]);
        SecretKey {
            fingerprint,
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            fingerprint: self.fingerprint,
            verifying: self.signing.verifying_key(),
        }
    }

    /// The secret key file; `salt` only fills usign's unused salt field.
    pub fn to_file(&self, comment: &str, salt: &[u8; 16]) -> String {
        let mut sec = [0u8; 64];
        sec[..32].copy_from_slice(self.signing.as_bytes());
        sec[32..].copy_from_slice(self.signing.verifying_key().as_bytes());
        let mut raw = Vec::with_capacity(SEC_LEN);
        raw.extend_from_slice(b"EdBK");
        raw.extend_from_slice(&[0, 0, 0, 0]);
        raw.extend_from_slice(salt);
        raw.extend_from_slice(&Sha512::digest(sec)[..8]);
        raw.extend_from_slice(&self.fingerprint);
        raw.extend_from_slice(&sec);
        file_text(comment, &raw)
    }

    /// `usign -S`: the signature file over `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let sig = self.signing.sign(message);
        let mut raw = Vec::with_capacity(SIG_LEN);
        raw.extend_from_slice(b"Ed");
        raw.extend_from_slice(&self.fingerprint);
        raw.extend_from_slice(&sig.to_bytes());
        file_text(
            &format!("signed by key {}", key_id(&self.fingerprint)),
            &raw,
        )
    }
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<Self, Error> {
        let raw = payload(text, "usign public key", PUB_LEN)?;
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&raw[2..10]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[10..42]);
        let verifying = VerifyingKey::from_bytes(&key)
            .map_err(|_| Error::msg("usign public key: not a valid Ed25519 point"))?;
        Ok(PublicKey {
            fingerprint,
            verifying,
        })
    }

    pub fn to_file(&self, comment: &str) -> String {
        let mut raw = Vec::with_capacity(PUB_LEN);
        raw.extend_from_slice(b"Ed");
        raw.extend_from_slice(&self.fingerprint);
        raw.extend_from_slice(self.verifying.as_bytes());
        file_text(comment, &raw)
    }

    /// `usign -V`: Ok when `sig_file` is this key's valid signature of
    /// `message`. Like usign, a signature is looked up by the key's
    /// fingerprint and fails when it names another key.
    pub fn verify(&self, message: &[u8], sig_file: &str) -> Result<(), Error> {
        let raw = payload(sig_file, "usign signature", SIG_LEN)?;
        if raw[2..10] != self.fingerprint {
            let mut fp = [0u8; 8];
            fp.copy_from_slice(&raw[2..10]);
            return Err(Error::msg(format!(
                "signature is by key {}, not by key {}",
                key_id(&fp),
                key_id(&self.fingerprint)
            )));
        }
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&raw[10..74]);
        self.verifying
            .verify(message, &Signature::from_bytes(&sig))
            .map_err(|_| Error::msg("verification failed"))
    }
}
