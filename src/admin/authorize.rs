//! `entropyservice authorize`: adds a client's key to authorized_keys
//! behind the forced command, by appending one line (or with --replace
//! rewriting that key's line); every other byte, the file's mode and its
//! owner stay as they were.

use super::{fsync_dir, is_root, parent_dir, run_tool, MAX_PUB_FILE};
use crate::child::{find_program, is_executable, SYSTEM_PATH};
use crate::cli::Authorize;
use crate::error::{Error, Result, Status};
use crate::files::{self, Replace};
use crate::hostkey::{PublicKey, KEY_TYPES};
use crate::log;
use crate::parse;
use crate::text::{msg, Num};
use rustix::fs::{flock, FlockOperation};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

pub const DEFAULT_BINARY: &str = "/usr/bin/entropyservice";
/// Root's authorized_keys on OpenWrt (its Dropbear ignores ~/.ssh for root).
pub const OPENWRT_AUTHORIZED_KEYS: &str = "/etc/dropbear/authorized_keys";
/// The options every forced line gets when `restrict` is not known to work.
const EXPLICIT: &str = "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding";
/// First versions that understand `restrict`.
const DROPBEAR_RESTRICT: (u32, u32) = (2022, 82);
const OPENSSH_RESTRICT: (u32, u32) = (7, 2);
/// Larger authorized_keys files are refused rather than rewritten.
const MAX_AUTHORIZED_KEYS: u64 = 1 << 20;

/// `TYPE BASE64` line, or a file holding exactly one such line.
fn read_public_key(arg: &str) -> Result<PublicKey> {
    let first = arg.split_ascii_whitespace().next().unwrap_or("");
    if KEY_TYPES.contains(&first) {
        return PublicKey::parse(arg)
            .map_err(|e| Error::new(Status::Data, msg(&["invalid public key: ", e.as_str()])));
    }
    let mut text = String::new();
    File::open(arg)
        .and_then(|f| f.take(MAX_PUB_FILE).read_to_string(&mut text))
        .map_err(|e| Error::os(Status::NoInput, &msg(&[arg, " is neither a public key line (\"ssh-ed25519 AAAA...\") nor a readable .pub file"]), e))?;
    let mut keys = text.lines().filter_map(|l| PublicKey::parse(l.trim()).ok());
    match (keys.next(), keys.next()) {
        (Some(k), None) => Ok(k),
        (None, _) => Err(Error::new(Status::Data, msg(&[arg, " holds no public key line; pass the client's .pub file or its \"TYPE BASE64\" line"]))),
        (Some(_), Some(_)) => Err(Error::new(Status::Data, msg(&[arg, " holds more than one public key; pass the one line to authorize"]))),
    }
}

/// An absolute path that is safe inside `command="..."` and the shell that
/// runs it: letters, digits and `/._+-` only.
fn is_safe_binary(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 256
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'+' | b'-'))
}

/// The forced command: only validated values, so nothing in it needs quoting.
fn forced_command(a: &Authorize) -> Result<String> {
    if !parse::is_safe_name(&a.client) {
        return Err(Error::new(
            Status::Usage,
            "--client must be 1-64 of letters, digits, '.', '_', '-'",
        ));
    }
    let binary = a.binary.as_deref().unwrap_or(DEFAULT_BINARY);
    if !is_safe_binary(binary) {
        return Err(Error::new(
            Status::Usage,
            "--binary must be an absolute path of letters, digits and / . _ + - only (it goes inside command=\"...\")",
        ));
    }
    let mut c = msg(&[binary, " server --client ", &a.client]);
    let mut num = |opt: &str, v: Option<u64>| {
        if let Some(v) = v {
            c.push_str(opt);
            c.push_str(Num::new(v).as_str());
        }
    };
    num(" --rate ", a.rate);
    num(" --max-sessions ", a.max_sessions.map(u64::from));
    num(" --max-bytes ", a.max_bytes);
    if let Some(t) = &a.max_time {
        if parse::duration_ns(t).is_none() {
            return Err(Error::new(
                Status::Usage,
                "--max-time must be a duration such as 30s, 10m or 1h",
            ));
        }
        c.push_str(" --max-time ");
        c.push_str(t);
    }
    if let Some(list) = &a.allow_from {
        // Rebuilt without spaces so it stays one shell word.
        let mut norm = String::with_capacity(list.len());
        for (i, part) in list.split(',').enumerate() {
            if i > 0 {
                norm.push(',');
            }
            norm.push_str(part.trim());
        }
        if norm.is_empty() || parse::cidr_list(&norm).is_none() {
            return Err(Error::new(
                Status::Usage,
                msg(&[
                    "--allow-from ",
                    list,
                    " is not a comma-separated list of CIDRs such as 192.0.2.0/24,2001:db8::/32",
                ]),
            ));
        }
        c.push_str(" --allow-from ");
        c.push_str(&norm);
    }
    Ok(c)
}

/// `(major, minor)` of the first `marker` followed by `N.N` in `text`.
fn version_after(text: &str, marker: &str) -> Option<(u32, u32)> {
    text.match_indices(marker).find_map(|(i, _)| {
        let rest = &text[i + marker.len()..];
        let (major, rest) = rest.split_once('.')?;
        let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((major.parse().ok()?, minor.parse().ok()?))
    })
}

/// The version of an installed SSH server, `None` when absent,
/// `Some(None)` when present but its version is unknown.
fn server_version(program: &str, marker: &str) -> Option<Option<(u32, u32)>> {
    let path = find_program(program, SYSTEM_PATH)?;
    let r = run_tool(&path, &["-V"]).ok();
    Some(r.and_then(|r| {
        version_after(&r.stderr, marker).or_else(|| version_after(&r.stdout, marker))
    }))
}

/// Whether `restrict` is understood by every SSH server that may read
/// `path`. Unsure (no server found, version unknown) means no.
fn restrict_works(flavor: &str, path: &str) -> Result<bool> {
    let (dropbear, openssh) = match flavor {
        "dropbear" => (true, false),
        "openssh" => (false, true),
        // Root's file on OpenWrt is read by Dropbear alone.
        "auto" => (true, !path.starts_with("/etc/dropbear/")),
        _ => {
            return Err(Error::new(
                Status::Usage,
                "--flavor must be dropbear, openssh or auto",
            ))
        }
    };
    let mut found = false;
    let mut all = true;
    for (wanted, program, marker, min) in [
        (dropbear, "dropbear", "Dropbear v", DROPBEAR_RESTRICT),
        (openssh, "sshd", "OpenSSH_", OPENSSH_RESTRICT),
    ] {
        if !wanted {
            continue;
        }
        if let Some(v) = server_version(program, marker) {
            found = true;
            all &= v.is_some_and(|v| v >= min);
        }
    }
    Ok(found && all)
}

fn default_authorized_keys() -> Result<String> {
    if is_root() && std::fs::metadata("/etc/openwrt_release").is_ok() {
        return Ok(OPENWRT_AUTHORIZED_KEYS.into());
    }
    match std::env::var("HOME") {
        Ok(h) if h.starts_with('/') => Ok(msg(&[h.trim_end_matches('/'), "/.ssh/authorized_keys"])),
        _ => Err(Error::new(
            Status::Usage,
            "HOME is not set to an absolute path; pass --authorized-keys FILE",
        )),
    }
}

/// Is `TYPE BASE64` of `key` on any line of `text`? Returns the line number.
pub fn find_key(text: &[u8], key: &PublicKey) -> Option<usize> {
    text.split(|&b| b == b'\n')
        .position(|line| line_has_key(line, key))
        .map(|i| i + 1)
}

/// Does this authorized_keys line hold `key` (its type, then its base64)?
fn line_has_key(line: &[u8], key: &PublicKey) -> bool {
    let b64 = key.b64.trim_end_matches('=').as_bytes();
    let mut prev: &[u8] = b"";
    for w in line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
    {
        if prev == key.kind.as_bytes()
            && w.strip_suffix(b"==").or(w.strip_suffix(b"=")).unwrap_or(w) == b64
        {
            return true;
        }
        prev = w;
    }
    false
}

/// `text` with the first line holding `key` replaced by `line` (which ends
/// in a newline) and any later lines holding it dropped; every other byte
/// stays as it was.
fn replace_key_line(text: &[u8], key: &PublicKey, line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + line.len());
    let mut done = false;
    for l in text.split_inclusive(|&b| b == b'\n') {
        if line_has_key(l, key) {
            if !done {
                out.extend_from_slice(line);
                done = true;
            }
        } else {
            out.extend_from_slice(l);
        }
    }
    out
}

/// What is at the authorized_keys path now.
struct Current {
    text: Vec<u8>,
    /// Mode, owner and group to keep; `None` for a new file.
    meta: Option<(u32, u32, u32)>,
}

fn read_current(path: &str) -> Result<Current> {
    let m = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Current {
                text: Vec::new(),
                meta: None,
            })
        }
        Err(e) => return Err(Error::os(Status::NoInput, &msg(&["cannot stat ", path]), e)),
    };
    if m.file_type().is_symlink() {
        // Renaming over a link would replace the link, not its target; and a
        // link planted by the file's owner must not steer a root write.
        let target = std::fs::canonicalize(path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "its target".into());
        return Err(Error::new(
            Status::CantCreate,
            msg(&[
                path,
                " is a symbolic link; run again with --authorized-keys ",
                &target,
            ]),
        ));
    }
    if !m.is_file() {
        return Err(Error::new(
            Status::CantCreate,
            msg(&[
                path,
                " is not a regular file; pass the authorized_keys file with --authorized-keys",
            ]),
        ));
    }
    if m.len() > MAX_AUTHORIZED_KEYS {
        return Err(Error::new(
            Status::Data,
            msg(&[
                path,
                " is larger than 1 MiB; is it really an authorized_keys file?",
            ]),
        ));
    }
    let mut text = Vec::with_capacity(m.len() as usize + 512);
    File::open(path)
        .and_then(|f| f.take(MAX_AUTHORIZED_KEYS + 1).read_to_end(&mut text))
        .map_err(|e| Error::os(Status::NoInput, &msg(&["cannot read ", path]), e))?;
    Ok(Current {
        text,
        meta: Some((m.permissions().mode() & 0o7777, m.uid(), m.gid())),
    })
}

/// The directory holding authorized_keys, created (mode 0700, one level
/// only, like ~/.ssh) when missing. Owned like its own parent when root
/// creates it, so root can set up another user's ~/.ssh.
fn ensure_key_dir(dir: &str) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(Error::new(
                Status::CantCreate,
                msg(&[dir, " is not a directory"]),
            ))
        }
        Err(_) => {}
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Error::os(
                Status::CantCreate,
                &msg(&["cannot create ", dir, " (its parent must exist)"]),
                e,
            )
        })?;
    let parent = parent_dir(dir);
    if is_root() {
        if let Ok(p) = std::fs::metadata(parent) {
            std::os::unix::fs::chown(dir, Some(p.uid()), Some(p.gid()))
                .map_err(|e| Error::os(Status::CantCreate, &msg(&["cannot chown ", dir]), e))?;
        }
    }
    fsync_dir(parent)
}

/// Replaces `path` with `text` atomically, keeping mode and owner.
fn replace_file(path: &str, dir: &str, text: &[u8], meta: Option<(u32, u32, u32)>) -> Result<()> {
    let tmp = msg(&[path, ".entropyservice-tmp"]);
    let (mode, owner) = match meta {
        Some((mode, uid, gid)) => (mode, Some((uid, gid))),
        None => (
            0o600,
            std::fs::metadata(dir).ok().map(|d| (d.uid(), d.gid())),
        ),
    };
    let keep = |f: &File| {
        if let Some((uid, gid)) = owner.filter(|_| is_root()) {
            std::os::unix::fs::fchown(f, Some(uid), Some(gid))?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(mode))
    };
    let how = Replace {
        mode: 0o600,
        fsync: true,
        finish: Some(&keep),
    };
    files::replace(path, &tmp, text, &how).map_err(|(_, e)| {
        Error::os(
            Status::CantCreate,
            &msg(&["cannot replace ", path, " (through ", &tmp, ")"]),
            e,
        )
    })?;
    fsync_dir(dir)
}

/// Root about to read and write files under `dir`, a path that another user
/// controls in part (owns `dir`, a parent, or a link on the way): from now
/// on act as that user (effective uid, the directory's group, no other
/// groups). A link they plant (~/.ssh to a root-only directory, or
/// authorized_keys swapped for a link to a root-only file between the check
/// and the open) then reaches only what they could reach themselves.
/// Refuses a path that two other users control.
fn act_as_path_owner(dir: &str) -> Result<()> {
    if !is_root() {
        return Ok(());
    }
    let mut full = String::new();
    if !dir.starts_with('/') {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::os(Status::Os, "cannot get the current directory", e))?;
        full.push_str(&cwd.to_string_lossy());
    }
    full.push('/');
    full.push_str(dir);
    let mut owner: Option<(u32, u32)> = None;
    let mut prefix = String::new();
    for part in full.split('/').filter(|p| !p.is_empty()) {
        prefix.push('/');
        prefix.push_str(part);
        let Ok(m) = std::fs::symlink_metadata(&prefix) else {
            break;
        };
        if m.uid() == 0 {
            continue;
        }
        match owner {
            Some((u, _)) if u != m.uid() => {
                return Err(Error::new(
                    Status::NoPerm,
                    msg(&[
                        dir,
                        " lies under directories or links of two different users; pass an --authorized-keys path that root or its owner alone controls",
                    ]),
                ))
            }
            _ => owner = Some((m.uid(), m.gid())),
        }
    }
    match owner {
        Some((uid, gid)) => crate::sys::act_as(uid, gid)
            .map_err(|e| Error::os(Status::Os, &msg(&["cannot act as the owner of ", dir]), e)),
        None => Ok(()),
    }
}

pub fn authorize(a: &Authorize) -> Result<()> {
    let command = forced_command(a)?;
    let key = read_public_key(&a.key)?;
    let path = match &a.authorized_keys {
        Some(p) if !p.is_empty() && !p.ends_with('/') => p.clone(),
        Some(_) => {
            return Err(Error::new(
                Status::Usage,
                "--authorized-keys must name a file",
            ))
        }
        None => default_authorized_keys()?,
    };
    let restrict = restrict_works(&a.flavor, &path)? && !a.compat;
    let options = if restrict {
        "restrict"
    } else if a.flavor == "openssh" {
        // Only OpenSSH knows no-user-rc; Dropbear rejects a line with an unknown option.
        "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc"
    } else {
        EXPLICIT
    };
    let line = msg(&[
        "command=\"",
        &command,
        "\",",
        options,
        " ",
        &key.kind,
        " ",
        &key.b64,
        " entropyservice:",
        &a.client,
        "\n",
    ]);
    let binary = a.binary.as_deref().unwrap_or(DEFAULT_BINARY);
    if !is_executable(binary) {
        log::warn_parts(&[binary, " is not an executable file on this host; the forced command fails until it is installed there (or pass --binary)"]);
    }
    if !restrict && !a.compat {
        log::info("using the explicit no-pty,no-port-forwarding,... list: no SSH server here is known to support `restrict` (Dropbear 2022.82+, OpenSSH 7.2+)");
    }

    let dir = parent_dir(&path);
    act_as_path_owner(dir)?;
    if !a.dry_run {
        ensure_key_dir(dir)?;
    }
    // Lock the directory so concurrent runs append in turn; without the
    // directory (dry run of a new ~/.ssh) there is nothing to lock or read.
    let lock = match File::open(dir) {
        Ok(d) => {
            flock(&d, FlockOperation::LockExclusive)
                .map_err(|e| Error::os(Status::Os, &msg(&["cannot lock ", dir]), e))?;
            Some(d)
        }
        Err(e) if a.dry_run && e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Error::os(
                Status::CantCreate,
                &msg(&["cannot open ", dir]),
                e,
            ))
        }
    };
    let cur = if lock.is_some() {
        read_current(&path)?
    } else {
        Current {
            text: Vec::new(),
            meta: None,
        }
    };
    let existing = find_key(&cur.text, &key);
    if let (Some(n), false) = (existing, a.replace) {
        return Err(Error::new(
            Status::Data,
            msg(&[
                "this key is already in ",
                &path,
                " (line ",
                Num::new(n as u64).as_str(),
                "); pass --replace to rewrite that line, or remove it first",
            ]),
        ));
    }
    let comment = msg(&["entropyservice:", &a.client]);
    let other_key_of_client = cur.text.split(|&b| b == b'\n').any(|l| {
        !line_has_key(l, &key)
            && l.split(|b| b.is_ascii_whitespace())
                .any(|w| w == comment.as_bytes())
    });
    if other_key_of_client {
        log::warn_parts(&[
            "client ",
            &a.client,
            " already has another key in ",
            &path,
            "; both keys will work",
        ]);
    }
    if a.dry_run {
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
        return Ok(());
    }
    let text = if existing.is_some() {
        replace_key_line(&cur.text, &key, line.as_bytes())
    } else {
        let mut text = cur.text;
        if text.last().is_some_and(|&b| b != b'\n') {
            text.push(b'\n');
        }
        text.extend_from_slice(line.as_bytes());
        text
    };
    replace_file(&path, dir, &text, cur.meta)?;
    drop(lock);
    if std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o022 != 0) {
        log::warn_parts(&[dir, " is writable by group or others, so Dropbear and sshd ignore keys in it; run: chmod go-w ", dir]);
    }
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
    log::info_parts(&[
        if existing.is_some() {
            "rewrote the line of the key "
        } else {
            "authorized the key "
        },
        &key.fingerprint(),
        " for client ",
        &a.client,
        " in ",
        &path,
    ]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            version_after("Dropbear v2022.83\n", "Dropbear v"),
            Some((2022, 83))
        );
        assert_eq!(
            version_after("Dropbear v2024.86", "Dropbear v"),
            Some((2024, 86))
        );
        assert_eq!(
            version_after("OpenSSH_9.2p1 Debian-2, OpenSSL 3.0", "OpenSSH_"),
            Some((9, 2))
        );
        assert_eq!(
            version_after("unknown option -- V\nOpenSSH_7.1p2, OpenSSL", "OpenSSH_"),
            Some((7, 1))
        );
        assert_eq!(version_after("usage: sshd", "OpenSSH_"), None);
        assert!(
            (7, 10) >= OPENSSH_RESTRICT
                && (7, 1) < OPENSSH_RESTRICT
                && (2022, 82) >= DROPBEAR_RESTRICT
                && (2020, 81) < DROPBEAR_RESTRICT
        );
    }

    #[test]
    fn binaries() {
        assert!(is_safe_binary("/usr/bin/entropyservice"));
        assert!(!is_safe_binary("entropyservice"));
        assert!(!is_safe_binary("/usr/bin/entropy service"));
        assert!(!is_safe_binary("/tmp/x\";rm -rf /;\""));
        assert!(!is_safe_binary("/tmp/$(id)"));
    }

    #[test]
    fn duplicate_keys_are_found_on_any_line() {
        let mut blob = vec![0, 0, 0, 11];
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&[0, 0, 0, 32]);
        blob.extend_from_slice(&[9; 32]);
        let mut b64 = String::new();
        crate::hostkey::base64_encode(&blob, true, &mut b64);
        let key = PublicKey::parse(&msg(&["ssh-ed25519 ", &b64])).unwrap();
        let opts = msg(&["# c\n\ncommand=\"a b\",no-pty ssh-ed25519 ", &b64, " x"]);
        assert_eq!(find_key(opts.as_bytes(), &key), Some(3));
        let unpadded = msg(&["ssh-ed25519 ", b64.trim_end_matches('=')]);
        assert_eq!(find_key(unpadded.as_bytes(), &key), Some(1));
        // The same blob under another type word, or in a comment, is not it.
        let other = msg(&["ssh-rsa ", &b64, "\n# ", &b64]);
        assert_eq!(find_key(other.as_bytes(), &key), None);
        assert_eq!(find_key(b"", &key), None);
    }
}
