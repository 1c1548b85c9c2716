//! File-system rules shared by every writer. A file is replaced atomically
//! through a fresh temporary file that no planted link or FIFO can steer,
//! and a directory that holds our files is checked on the directory itself
//! (never through a link) for being private to this user.

use std::fs::Metadata;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};

/// Why a directory is not private.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotPrivate {
    /// A symbolic link, or not a directory at all.
    NotDir,
    /// Owned by this other user.
    Owner(u32),
    /// Group or others have one of the forbidden permissions.
    Mode,
}

/// Checks the metadata of a directory taken without following a link
/// (lstat, or fstat of an O_NOFOLLOW descriptor): a directory owned by
/// this user (or root, when `root_ok`) whose mode has none of the bits in
/// `others` (0o022: no one else writes to it; 0o077: no one else uses it).
pub fn check_private(m: &Metadata, others: u32, root_ok: bool) -> Result<(), NotPrivate> {
    let uid = rustix::process::geteuid().as_raw();
    if !m.is_dir() {
        Err(NotPrivate::NotDir)
    } else if m.uid() != uid && !(root_ok && m.uid() == 0) {
        Err(NotPrivate::Owner(m.uid()))
    } else if m.mode() & others != 0 {
        Err(NotPrivate::Mode)
    } else {
        Ok(())
    }
}

/// The step of `replace` that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Create,
    Write,
    Fsync,
    Rename,
}

/// How `replace` makes the new file.
pub struct Replace {
    /// Its mode, set exactly once the data is written (0600 until then)
    /// and after any change of owner.
    pub mode: u32,
    /// Its owner and group, set when this process is root.
    pub owner: Option<(u32, u32)>,
    /// fsync before the rename; false only for a file on tmpfs, where a
    /// crash loses it anyway.
    pub fsync: bool,
}

/// Replaces `path` with `data` through `tmp` (in the same directory): a
/// leftover `tmp` is removed and the file created afresh with O_EXCL and
/// O_NOFOLLOW, so a link or FIFO planted there is never followed or opened,
/// and one planted again in between makes the create fail instead of
/// steering the write. Then the data, owner and mode, fsync, and a rename
/// over `path`. On failure `tmp` is removed and `path` is as it was.
/// Fsyncing the directory after the rename is the caller's (some hold it
/// open and locked).
pub fn replace(
    path: &str,
    tmp: &str,
    data: &[u8],
    how: &Replace,
) -> Result<(), (Step, std::io::Error)> {
    let _ = std::fs::remove_file(tmp);
    let r = write_new(tmp, data, how)
        .and_then(|()| std::fs::rename(tmp, path).map_err(|e| (Step::Rename, e)));
    if r.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    r
}

fn write_new(tmp: &str, data: &[u8], how: &Replace) -> Result<(), (Step, std::io::Error)> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)
        .map_err(|e| (Step::Create, e))?;
    f.write_all(data).map_err(|e| (Step::Write, e))?;
    let is_root = rustix::process::geteuid().is_root();
    if let Some((uid, gid)) = how.owner.filter(|_| is_root) {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(|e| (Step::Write, e))?;
    }
    f.set_permissions(std::fs::Permissions::from_mode(how.mode))
        .map_err(|e| (Step::Write, e))?;
    if how.fsync {
        f.sync_all().map_err(|e| (Step::Fsync, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> String {
        let d = std::env::temp_dir().join(format!("es-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.to_str().unwrap().to_string()
    }

    #[test]
    fn replace_never_follows_a_planted_temp_link() {
        let d = scratch("replace");
        let (path, tmp, victim) = (format!("{d}/f"), format!("{d}/f.tmp"), format!("{d}/v"));
        std::fs::write(&victim, b"victim").unwrap();
        std::fs::write(&path, b"old").unwrap();
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let how = Replace {
            mode: 0o640,
            owner: None,
            fsync: true,
        };
        replace(&path, &tmp, b"new", &how).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read(&victim).unwrap(), b"victim");
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert!(std::fs::symlink_metadata(&tmp).is_err());
        // A failed rename (onto a non-empty directory) leaves no temp file
        // and the target as it was.
        let full = format!("{d}/full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(format!("{full}/x"), b"x").unwrap();
        let e = replace(&full, &tmp, b"new", &how).unwrap_err();
        assert_eq!(e.0, Step::Rename);
        assert!(std::fs::symlink_metadata(&tmp).is_err());
        assert!(std::fs::metadata(&full).unwrap().is_dir());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn private_directories() {
        let d = scratch("private");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        let m = |p: &str| std::fs::symlink_metadata(p).unwrap();
        assert_eq!(check_private(&m(&d), 0o077, false), Ok(()));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(check_private(&m(&d), 0o022, false), Ok(()));
        assert_eq!(check_private(&m(&d), 0o077, false), Err(NotPrivate::Mode));
        let link = format!("{d}-link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert_eq!(
            check_private(&m(&link), 0o022, false),
            Err(NotPrivate::NotDir)
        );
        std::fs::remove_file(&link).unwrap();
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::chown(&d, Some(65534), None).unwrap();
            assert_eq!(
                check_private(&m(&d), 0o022, true),
                Err(NotPrivate::Owner(65534))
            );
        } else {
            assert_eq!(
                check_private(&m("/"), 0o022, false),
                Err(NotPrivate::Owner(0))
            );
            assert_eq!(check_private(&m("/"), 0o022, true), Ok(()));
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
