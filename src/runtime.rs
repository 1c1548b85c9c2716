//! Runtime directories: where this user's runtime files go by default (the
//! server's session slot locks, the client's status file, the SSH child's
//! pinned known_hosts and the per-boot marker), and the check that such a
//! directory is private to this user before anything is put in it.

use crate::error::{Error, Result, Status};
use crate::files::{self, NotPrivate};
use crate::text::{msg, Num};

/// The default runtime directory for this user: /run/entropyservice as
/// root; otherwise `$XDG_RUNTIME_DIR/entropyservice` when that is set (a
/// directory only this user can write to, which no one else can squat),
/// else /tmp/entropyservice-UID.
pub fn default_dir() -> String {
    default_dir_for(
        rustix::process::getuid().as_raw(),
        crate::sys::env(c"XDG_RUNTIME_DIR"),
    )
}

fn default_dir_for(uid: u32, xdg_runtime_dir: Option<&str>) -> String {
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
    let why = match files::check_private(&m, 0o022, false) {
        Ok(()) => return Ok(()),
        Err(NotPrivate::NotDir) => {
            msg(&["it is a symlink or not a directory; remove it or choose another"])
        }
        Err(NotPrivate::Owner(uid)) => msg(&[
            "it is owned by ",
            &owner(uid),
            " instead of this user, ",
            &owner(rustix::process::geteuid().as_raw()),
            "; another user may have made it to deny service: remove it or choose another",
        ]),
        Err(NotPrivate::Mode) => msg(&["group or others can write to it; run: chmod 700 ", dir]),
    };
    Err(Error::new(
        Status::Config,
        msg(&["directory ", dir, " is not private to this user: ", &why]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dirs() {
        assert_eq!(
            default_dir_for(1000, Some("/run/user/1000")),
            "/run/user/1000/entropyservice"
        );
        assert_eq!(
            default_dir_for(1000, Some("/run/user/1000/")),
            "/run/user/1000/entropyservice"
        );
        // Unset or relative: the /tmp fallback.
        assert_eq!(default_dir_for(1000, None), "/tmp/entropyservice-1000");
        assert_eq!(
            default_dir_for(1000, Some("run/user")),
            "/tmp/entropyservice-1000"
        );
        assert_eq!(default_dir_for(1000, Some("")), "/tmp/entropyservice-1000");
        // Root keeps /run (or /var/run) whatever the environment says.
        assert!(default_dir_for(0, Some("/run/user/0")).ends_with("run/entropyservice"));
    }

    #[test]
    fn owner_names_the_user() {
        assert_eq!(owner(0), "uid 0 (root)");
        assert_eq!(owner(4_000_000_000), "uid 4000000000");
    }
}
