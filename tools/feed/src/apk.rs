//! apk v3 packages and `packages.adb` indexes as `apk mkpkg` and `apk mkndx`
//! (apk-tools 3.0, src/app_mkpkg.c, src/app_mkndx.c) write them, their
//! signatures (src/adb.c adb_trust_write_signatures), and a reader that
//! checks a package or an index the way apk does before trusting it.
//!
//! Signature block: `sign_ver 0, hash_alg 4 (SHA-512), key id[16], DER
//! ECDSA signature`; the signed message is `schema (u32 LE) || those 18
//! header bytes || SHA-512(ADB block payload)`, signed with SHA-512 as the
//! message digest (EVP_DigestSign), so ECDSA P-256 signs the leftmost 256
//! bits of SHA-512(message). The key id is the first 16 bytes of SHA-512 of
//! the public key's EC point (i2d_PublicKey: 0x04 || X || Y).

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256, Sha512};

use crate::adb::{self, Adb, Val, Writer, NULL, T_OBJECT};
use crate::Error;

const SIGN_VER: u8 = 0;
const HASH_SHA512: u8 = 4;

pub struct PrivateKey {
    key: SigningKey,
}

pub struct PublicKey {
    key: VerifyingKey,
}

impl PrivateKey {
    /// An EC prime256v1 private key in PEM: `EC PRIVATE KEY` (what `openssl
    /// ecparam -genkey` writes) or `PRIVATE KEY` (PKCS#8).
    pub fn from_pem(text: &str) -> Result<Self, Error> {
        let secret = if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            p256::SecretKey::from_sec1_pem(text)
                .map_err(|_| Error::msg("not a P-256 'EC PRIVATE KEY' PEM"))?
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            p256::SecretKey::from_pkcs8_pem(text)
                .map_err(|_| Error::msg("not a P-256 PKCS#8 'PRIVATE KEY' PEM"))?
        } else {
            return Err(Error::msg(
                "no 'EC PRIVATE KEY' or 'PRIVATE KEY' PEM block (make one with: es-feed apk-keygen)",
            ));
        };
        Ok(PrivateKey {
            key: SigningKey::from(secret),
        })
    }

    /// A key from 32 random bytes; None when they are not a valid scalar
    /// (probability about 2^-32: draw again).
    pub fn from_random(bytes: &[u8; 32]) -> Option<Self> {
        p256::SecretKey::from_slice(bytes).ok().map(|s| PrivateKey {
            key: SigningKey::from(s),
        })
    }

    /// SEC1 `EC PRIVATE KEY` PEM with the curve named, byte for byte as
    /// `openssl ecparam -name prime256v1 -genkey -noout` writes it (OpenSSL,
    /// hence apk, cannot load one without the curve parameters).
    pub fn to_pem(&self) -> Result<String, Error> {
        use base64::Engine;
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut der = vec![0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20];
        der.extend_from_slice(&self.key.to_bytes());
        // [0] { OID 1.2.840.10045.3.1.7 (prime256v1) }
        der.extend_from_slice(&[
            0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ]);
        // [1] { BIT STRING, no unused bits, uncompressed point }
        der.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
        der.extend_from_slice(point.as_bytes());
        if der.len() != 0x79 {
            return Err(Error::msg("cannot encode the private key"));
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let mut out = String::from("-----BEGIN EC PRIVATE KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END EC PRIVATE KEY-----\n");
        Ok(out)
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            key: *self.key.verifying_key(),
        }
    }

    /// A SIG block payload over an ADB block with `schema`.
    pub fn sign(&self, schema: u32, adb_payload: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = vec![SIGN_VER, HASH_SHA512];
        out.extend_from_slice(&self.public().key_id());
        let digest = signed_digest(schema, &out, adb_payload);
        let sig: Signature = self
            .key
            .sign_prehash(&digest)
            .map_err(|_| Error::msg("ECDSA signing failed"))?;
        out.extend_from_slice(sig.to_der().as_bytes());
        Ok(out)
    }
}

/// SHA-512 of what apk signs: schema, the 18-byte signature header, and
/// SHA-512 of the ADB payload.
fn signed_digest(schema: u32, header18: &[u8], adb_payload: &[u8]) -> [u8; 64] {
    let md = Sha512::digest(adb_payload);
    let mut h = Sha512::new();
    h.update(schema.to_le_bytes());
    h.update(&header18[..18]);
    h.update(md);
    h.finalize().into()
}

impl PublicKey {
    /// A `PUBLIC KEY` PEM (SubjectPublicKeyInfo), as in /etc/apk/keys/.
    pub fn from_pem(text: &str) -> Result<Self, Error> {
        VerifyingKey::from_public_key_pem(text)
            .map(|key| PublicKey { key })
            .map_err(|_| Error::msg("not a P-256 'PUBLIC KEY' PEM"))
    }

    pub fn to_pem(&self) -> Result<String, Error> {
        self.key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| Error::msg("cannot encode the public key"))
    }

    /// apk's key id: SHA-512 of the uncompressed EC point, first 16 bytes.
    pub fn key_id(&self) -> [u8; 16] {
        let point = self.key.to_encoded_point(false);
        let mut id = [0u8; 16];
        id.copy_from_slice(&Sha512::digest(point.as_bytes())[..16]);
        id
    }

    /// adb_trust_verify_signature for one trusted key.
    pub fn verify(&self, schema: u32, adb_payload: &[u8], sig: &[u8]) -> Result<(), Error> {
        if sig.len() < 18 || sig[0] != SIGN_VER {
            return Err(Error::msg("signature block is not a v0 signature"));
        }
        if sig[2..18] != self.key_id() {
            return Err(Error::msg("signature is by another key (key id differs)"));
        }
        if sig[1] != HASH_SHA512 {
            return Err(Error::msg(format!(
                "signature hash algorithm {} is not SHA-512 (4)",
                sig[1]
            )));
        }
        let der = Signature::from_der(&sig[18..])
            .map_err(|_| Error::msg("signature is not DER ECDSA"))?;
        let digest = signed_digest(schema, sig, adb_payload);
        self.key
            .verify_prehash(&digest, &der)
            .map_err(|_| Error::msg("ECDSA signature does not verify"))
    }
}

// --- writing ---------------------------------------------------------------------

/// Package metadata: the `--info` fields OpenWrt's package-pack.mk passes.
pub struct Info {
    pub name: String,
    pub version: String,
    pub description: String,
    pub arch: String,
    pub license: String,
    pub origin: String,
    pub maintainer: String,
    pub url: String,
    pub depends: Vec<String>,
}

pub struct TreeFile {
    /// Relative path, `usr/bin/entropyservice`.
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

pub struct Built {
    /// The .apk file as written (ADBd-compressed).
    pub file: Vec<u8>,
    /// The uncompressed ADB block payload (what the index hash covers).
    pub adb: Vec<u8>,
}

/// apk's version syntax (apk_version_validate): digits separated by dots, an
/// optional letter, `_suffix[N]` parts, an optional `~hash`, `-rN`. This
/// tool also refuses `~`: OpenWrt versions never carry a commit hash.
pub fn validate_version(v: &str) -> Result<(), Error> {
    let bad = || {
        Error::msg(format!(
            "version '{v}' is not valid for apk (want like 1.2.3-r1: digits and dots, optional letter, _alpha/_beta/_pre/_rc/_p suffixes, -rN)"
        ))
    };
    let (main, rel) = match v.rsplit_once("-r") {
        Some((m, r)) => (m, Some(r)),
        None => (v, None),
    };
    if let Some(r) = rel {
        if r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
    }
    let mut parts = main.split('_');
    let head = parts.next().unwrap_or("");
    let head = head
        .strip_suffix(|c: char| c.is_ascii_lowercase())
        .unwrap_or(head);
    if head.is_empty()
        || head
            .split('.')
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    for s in parts {
        let word = s.trim_end_matches(|c: char| c.is_ascii_digit());
        if !["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"].contains(&word) {
            return Err(bad());
        }
    }
    Ok(())
}

/// `apk mkpkg` with the default compat level (root and every directory
/// listed, as in OpenWrt's packages): the ADB block in the order mkpkg
/// writes it, the signature, one DATA block per non-empty file. Every file
/// and directory is root:root, every file's mtime is `mtime`; directories
/// are 0755.
pub fn build_package(
    info: &Info,
    files: &[TreeFile],
    scripts: &[(&str, String)],
    mtime: u64,
    key: Option<&PrivateKey>,
) -> Result<Built, Error> {
    validate_version(&info.version)?;
    if info.name.is_empty() || !info.name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(Error::msg(format!(
            "package name '{}' must start with a letter or digit",
            info.name
        )));
    }
    let mut w = Writer::new();
    let pi = |name: &str| adb::field_no(adb::PKGINFO, name) - 1;
    let mut pkgi = vec![NULL; adb::PKGINFO.len()];
    // assign_fields: in field order
    pkgi[pi("name")] = w.blob(info.name.as_bytes())?;
    pkgi[pi("version")] = w.blob(info.version.as_bytes())?;
    pkgi[pi("description")] = w.blob(info.description.as_bytes())?;
    pkgi[pi("arch")] = w.blob(info.arch.as_bytes())?;
    pkgi[pi("license")] = w.blob(info.license.as_bytes())?;
    pkgi[pi("origin")] = w.blob(info.origin.as_bytes())?;
    pkgi[pi("maintainer")] = w.blob(info.maintainer.as_bytes())?;
    pkgi[pi("url")] = w.blob(info.url.as_bytes())?;
    if !info.depends.is_empty() {
        let mut deps = info.depends.clone();
        deps.sort();
        deps.dedup();
        let mut items = Vec::new();
        for d in &deps {
            if d.is_empty() || d.bytes().any(|b| b"<>=~! ".contains(&b)) {
                return Err(Error::msg(format!(
                    "dependency '{d}': only plain package names are supported"
                )));
            }
            let name = w.blob(d.as_bytes())?;
            items.push(w.obj(T_OBJECT, &[name])?);
        }
        pkgi[pi("depends")] = w.obj(T_OBJECT, &items)?;
    }

    // Directories: the root, then every directory path sorted bytewise.
    let mut sorted: Vec<&TreeFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut dirs: Vec<String> = vec![String::new()];
    for f in &sorted {
        if f.path.is_empty()
            || f.path.starts_with('/')
            || f.path.ends_with('/')
            || f.path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(Error::msg(format!("bad path in package: '{}'", f.path)));
        }
        let mut p = String::new();
        for comp in f
            .path
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if !p.is_empty() {
                p.push('/');
            }
            p.push_str(comp);
            if !dirs.contains(&p) {
                dirs.push(p.clone());
            }
        }
    }
    dirs.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    dirs.dedup();

    let mut installed: u64 = 0;
    let mut path_vals = Vec::new();
    // (dir index, file index, data) for the DATA blocks
    let mut data: Vec<(u32, u32, &[u8])> = Vec::new();
    for (di, dir) in dirs.iter().enumerate() {
        let mut in_dir: Vec<&TreeFile> = sorted
            .iter()
            .copied()
            .filter(|f| f.path.rsplit_once('/').map_or("", |(d, _)| d) == dir.as_str())
            .collect();
        in_dir.sort_by(|a, b| {
            basename(&a.path)
                .as_bytes()
                .cmp(basename(&b.path).as_bytes())
        });
        let mut file_vals = Vec::new();
        for (fi, f) in in_dir.iter().enumerate() {
            let name = w.blob(basename(&f.path).as_bytes())?;
            let hash = w.blob(&Sha256::digest(&f.data))?;
            let mt = w.int(mtime)?;
            let size = w.int(f.data.len() as u64)?;
            let acl = acl(&mut w, f.mode & 0o7777)?;
            file_vals.push(w.obj(T_OBJECT, &[name, acl, size, mt, hash])?);
            installed += f.data.len() as u64;
            if !f.data.is_empty() {
                data.push((di as u32 + 1, fi as u32 + 1, &f.data));
            }
        }
        let name = w.blob(dir.as_bytes())?;
        let acl = acl(&mut w, 0o755)?;
        let files = w.obj(T_OBJECT, &file_vals)?;
        path_vals.push(w.obj(T_OBJECT, &[name, acl, files])?);
    }
    if installed == 0 {
        installed = 1;
    }
    pkgi[pi("installed-size")] = w.int(installed)?;
    let (uid_val, uid_offs) = w.blob_unshared(&[0u8; 20])?;
    pkgi[pi("hashes")] = uid_val;
    let info_val = w.obj(T_OBJECT, &pkgi)?;
    let paths = w.obj(T_OBJECT, &path_vals)?;
    let mut scr = vec![NULL; adb::SCRIPTS.len()];
    for (i, (name, _)) in adb::SCRIPTS.iter().enumerate() {
        if let Some((_, text)) = scripts.iter().find(|(n, _)| n == name) {
            scr[i] = w.blob(text.as_bytes())?;
        }
    }
    if let Some((n, _)) = scripts
        .iter()
        .find(|(n, _)| adb::field_no(adb::SCRIPTS, n) == 0)
    {
        return Err(Error::msg(format!("unknown apk script type '{n}'")));
    }
    let scripts_val = if scripts.is_empty() {
        NULL
    } else {
        w.obj(T_OBJECT, &scr)?
    };
    let root = w.obj(T_OBJECT, &[info_val, paths, scripts_val])?;
    w.set_root(root);
    // The unique id: SHA-256 of the ADB block with the id still zero.
    let uid = Sha256::digest(w.bytes());
    w.bytes_mut()[uid_offs..uid_offs + 20].copy_from_slice(&uid[..20]);
    let payload = w.into_bytes();

    let mut out = Vec::new();
    adb::file_header(&mut out, adb::SCHEMA_PACKAGE);
    adb::block(&mut out, adb::BLOCK_ADB, &payload)?;
    if let Some(k) = key {
        adb::block(
            &mut out,
            adb::BLOCK_SIG,
            &k.sign(adb::SCHEMA_PACKAGE, &payload)?,
        )?;
    }
    for (di, fi, d) in data {
        let mut p = Vec::with_capacity(8 + d.len());
        p.extend_from_slice(&di.to_le_bytes());
        p.extend_from_slice(&fi.to_le_bytes());
        p.extend_from_slice(d);
        adb::block(&mut out, adb::BLOCK_DATA, &p)?;
    }
    Ok(Built {
        file: adb::deflate(&out)?,
        adb: payload,
    })
}

fn basename(p: &str) -> &str {
    p.rsplit_once('/').map_or(p, |(_, b)| b)
}

fn acl(w: &mut Writer, mode: u32) -> Result<Val, Error> {
    let m = w.int(u64::from(mode))?;
    let user = w.blob(b"root")?;
    let group = w.blob(b"root")?;
    w.obj(T_OBJECT, &[m, user, group])
}

/// adb_w_copy: a value of `src` rewritten into `w`, children first
/// (`depth` bounds nesting: pkginfo needs 3 levels).
fn copy(w: &mut Writer, src: &Adb, v: Val, depth: u32) -> Result<Val, Error> {
    if depth > 8 {
        return Err(Error::msg("ADB objects nested too deep"));
    }
    match v & 0xf000_0000 {
        0x0000_0000 | adb::T_INT => Ok(v),
        adb::T_INT32 => w.int(src.int(v)?),
        adb::T_INT64 => w.copy_int64(src.int(v)?),
        adb::T_BLOB8 | adb::T_BLOB16 | adb::T_BLOB32 => w.blob(src.blob(v)?.unwrap_or_default()),
        t @ (adb::T_ARRAY | adb::T_OBJECT) => {
            let slots = src.obj(v)?;
            let mut out = Vec::with_capacity(slots.len());
            for &s in &slots[1..] {
                out.push(copy(w, src, s, depth + 1)?);
            }
            // adb_w_copy keeps the slot count as it was (no trimming)
            let mut bytes = (slots.len() as u32).to_le_bytes().to_vec();
            for o in out {
                bytes.extend_from_slice(&o.to_le_bytes());
            }
            w.raw_obj(t, &bytes)
        }
        _ => Err(Error::msg(format!("cannot copy ADB value {v:#010x}"))),
    }
}

/// One package of an index: its ADB payload and the size of its file.
pub struct IndexEntry<'a> {
    pub adb: &'a [u8],
    pub file_size: u64,
}

/// `apk mkndx` of packages (each entry's pkginfo copied, then file-size and
/// hashes = SHA-256 of the package's ADB block), signed.
pub fn build_index(entries: &[IndexEntry], key: Option<&PrivateKey>) -> Result<Vec<u8>, Error> {
    let mut w = Writer::new();
    let mut pkgs = Vec::new();
    let mut keys: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for e in entries {
        let src = Adb { buf: e.adb };
        let info = src.field(src.root(), adb::field_no(adb::PACKAGE, "info"))?;
        let slots = src.obj(info)?;
        let mut fields = vec![NULL; adb::PKGINFO.len().max(slots.len() - 1)];
        for (i, &s) in slots.iter().enumerate().skip(1) {
            fields[i - 1] = copy(&mut w, &src, s, 0)?;
        }
        fields[adb::field_no(adb::PKGINFO, "file-size") - 1] = w.int(e.file_size)?;
        fields[adb::field_no(adb::PKGINFO, "hashes") - 1] = w.blob(&Sha256::digest(e.adb))?;
        pkgs.push(w.obj(T_OBJECT, &fields)?);
        let name = src
            .blob(slots.get(1).copied().unwrap_or(NULL))?
            .unwrap_or_default()
            .to_vec();
        let ver = src
            .blob(slots.get(2).copied().unwrap_or(NULL))?
            .unwrap_or_default()
            .to_vec();
        keys.push((name, ver));
    }
    // apk sorts the array (adb_wa_sort) by name, then version, ...; this
    // tool writes one package per name and version.
    let mut order: Vec<usize> = (0..pkgs.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    if order.windows(2).any(|p| keys[p[0]] == keys[p[1]]) {
        return Err(Error::msg(
            "two packages with the same name and version in one index",
        ));
    }
    let sorted: Vec<Val> = order.iter().map(|&i| pkgs[i]).collect();
    let arr = w.obj(T_OBJECT, &sorted)?;
    let root = w.obj(T_OBJECT, &[NULL, arr])?;
    w.set_root(root);
    let payload = w.into_bytes();
    let mut out = Vec::new();
    adb::file_header(&mut out, adb::SCHEMA_INDEX);
    adb::block(&mut out, adb::BLOCK_ADB, &payload)?;
    if let Some(k) = key {
        adb::block(
            &mut out,
            adb::BLOCK_SIG,
            &k.sign(adb::SCHEMA_INDEX, &payload)?,
        )?;
    }
    adb::deflate(&out)
}

// --- reading and checking ----------------------------------------------------------

pub struct ReadFile {
    pub path: String,
    pub mode: u32,
    pub user: String,
    pub group: String,
    pub mtime: u64,
    pub data: Vec<u8>,
}

pub struct ReadPackage {
    pub fields: Vec<(String, String)>,
    pub dirs: Vec<(String, u32)>,
    pub files: Vec<ReadFile>,
    pub scripts: Vec<(String, String)>,
    /// The ADB block payload.
    pub adb: Vec<u8>,
}

fn text(b: Option<&[u8]>) -> String {
    String::from_utf8_lossy(b.unwrap_or_default()).into_owned()
}

/// The scalar fields of a pkginfo object as adbdump shows them.
pub fn info_fields(a: &Adb, info: Val) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (i, &v) in a.obj(info)?.iter().enumerate().skip(1) {
        if v == NULL {
            continue;
        }
        let Some((name, kind)) = adb::PKGINFO.get(i - 1) else {
            continue;
        };
        let s = match kind {
            adb::Kind::Str => text(a.blob(v)?),
            adb::Kind::Hex => adb::hex(a.blob(v)?.unwrap_or_default()),
            adb::Kind::Int => a.int(v)?.to_string(),
            adb::Kind::Array(_) => {
                let mut names = Vec::new();
                for d in a.items(v)? {
                    names.push(text(a.blob(a.field(d, 1)?)?));
                }
                names.join(" ")
            }
            _ => continue,
        };
        out.push((name.to_string(), s));
    }
    Ok(out)
}

/// Reads an .apk: checks the signature with `key` the way apk does (when a
/// key is given, an unsigned or foreign-signed package is an error), every
/// DATA block against the size and SHA-256 the ADB block gives, that every
/// non-empty file has its data, and the package's unique id.
pub fn read_package(bytes: &[u8], key: Option<&PublicKey>) -> Result<ReadPackage, Error> {
    let f = adb::File::parse(bytes)?;
    if f.schema != adb::SCHEMA_PACKAGE {
        return Err(Error::msg(format!(
            "schema {:08X} is not a package (pckg)",
            f.schema
        )));
    }
    let a = f.adb();
    if a.compat() != 0 {
        return Err(Error::msg("ADB compat version is not 0"));
    }
    let mut signed = false;
    if let Some(k) = key {
        let mut last = Error::msg("package has no signature (SIG block)");
        for s in f.sigs() {
            match k.verify(f.schema, a.buf, s) {
                Ok(()) => signed = true,
                Err(e) => last = e,
            }
        }
        if !signed {
            return Err(last);
        }
    }
    let root = a.root();
    let info = a.field(root, 1)?;
    let fields = info_fields(&a, info)?;
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut index: Vec<Vec<(usize, u64, Vec<u8>)>> = Vec::new();
    for d in a.items(a.field(root, 2)?)? {
        let dname = text(a.blob(a.field(d, 1)?)?);
        let dacl = a.field(d, 2)?;
        dirs.push((dname.clone(), a.int(a.field(dacl, 1)?)? as u32));
        let mut row = Vec::new();
        for fv in a.items(a.field(d, 3)?)? {
            let name = text(a.blob(a.field(fv, 1)?)?);
            let acl = a.field(fv, 2)?;
            let size = a.int(a.field(fv, 3)?)?;
            let hash = a.blob(a.field(fv, 5)?)?.unwrap_or_default().to_vec();
            if a.field(fv, 6)? != NULL {
                return Err(Error::msg(format!(
                    "{dname}/{name}: links and device files are not expected"
                )));
            }
            row.push((files.len(), size, hash));
            files.push(ReadFile {
                path: if dname.is_empty() {
                    name
                } else {
                    format!("{dname}/{name}")
                },
                mode: a.int(a.field(acl, 1)?)? as u32,
                user: text(a.blob(a.field(acl, 2)?)?),
                group: text(a.blob(a.field(acl, 3)?)?),
                mtime: a.int(a.field(fv, 4)?)?,
                data: Vec::new(),
            });
        }
        index.push(row);
    }
    let mut expect: Vec<(usize, usize)> = Vec::new();
    for (di, row) in index.iter().enumerate() {
        for (fi, (_, size, _)) in row.iter().enumerate() {
            if *size > 0 {
                expect.push((di + 1, fi + 1));
            }
        }
    }
    let blocks: Vec<&[u8]> = f.data_blocks().collect();
    if blocks.len() != expect.len() {
        return Err(Error::msg(format!(
            "{} DATA blocks for {} non-empty files",
            blocks.len(),
            expect.len()
        )));
    }
    for (b, (di, fi)) in blocks.iter().zip(expect) {
        if b.len() < 8 {
            return Err(Error::msg("DATA block shorter than its header"));
        }
        let pi = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let fj = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
        if (pi, fj) != (di, fi) {
            return Err(Error::msg(format!(
                "DATA block for {pi}/{fj} where {di}/{fi} was due"
            )));
        }
        let (idx, size, hash) = &index[di - 1][fi - 1];
        let content = &b[8..];
        if content.len() as u64 != *size {
            return Err(Error::msg(format!(
                "{}: {} bytes of data, size says {size}",
                files[*idx].path,
                content.len()
            )));
        }
        if Sha256::digest(content)[..] != hash[..] {
            return Err(Error::msg(format!(
                "{}: data does not match its SHA-256",
                files[*idx].path
            )));
        }
        files[*idx].data = content.to_vec();
    }
    // The unique id mkpkg stores: SHA-256 of the block with the id zeroed.
    let uid_val = a.field(info, 3)?;
    if let Some(uid) = a.blob(uid_val)? {
        if uid.len() == 20 {
            let off = (uid_val & 0x0fff_ffff) as usize + 1;
            let mut z = a.buf.to_vec();
            z[off..off + 20].fill(0);
            if Sha256::digest(&z)[..20] != *uid {
                return Err(Error::msg(
                    "package unique id (info.hashes) does not match the ADB block",
                ));
            }
        }
    }
    let mut scripts = Vec::new();
    let sv = a.field(root, 3)?;
    for (i, &v) in a.obj(sv)?.iter().enumerate().skip(1) {
        if v != NULL {
            if let Some((n, _)) = adb::SCRIPTS.get(i - 1) {
                scripts.push((n.to_string(), text(a.blob(v)?)));
            }
        }
    }
    Ok(ReadPackage {
        fields,
        dirs,
        files,
        scripts,
        adb: a.buf.to_vec(),
    })
}

/// Reads a packages.adb, checking its signature with `key` when given; the
/// pkginfo fields of each package.
pub fn read_index(
    bytes: &[u8],
    key: Option<&PublicKey>,
) -> Result<Vec<Vec<(String, String)>>, Error> {
    let f = adb::File::parse(bytes)?;
    if f.schema != adb::SCHEMA_INDEX {
        return Err(Error::msg(format!(
            "schema {:08X} is not an index (indx)",
            f.schema
        )));
    }
    let a = f.adb();
    if let Some(k) = key {
        let mut ok = false;
        let mut last = Error::msg("index has no signature (SIG block)");
        for s in f.sigs() {
            match k.verify(f.schema, a.buf, s) {
                Ok(()) => ok = true,
                Err(e) => last = e,
            }
        }
        if !ok {
            return Err(last);
        }
    }
    if f.data_blocks().next().is_some() {
        return Err(Error::msg("index has DATA blocks"));
    }
    let mut out = Vec::new();
    for p in a.items(a.field(a.root(), 2)?)? {
        out.push(info_fields(&a, p)?);
    }
    Ok(out)
}

/// `apk adbdump` text, with signatures checked against `keys` (none: every
/// signature is "UNTRUSTED signature", as adbdump without a key directory).
pub fn dump(bytes: &[u8], keys: &[PublicKey]) -> Result<String, Error> {
    let f = adb::File::parse(bytes)?;
    let a = f.adb();
    let schema = f.schema;
    adb::dump(&f, &|sig: &[u8]| {
        if keys.iter().any(|k| k.verify(schema, a.buf, sig).is_ok()) {
            "OK".to_string()
        } else {
            "UNTRUSTED signature".to_string()
        }
    })
}
