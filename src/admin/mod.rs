//! The admin commands (cargo feature `admin`, left out of the router
//! build): `keygen` (keygen.rs) makes the client's key, `authorize`
//! (authorize.rs) adds it to the server's authorized_keys behind the forced command, `hostkey`
//! (hostkey.rs) prints the server's host keys for the client's pin.
//!
//! Guarantees: helper tools (dropbearkey, ssh-keygen, dropbear, sshd) run
//! with explicit argument vectors, never through a shell. `keygen` never
//! replaces an existing key file. `authorize` changes authorized_keys only by
//! appending one line: temp file in the same directory, fsync, rename, fsync
//! of the directory, under a lock on the directory; every other byte, the
//! file's mode and its owner stay as they were. It never writes `from=`
//! (Dropbear rejects the whole line): the address check is the forced
//! command's `--allow-from`.
//!
//! This file holds what they share: running a helper tool, finding one,
//! reading a key line, and small path helpers.

pub mod authorize;
pub mod hostkey;
pub mod keygen;

pub use authorize::authorize;
pub use hostkey::hostkey;
pub use keygen::keygen;

use crate::child::{find_program, SYSTEM_PATH};
use crate::error::{Error, Result, Status};
use crate::hostkey::PublicKey;
use crate::text::msg;
use rustix::io::Errno;
use std::fs::File;

/// Largest .pub file read.
const MAX_PUB_FILE: u64 = 64 * 1024;

struct ToolRun {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl ToolRun {
    /// The tool's last non-empty stderr line, bounded, for an error message.
    fn complaint(&self) -> &str {
        crate::text::last_line(&self.stderr, 200)
    }
}

fn run_tool(program: &str, args: &[&str]) -> Result<ToolRun> {
    let fail = |e| Error::os(Status::Unavailable, &msg(&["cannot run ", program]), e);
    let path = if program.contains('/') {
        program.to_string()
    } else {
        find_program(program, SYSTEM_PATH).ok_or_else(|| fail(Errno::NOENT))?
    };
    let o = crate::child::output(&path, args).map_err(fail)?;
    Ok(ToolRun {
        ok: o.ok,
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    })
}

/// The first line of `text` that is a public key, with its comment.
pub fn first_key_line(text: &str) -> Option<(PublicKey, &str)> {
    text.lines()
        .map(str::trim)
        .find_map(|l| PublicKey::parse(l).ok().map(|k| (k, l)))
}

fn parent_dir(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn remove_if_present(path: &str) {
    let _ = std::fs::remove_file(path);
}

fn fsync_dir(dir: &str) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        Error::os(
            Status::CantCreate,
            &msg(&["cannot fsync directory ", dir]),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parent_dir("/etc/dropbear/authorized_keys"), "/etc/dropbear");
        assert_eq!(parent_dir("/x"), "/");
        assert_eq!(parent_dir("x"), ".");
    }
}
