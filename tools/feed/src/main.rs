//! es-feed: builds, signs and checks the entropyservice OpenWrt feeds (opkg
//! for 24.10 and older, apk v3 for 25.12 and later) from the cross-built
//! static binaries, with no tool beyond this one. A host-side tool: nothing
//! here goes into the router binary.
//!
//! Exit status: 0 done; 1 a check or signature failed, or bad input (one
//! `es-feed: error:` line says which and what to do); 2 bad command line.

mod adb;
mod apk;
mod feed;
mod tar;
mod usign;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use argh::FromArgs;

#[derive(Debug)]
pub struct Error(pub String);

impl Error {
    pub fn msg(s: impl Into<String>) -> Self {
        Error(s.into())
    }

    pub fn io(op: &str, path: &Path, e: &std::io::Error) -> Self {
        Error(format!("cannot {op} {}: {e}", path.display()))
    }
}

pub fn hex(b: &[u8]) -> String {
    adb::hex(b)
}

#[derive(FromArgs)]
/// Build, sign and check the entropyservice OpenWrt feeds (opkg and apk v3).
struct Cli {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Build(Build),
    Check(Check),
    UsignKeygen(UsignKeygen),
    ApkKeygen(ApkKeygen),
    UsignSign(UsignSign),
    UsignVerify(UsignVerify),
    Dump(Dump),
    ApkVerify(ApkVerify),
}

#[derive(FromArgs)]
#[argh(subcommand, name = "build")]
/// Build both feeds from entropyservice-<rust-target> binaries: OUT/opkg/ARCH
/// (.ipk, Packages, Packages.gz, Packages.sig), OUT/apk/ARCH (.apk,
/// packages.adb), OUT/keys (the public keys).
struct Build {
    /// usign secret key that signs Packages (es-feed usign-keygen)
    #[argh(option)]
    usign_key: PathBuf,
    /// EC prime256v1 private key PEM that signs the .apk and packages.adb (es-feed apk-keygen)
    #[argh(option)]
    apk_key: PathBuf,
    /// output directory (default target/feed under --root)
    #[argh(option, short = 'o')]
    out: Option<PathBuf>,
    /// source tree: Cargo.toml (version), scripts/targets.tsv, openwrt/files (default .)
    #[argh(option, default = "PathBuf::from(\".\")")]
    root: PathBuf,
    /// package release, the N of -rN (default 1)
    #[argh(option, short = 'r', default = "1")]
    release: u32,
    /// maintainer field (default "entropyservice developers")
    #[argh(
        option,
        short = 'm',
        default = "String::from(\"entropyservice developers\")"
    )]
    maintainer: String,
    /// binaries, or directories searched for entropyservice-<rust-target> (default target/dist/router, the router builds of scripts/cross-build.sh)
    #[argh(positional)]
    inputs: Vec<PathBuf>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
/// Check a built feed with the public keys as opkg and apk would, plus its
/// internal consistency; prints one line per architecture.
struct Check {
    /// usign public key
    #[argh(option)]
    usign_pub: PathBuf,
    /// apk public key PEM
    #[argh(option)]
    apk_pub: PathBuf,
    /// every architecture that must be in the feed (repeatable)
    #[argh(option)]
    arch: Vec<String>,
    /// the feed directory (OUT of build)
    #[argh(positional)]
    feed: PathBuf,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "usign-keygen")]
/// Make a usign key pair (like usign -G): the secret file mode 0600.
struct UsignKeygen {
    /// secret key file to create
    #[argh(option, short = 's')]
    secret: PathBuf,
    /// public key file to create
    #[argh(option, short = 'p')]
    public: PathBuf,
    /// comment for the keys' first line
    #[argh(option, short = 'c')]
    comment: Option<String>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "apk-keygen")]
/// Make an EC prime256v1 key pair for apk (like openssl ecparam -genkey).
struct ApkKeygen {
    /// private key PEM to create (mode 0600)
    #[argh(option)]
    private: PathBuf,
    /// public key PEM to create (goes to /etc/apk/keys/ on the router)
    #[argh(option)]
    public: PathBuf,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "usign-sign")]
/// Sign a file with a usign secret key (like usign -S).
struct UsignSign {
    /// secret key
    #[argh(option, short = 's')]
    secret: PathBuf,
    /// file to sign
    #[argh(option, short = 'm')]
    message: PathBuf,
    /// signature file (default: MESSAGE.sig)
    #[argh(option, short = 'x')]
    sig: Option<PathBuf>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "usign-verify")]
/// Verify a usign signature (like usign -V); prints OK or "verification failed".
struct UsignVerify {
    /// public key
    #[argh(option, short = 'p')]
    public: PathBuf,
    /// signed file
    #[argh(option, short = 'm')]
    message: PathBuf,
    /// signature file (default: MESSAGE.sig)
    #[argh(option, short = 'x')]
    sig: Option<PathBuf>,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "dump")]
/// Print an .apk or packages.adb as `apk adbdump` does.
struct Dump {
    /// trusted public key PEM for the signature line (repeatable)
    #[argh(option)]
    key: Vec<PathBuf>,
    /// the file
    #[argh(positional)]
    file: PathBuf,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "apk-verify")]
/// Verify .apk or packages.adb files with a public key as apk does (signature,
/// and for packages every file's size and SHA-256).
struct ApkVerify {
    /// trusted public key PEM
    #[argh(option)]
    key: PathBuf,
    /// files
    #[argh(positional)]
    files: Vec<PathBuf>,
}

fn read(p: &Path) -> Result<Vec<u8>, Error> {
    fs::read(p).map_err(|e| Error::io("read", p, &e))
}

fn read_text(p: &Path) -> Result<String, Error> {
    String::from_utf8(read(p)?).map_err(|_| Error::msg(format!("{} is not text", p.display())))
}

/// A secret key file: a regular file (not a link) that no one but its
/// owner can read.
fn read_secret(p: &Path) -> Result<String, Error> {
    use std::os::unix::fs::PermissionsExt;
    let md = fs::symlink_metadata(p).map_err(|e| Error::io("read", p, &e))?;
    if !md.file_type().is_file() {
        return Err(Error::msg(format!(
            "secret key {} is not a regular file",
            p.display()
        )));
    }
    if md.permissions().mode() & 0o077 != 0 {
        return Err(Error::msg(format!(
            "secret key {} is readable by group or others (mode {:o}); chmod 600 it",
            p.display(),
            md.permissions().mode() & 0o777
        )));
    }
    read_text(p)
}

fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("read", Path::new("/dev/urandom"), &e))?;
    Ok(b)
}

fn refuse_existing(paths: &[&Path]) -> Result<(), Error> {
    for p in paths {
        if fs::symlink_metadata(p).is_ok() {
            return Err(Error::msg(format!(
                "{} exists; not overwriting a key (remove it first)",
                p.display()
            )));
        }
    }
    Ok(())
}

fn cargo_version(root: &Path) -> Result<String, Error> {
    let p = root.join("Cargo.toml");
    let text = read_text(&p)?;
    let mut in_pkg = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_pkg = l == "[package]";
        } else if in_pkg {
            if let Some(v) = l.strip_prefix("version") {
                let v = v
                    .trim_start()
                    .trim_start_matches('=')
                    .trim()
                    .trim_matches('"');
                return Ok(v.to_string());
            }
        }
    }
    Err(Error::msg(format!(
        "no [package] version in {}",
        p.display()
    )))
}

fn epoch(root: &Path) -> Result<u64, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => s.parse().map_err(|_| {
            Error::msg(format!(
                "SOURCE_DATE_EPOCH '{s}' is not a number of seconds"
            ))
        }),
        _ => {
            let p = root.join("Cargo.toml");
            let md = fs::metadata(&p).map_err(|e| Error::io("stat", &p, &e))?;
            Ok(md
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()))
        }
    }
}

fn build(b: Build) -> Result<(), Error> {
    let targets = feed::read_targets(&b.root.join("scripts/targets.tsv"))?;
    let inputs = if b.inputs.is_empty() {
        vec![b.root.join("target/dist/router")]
    } else {
        b.inputs.clone()
    };
    let prefix = format!("{}-", feed::PKG);
    let mut found: Vec<(&feed::Target, PathBuf)> = Vec::new();
    for arg in &inputs {
        let md = fs::metadata(arg).map_err(|e| Error::io("read", arg, &e))?;
        if md.is_dir() {
            for t in &targets {
                let p = arg.join(format!("{prefix}{}", t.rust));
                if p.is_file() {
                    found.push((t, p));
                }
            }
        } else {
            let name = arg
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let t = name
                .strip_prefix(&prefix)
                .and_then(|r| targets.iter().find(|t| t.rust == r))
                .ok_or_else(|| {
                    Error::msg(format!(
                        "{}: name is not {prefix}<rust target of scripts/targets.tsv>",
                        arg.display()
                    ))
                })?;
            found.push((t, arg.clone()));
        }
    }
    if found.is_empty() {
        return Err(Error::msg(format!(
            "no {prefix}<rust-target> binaries in {} (run scripts/cross-build.sh first)",
            inputs
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let keys = feed::Keys {
        usign: usign::SecretKey::parse(&read_secret(&b.usign_key)?)
            .map_err(|e| Error::msg(format!("{}: {}", b.usign_key.display(), e.0)))?,
        apk: apk::PrivateKey::from_pem(&read_secret(&b.apk_key)?)
            .map_err(|e| Error::msg(format!("{}: {}", b.apk_key.display(), e.0)))?,
    };
    let meta = feed::Meta {
        version: format!("{}-r{}", cargo_version(&b.root)?, b.release),
        maintainer: b.maintainer.clone(),
        epoch: epoch(&b.root)?,
    };
    let out = b.out.clone().unwrap_or_else(|| b.root.join("target/feed"));
    let sizes = feed::build(&out, &b.root.join("openwrt/files"), &found, &meta, &keys)?;
    for (arch, ipk, apk) in sizes {
        eprintln!(
            "es-feed: {arch}: {}_{}_{arch}.ipk {ipk} bytes, {}-{}.apk {apk} bytes",
            feed::PKG,
            meta.version,
            feed::PKG,
            meta.version
        );
    }
    eprintln!(
        "es-feed: feeds in {} (opkg/ARCH, apk/ARCH, keys/)",
        out.display()
    );
    Ok(())
}

fn run(cmd: Cmd) -> Result<(), Error> {
    match cmd {
        Cmd::Build(b) => build(b),
        Cmd::Check(c) => {
            let upub = usign::PublicKey::parse(&read_text(&c.usign_pub)?)?;
            let apub = apk::PublicKey::from_pem(&read_text(&c.apk_pub)?)?;
            for line in feed::check(&c.feed, &upub, &apub, &c.arch)? {
                println!("{line}");
            }
            Ok(())
        }
        Cmd::UsignKeygen(k) => {
            refuse_existing(&[&k.secret, &k.public])?;
            let sec = usign::SecretKey::generate(&random::<40>()?);
            let id = usign::key_id(&sec.fingerprint);
            let (sc, pc) = match &k.comment {
                Some(c) => (c.clone(), c.clone()),
                None => (format!("private key {id}"), format!("public key {id}")),
            };
            feed::write_atomic(
                &k.secret,
                sec.to_file(&sc, &random::<16>()?).as_bytes(),
                0o600,
            )?;
            feed::write_atomic(&k.public, sec.public().to_file(&pc).as_bytes(), 0o644)?;
            println!("{id}");
            Ok(())
        }
        Cmd::ApkKeygen(k) => {
            refuse_existing(&[&k.private, &k.public])?;
            let key = loop {
                if let Some(key) = apk::PrivateKey::from_random(&random::<32>()?) {
                    break key;
                }
            };
            feed::write_atomic(&k.private, key.to_pem()?.as_bytes(), 0o600)?;
            feed::write_atomic(&k.public, key.public().to_pem()?.as_bytes(), 0o644)?;
            println!("{}", hex(&key.public().key_id()));
            Ok(())
        }
        Cmd::UsignSign(s) => {
            let key = usign::SecretKey::parse(&read_secret(&s.secret)?)?;
            let msg = read(&s.message)?;
            let sig = s.sig.unwrap_or_else(|| sig_path(&s.message));
            feed::write_atomic(&sig, key.sign(&msg).as_bytes(), 0o644)
        }
        Cmd::UsignVerify(v) => {
            let key = usign::PublicKey::parse(&read_text(&v.public)?)?;
            let msg = read(&v.message)?;
            let sig = read_text(&v.sig.unwrap_or_else(|| sig_path(&v.message)))?;
            key.verify(&msg, &sig)?;
            eprintln!("OK");
            Ok(())
        }
        Cmd::Dump(d) => {
            let mut keys = Vec::new();
            for k in &d.key {
                keys.push(apk::PublicKey::from_pem(&read_text(k)?)?);
            }
            print!("{}", apk::dump(&read(&d.file)?, &keys)?);
            Ok(())
        }
        Cmd::ApkVerify(v) => {
            let key = apk::PublicKey::from_pem(&read_text(&v.key)?)?;
            let mut bad = 0;
            for f in &v.files {
                let bytes = read(f)?;
                let res = if bytes.len() >= 8
                    && adb::File::parse(&bytes).map(|p| p.schema).ok() == Some(adb::SCHEMA_INDEX)
                {
                    apk::read_index(&bytes, Some(&key)).map(|_| ())
                } else {
                    apk::read_package(&bytes, Some(&key)).map(|_| ())
                };
                match res {
                    Ok(()) => println!("{}: OK", f.display()),
                    Err(e) => {
                        println!("{}: {}", f.display(), e.0);
                        bad += 1;
                    }
                }
            }
            if bad > 0 {
                Err(Error::msg(format!(
                    "{bad} of {} files failed verification",
                    v.files.len()
                )))
            } else {
                Ok(())
            }
        }
    }
}

fn sig_path(msg: &Path) -> PathBuf {
    let mut s = msg.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn main() {
    let cli: Cli = argh::from_env();
    if let Err(e) = run(cli.cmd) {
        eprintln!("es-feed: error: {}", e.0);
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests;
