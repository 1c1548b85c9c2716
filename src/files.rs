//! File-system rules shared by every writer. A file is replaced atomically
//! through a fresh temporary file that no planted link or FIFO can steer,
//! and a directory that holds our files is checked on the directory itself
//! (never through a link) for being private to this user.

use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

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

/// A last step on the written file before it replaces the old one.
pub type Finish<'a> = &'a dyn Fn(&File) -> io::Result<()>;

/// How `replace` makes the new file.
pub struct Replace<'a> {
    /// Its mode at creation (less what the umask takes away).
    pub mode: u32,
    /// fsync before the rename; false only for a file on tmpfs, where a
    /// crash loses it anyway.
    pub fsync: bool,
    /// Runs on the written file before the fsync and the rename (authorize
    /// gives it the old file's owner and exact mode there).
    pub finish: Option<Finish<'a>>,
}

/// Replaces `path` with `data` through `tmp` (in the same directory): a
/// leftover `tmp` is removed and the file created afresh with O_EXCL and
/// O_NOFOLLOW, so a link or FIFO planted there is never followed or opened,
/// and one planted again in between makes the create fail instead of
/// steering the write. Then the data, `finish`, fsync, and a rename over
/// `path`. On failure `tmp` is removed and `path` is as it was. Fsyncing
/// the directory after the rename is the caller's (some hold it open and
/// locked).
pub fn replace(path: &str, tmp: &str, data: &[u8], how: &Replace) -> Result<(), (Step, io::Error)> {
    let _ = std::fs::remove_file(tmp);
    let r = write_new(tmp, data, how)
        .and_then(|()| std::fs::rename(tmp, path).map_err(|e| (Step::Rename, e)));
    if r.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    r
}

fn write_new(tmp: &str, data: &[u8], how: &Replace) -> Result<(), (Step, io::Error)> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(how.mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)
        .map_err(|e| (Step::Create, e))?;
    f.write_all(data).map_err(|e| (Step::Write, e))?;
    if let Some(finish) = how.finish {
        finish(&f).map_err(|e| (Step::Write, e))?;
    }
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
            fsync: true,
            finish: None,
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
    fn finish_runs_before_the_rename_and_its_failure_keeps_the_old_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = scratch("finish");
        let (path, tmp) = (format!("{d}/f"), format!("{d}/f.tmp"));
        std::fs::write(&path, b"old").unwrap();
        let setuid = |f: &File| f.set_permissions(std::fs::Permissions::from_mode(0o4711));
        let how = Replace {
            mode: 0o600,
            fsync: false,
            finish: Some(&setuid),
        };
        replace(&path, &tmp, b"new", &how).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o4711);
        let fail = |_: &File| Err(io::Error::from_raw_os_error(libc::EPERM));
        let how = Replace {
            finish: Some(&fail),
            ..how
        };
        let e = replace(&path, &tmp, b"newer", &how).unwrap_err();
        assert_eq!(e.0, Step::Write);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(std::fs::symlink_metadata(&tmp).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn private_directories() {
        let d = scratch("private");
        use std::os::unix::fs::PermissionsExt;
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
