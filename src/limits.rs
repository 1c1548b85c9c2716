//! Session limits shared by every server process without a daemon: slot
//! files locked with flock. The kernel drops a lock when its holder dies, so
//! a session killed with SIGKILL frees its slot at once.

use crate::error::{Error, Result, Status};
use crate::text::msg;
use crate::text::Num;
use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;

/// Upper bound of slots scanned when no cap is set.
pub const UNCAPPED_SLOTS: u32 = 4096;

/// A held slot; dropping it (or dying) releases it.
pub struct Slot {
    _file: File,
}

fn slot_path(dir: &str, i: u32) -> String {
    msg(&[dir, "/slot-", Num::new(i as u64).as_str()])
}

/// Takes the lowest free slot of `cap` in `dir`, or `None` if all are held.
pub fn acquire(dir: &str, cap: u32) -> Result<Option<Slot>> {
    crate::runtime::ensure_private_dir(dir)?;
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
