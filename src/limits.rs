//! Session limits shared by every server process without a daemon: slot
//! files locked with flock. The kernel drops a lock when its holder dies, so
//! a session killed with SIGKILL frees its slot at once.

use crate::error::{msg, Error, Result, Status};
use crate::log::Num;
use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;
use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

/// Upper bound of slots scanned when no cap is set.
pub const UNCAPPED_SLOTS: u32 = 4096;

/// The default lock directory for this user: /run/entropyservice as root;
/// otherwise `$XDG_RUNTIME_DIR/entropyservice` when that is set (a
/// directory only this user can write to, which no one else can squat),
/// else /tmp/entropyservice-UID.
pub fn default_lock_dir() -> String {
    default_lock_dir_for(
        rustix::process::getuid().as_raw(),
        crate::sys::env(c"XDG_RUNTIME_DIR"),
    )
}

fn default_lock_dir_for(uid: u32, xdg_runtime_dir: Option<&str>) -> String {
    if uid == 0 {
        // OpenWrt has /var/run (a link into /tmp) but not always /run.
        if std::fs::metadata("/run").is_ok() {
            "/run/entropyservice".into()
        } else {
            "/var/run/entropyservice".into()
        }
    } else {
        match xdg_runtime_dir {
            // The spec asks for an absolute path and says to ignore others.
            Some(x) if x.starts_with('/') => msg(&[x.trim_end_matches('/'), "/entropyservice"]),
            _ => msg(&["/tmp/entropyservice-", Num::new(uid as u64).as_str()]),
        }
    }
}

/// `uid N (NAME)`: who owns a directory, for a refusal. The name comes from
/// /etc/passwd when it is there and plain.
fn owner(uid: u32) -> String {
    let n = Num::new(uid as u64);
    let name = crate::sys::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                f.next();
                (f.next()? == n.as_str() && crate::parse::is_safe_name(name))
                    .then(|| name.to_string())
            })
        });
    match name {
        Some(name) => msg(&["uid ", n.as_str(), " (", &name, ")"]),
        None => msg(&["uid ", n.as_str()]),
    }
}

/// Creates `dir` (mode 0700) if missing and refuses one that is not a
/// directory of this user, or that group or others can write to.
pub fn ensure_private_dir(dir: &str) -> Result<()> {
    if let Err(e) = crate::sys::create_dir_all(dir, 0o700) {
        return Err(Error::os(
            Status::CantCreate,
            &msg(&["cannot create directory ", dir]),
            e,
        ));
    }
    let m = std::fs::symlink_metadata(dir)
        .map_err(|e| Error::os(Status::CantCreate, &msg(&["cannot stat ", dir]), e))?;
    let uid = rustix::process::getuid().as_raw();
    let why = if !m.is_dir() {
        msg(&["it is a symlink or not a directory; remove it or choose another"])
    } else if m.uid() != uid {
        msg(&[
            "it is owned by ",
            &owner(m.uid()),
            " instead of this user, ",
            &owner(uid),
            "; another user may have made it to deny service: remove it or choose another",
        ])
    } else if m.permissions().mode() & 0o022 != 0 {
        msg(&["group or others can write to it; run: chmod 700 ", dir])
    } else {
        return Ok(());
    };
    Err(Error::new(
        Status::Config,
        msg(&["directory ", dir, " is not private to this user: ", &why]),
    ))
}

/// A held slot; dropping it (or dying) releases it.
pub struct Slot {
    _file: File,
}

fn slot_path(dir: &str, i: u32) -> String {
    msg(&[dir, "/slot-", Num::new(i as u64).as_str()])
}

/// Takes the lowest free slot of `cap` in `dir`, or `None` if all are held.
pub fn acquire(dir: &str, cap: u32) -> Result<Option<Slot>> {
    ensure_private_dir(dir)?;
    if let Some(slot) = scan(dir, cap)? {
        return Ok(Some(slot));
    }
    // A free slot that `count_live` is probing looks held for a few
    // microseconds; a second look tells a probe from a session.
    crate::clock::sleep_ns(5_000_000);
    scan(dir, cap)
}

fn scan(dir: &str, cap: u32) -> Result<Option<Slot>> {
    for i in 0..cap {
        let path = slot_path(dir, i);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                Error::os(
                    Status::CantCreate,
                    &msg(&["cannot open slot file ", &path]),
                    e,
                )
            })?;
        match flock(&f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(Some(Slot { _file: f })),
            Err(Errno::WOULDBLOCK) => continue,
            Err(e) => return Err(Error::os(Status::Os, &msg(&["cannot lock ", &path]), e)),
        }
    }
    Ok(None)
}

/// Counts held slots in `dir` (this process's own included), scanning slot
/// files from 0 up to the first one that does not exist (`acquire` creates
/// them in order and none is ever removed). The probe is a shared lock held
/// for a moment, so it never blocks a session.
pub fn count_live(dir: &str) -> u32 {
    let mut live = 0;
    for i in 0..UNCAPPED_SLOTS {
        let f = match File::open(slot_path(dir, i)) {
            Ok(f) => f,
            Err(_) => break,
        };
        match flock(&f, FlockOperation::NonBlockingLockShared) {
            Ok(()) => {}
            Err(_) => live += 1,
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dirs() {
        assert_eq!(
            default_lock_dir_for(1000, Some("/run/user/1000")),
            "/run/user/1000/entropyservice"
        );
        assert_eq!(
            default_lock_dir_for(1000, Some("/run/user/1000/")),
            "/run/user/1000/entropyservice"
        );
        // Unset or relative: the /tmp fallback.
        assert_eq!(default_lock_dir_for(1000, None), "/tmp/entropyservice-1000");
        assert_eq!(
            default_lock_dir_for(1000, Some("run/user")),
            "/tmp/entropyservice-1000"
        );
        assert_eq!(
            default_lock_dir_for(1000, Some("")),
            "/tmp/entropyservice-1000"
        );
        // Root keeps /run (or /var/run) whatever the environment says.
        assert!(default_lock_dir_for(0, Some("/run/user/0")).ends_with("run/entropyservice"));
    }

    #[test]
    fn owner_names_the_user() {
        assert_eq!(owner(0), "uid 0 (root)");
        assert_eq!(owner(4_000_000_000), "uid 4000000000");
    }
}
