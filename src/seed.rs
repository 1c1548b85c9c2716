//! Seed files, with seedrng's rules:
//! - a seed written while the CRNG was ready is "creditable" (`seed.credit`),
//!   any other only mixed (`seed.no-credit`);
//! - a seed file is removed and the directory fsync'd before its bytes go to
//!   the kernel, so a crash can never make a seed be used twice;
//! - new seeds go to a temporary file that is fsync'd and renamed;
//! - concurrent runs are serialized with flock on the directory;
//! - a leftover `seed.tmp` (a save killed half-way) is never loaded.
//!
//! A creditable seed can only exist while the CRNG is not ready if it was
//! written in an earlier boot (readiness never goes back within a boot), so
//! loading whatever is there whenever the CRNG is not ready never credits
//! the same entropy twice, whoever loads it (`seed load` at boot or the client).

use crate::cli;
use crate::error::{Error, Result, Status};
use crate::files::Step;
use crate::kernel::Pool;
use crate::log;
use crate::sys::{getrandom, GRND_INSECURE, GRND_NONBLOCK};
use crate::text::msg;
use crate::text::Num;
use rustix::fs::{flock, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

pub const DEFAULT_DIR: &str = "/etc/entropyservice/seed";
pub const CREDIT: &str = "seed.credit";
pub const NO_CREDIT: &str = "seed.no-credit";
const TEMP: &str = "seed.tmp";
pub const MIN_SEED: usize = 32;
pub const MAX_SEED: usize = 512;

/// A locked seed directory.
pub struct SeedDir {
    path: String,
    dir: File,
}

/// What `load` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub bytes: usize,
    pub bits_credited: u64,
}

impl SeedDir {
    /// Opens (creating with mode 0700) and locks the directory. It must be
    /// a directory (not a link to one) owned by this user that group and
    /// others cannot use: root loads seeds at boot only from its own.
    pub fn open(path: &str) -> Result<SeedDir> {
        crate::sys::create_dir_all(path, 0o700).map_err(|e| {
            Error::os(
                Status::CantCreate,
                &msg(&["cannot create seed directory ", path]),
                e,
            )
        })?;
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            Error::os(
                Status::CantCreate,
                &msg(&[
                    "cannot open seed directory ",
                    path,
                    " (a symlink is refused)",
                ]),
                e,
            )
        })?;
        let dir = File::from(dir);
        // std's fstat, not rustix's: on the libc backend (big-endian MIPS)
        // rustix tries statx through dlsym, which costs 22 KB of musl.
        let st = dir
            .metadata()
            .map_err(|e| Error::os(Status::Os, &msg(&["cannot stat seed directory ", path]), e))?;
        if crate::files::check_private(&st, 0o077, false).is_err() {
            return Err(Error::new(
                Status::NoPerm,
                msg(&[
                    "seed directory ",
                    path,
                    " must be owned by the user running this command and private to it; run: chown $(id -u) ",
                    path,
                    " && chmod 700 ",
                    path,
                ]),
            ));
        }
        flock(&dir, FlockOperation::LockExclusive)
            .map_err(|e| Error::os(Status::Os, &msg(&["cannot lock seed directory ", path]), e))?;
        Ok(SeedDir {
            path: path.into(),
            dir,
        })
    }

    fn file(&self, name: &str) -> String {
        msg(&[&self.path, "/", name])
    }

    fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.dir).map_err(|e| {
            Error::os(
                Status::Io,
                &msg(&["cannot fsync seed directory ", &self.path]),
                e,
            )
        })
    }

    /// Takes one seed file out of the directory: read, remove, fsync the
    /// directory, and only then return the bytes.
    fn take(&self, name: &str) -> Result<Option<heapless::Vec<u8, MAX_SEED>>> {
        let path = self.file(name);
        let Some(mut f) = open_seed(&self.dir, name, &path, rustix::process::geteuid().as_raw())?
        else {
            return Ok(None);
        };
        let mut buf = [0u8; MAX_SEED + 1];
        let mut n = 0;
        loop {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => {
                    n += k;
                    if n == buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::os(
                        Status::Io,
                        &msg(&["cannot read seed ", &path]),
                        e,
                    ))
                }
            }
        }
        std::fs::remove_file(&path)
            .map_err(|e| Error::os(Status::Io, &msg(&["cannot remove seed ", &path]), e))?;
        self.sync()?;
        if !(MIN_SEED..=MAX_SEED).contains(&n) {
            buf.fill(0);
            log::warn_parts(&[
                "ignoring seed ",
                &path,
                ": its size is not between 32 and 512 bytes",
            ]);
            return Ok(None);
        }
        let mut v = heapless::Vec::new();
        let _ = v.extend_from_slice(&buf[..n]);
        buf.fill(0);
        Ok(Some(v))
    }

    /// Feeds both seed files (if present) to the kernel: the no-credit one
    /// mixed, the creditable one credited in full. Logs one line per seed
    /// with the decision and what RNDADDENTROPY accepted.
    pub fn load(&self, pool: &mut Pool) -> Result<Loaded> {
        let mut out = Loaded::default();
        for (name, bits) in [(NO_CREDIT, 0), (CREDIT, 8)] {
            if let Some(mut seed) = self.take(name)? {
                let r = pool.add(&seed, bits);
                let len = seed.len();
                seed.iter_mut().for_each(|b| *b = 0);
                let credited = r?;
                out.bits_credited += credited;
                out.bytes += len;
                let path = self.file(name);
                let n = Num::new(len as u64);
                if bits == 0 {
                    log::info_parts(&[
                        "seed ",
                        &path,
                        ": ",
                        n.as_str(),
                        " bytes mixed without credit (written before the CRNG was ready)",
                    ]);
                } else {
                    log::info_parts(&[
                        "seed ",
                        &path,
                        ": ",
                        n.as_str(),
                        " bytes mixed, ",
                        Num::new(credited).as_str(),
                        if pool.can_credit() {
                            " bits credited (creditable seed)"
                        } else {
                            " bits credited (creditable seed, but no CAP_SYS_ADMIN to credit it)"
                        },
                    ]);
                }
            }
        }
        Ok(out)
    }

    /// Writes a new seed: creditable if the CRNG is ready now. Returns
    /// whether it is creditable.
    pub fn save(&self) -> Result<bool> {
        let mut seed = [0u8; MAX_SEED];
        let len = seed_len();
        let creditable = match fill_seed(&mut seed[..len]) {
            Ok(c) => c,
            Err(e) => {
                seed.fill(0);
                return Err(e);
            }
        };
        let (name, other) = if creditable {
            (CREDIT, NO_CREDIT)
        } else {
            (NO_CREDIT, CREDIT)
        };
        let (tmp, dest) = (self.file(TEMP), self.file(name));
        let how = crate::files::Replace {
            mode: 0o600,
            fsync: true,
            finish: None,
        };
        let r = crate::files::replace(&dest, &tmp, &seed[..len], &how);
        seed.fill(0);
        r.map_err(|(step, e)| {
            let what = match step {
                Step::Create => "cannot create ",
                Step::Write => "cannot write ",
                Step::Fsync => "cannot fsync ",
                Step::Rename => return kept(&msg(&["cannot rename ", &tmp, " to ", &dest]), e),
            };
            kept(&msg(&[what, &tmp]), e)
        })?;
        // One seed at a time: an older one of the other kind is stale now.
        // (Something that is no seed file there, e.g. a directory, stays:
        // it is never loaded, and it must not stop the new seed.)
        match std::fs::remove_file(self.file(other)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => refuse(&self.file(other)),
        }
        self.sync()?;
        Ok(creditable)
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Opens a seed file for reading without following a link or blocking on
/// a FIFO, and accepts only a regular file owned by `owner`. Anything else
/// is refused with one warning and left where it is (None); so is a file
/// that is not there.
fn open_seed(dir: &File, name: &str, path: &str, owner: u32) -> Result<Option<File>> {
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        // O_NOFOLLOW on a link: ELOOP.
        Err(Errno::LOOP) => {
            refuse(path);
            return Ok(None);
        }
        Err(e) => return Err(Error::os(Status::Io, &msg(&["cannot open seed ", path]), e)),
    };
    let f = File::from(fd);
    let st = f
        .metadata()
        .map_err(|e| Error::os(Status::Io, &msg(&["cannot stat seed ", path]), e))?;
    // A hard link to some other file of this user's is no seed either.
    if !st.file_type().is_file() || st.uid() != owner || st.nlink() != 1 {
        refuse(path);
        return Ok(None);
    }
    Ok(Some(f))
}

fn refuse(path: &str) {
    log::warn_parts(&[
        "ignoring ",
        path,
        ": not a regular file owned by this user (a link, FIFO, directory, hard link or another user's file); remove it",
    ]);
}

/// Mixes into the pool, never crediting, and removes the seeds that an
/// unprivileged client (the jailed one) left in its own directory `dir`:
/// root never credits bytes from a directory another user can write, and
/// never follows a link, blocks on a FIFO or waits on that user's lock
/// there. Returns the bytes mixed.
pub fn adopt(dir: &str, pool: &mut Pool) -> usize {
    let d = match rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => File::from(d),
        Err(Errno::NOENT) => return 0,
        Err(e) => {
            log::warn(
                &Error::os(
                    Status::Io,
                    &msg(&["cannot open client seed directory ", dir]),
                    e,
                )
                .msg,
            );
            return 0;
        }
    };
    let owner = match d.metadata() {
        Ok(st) if st.mode() & 0o022 == 0 => st.uid(),
        _ => {
            log::warn_parts(&[
                "ignoring client seed directory ",
                dir,
                ": writable by group or others",
            ]);
            return 0;
        }
    };
    if flock(&d, FlockOperation::NonBlockingLockExclusive).is_err() {
        log::warn_parts(&[
            "client seed directory ",
            dir,
            " is locked; its seed stays for next time",
        ]);
        return 0;
    }
    let mut mixed = 0;
    for name in [NO_CREDIT, CREDIT] {
        let path = msg(&[dir, "/", name]);
        let Ok(Some(mut f)) = open_seed(&d, name, &path, owner) else {
            continue;
        };
        let mut buf = [0u8; MAX_SEED + 1];
        let n = read_up_to(&mut f, &mut buf);
        let _ = rustix::fs::unlinkat(&d, name, rustix::fs::AtFlags::empty());
        if (MIN_SEED..=MAX_SEED).contains(&n) && pool.add(&buf[..n], 0).is_ok() {
            mixed += n;
            log::info_parts(&[
                "seed ",
                &path,
                ": ",
                Num::new(n as u64).as_str(),
                " bytes from the unprivileged client mixed without credit",
            ]);
        }
        buf.fill(0);
    }
    mixed
}

/// Reads until EOF, an error or a full buffer; returns the count.
fn read_up_to(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    n
}

/// A failed save: says that the seed already in place was not touched
/// (e.g. a full disk: `cannot write DIR/seed.tmp: No space left on device`).
fn kept(what: &str, e: impl core::fmt::Display) -> Error {
    let mut s = msg(&[what, ": "]);
    crate::error::push_display(&mut s, e);
    s.push_str("; the previous seed is kept");
    Error::new(Status::CantCreate, s)
}

/// `entropyservice seed load|save`. `load` replaces the used seed at once
/// (like seedrng), so a crash later in boot still leaves one for next boot.
pub fn run(a: &cli::Seed) -> Result<()> {
    let dir = a.seed_dir.as_deref().unwrap_or(DEFAULT_DIR);
    let load = match a.action.as_str() {
        "load" => true,
        "save" => false,
        _ => return Err(Error::new(Status::Usage, "seed takes `load` or `save`")),
    };
    check_dir_mode(dir)?;
    let d = SeedDir::open(dir)?;
    let mut pool = match (load, &a.client_seed_dir) {
        (false, None) => None,
        _ => Some(Pool::open(0)?),
    };
    let loaded = match (load, pool.as_mut()) {
        (true, Some(p)) => Some(d.load(p)?),
        _ => None,
    };
    // After root's own seed, so a full pool never waits on the client's.
    if let (Some(c), Some(p)) = (&a.client_seed_dir, pool.as_mut()) {
        adopt(c, p);
    }
    let creditable = d.save()?;
    let kind = if creditable {
        "creditable"
    } else {
        "not creditable: the CRNG is not ready"
    };
    match loaded {
        Some(l) => log::info_parts(&[
            "seed load: ",
            Num::new(l.bytes as u64).as_str(),
            " bytes mixed, ",
            Num::new(l.bits_credited).as_str(),
            " bits credited; new seed saved (",
            kind,
            ")",
        ]),
        None => log::info_parts(&["seed save: new seed written (", kind, ")"]),
    }
    Ok(())
}

/// Fills a new seed and says whether it is creditable, as busybox seedrng
/// does: creditable only if getrandom(GRND_NONBLOCK) filled it all (the
/// CRNG is ready); else getrandom(GRND_INSECURE), and where that is missing
/// (before Linux 5.6: EINVAL) or falls short, /dev/urandom (which never
/// blocks on those kernels). Short results are continued until the buffer
/// is full: no unfilled tail is ever saved.
fn fill_seed(buf: &mut [u8]) -> Result<bool> {
    if fill_all(buf, GRND_NONBLOCK).is_ok() {
        return Ok(true);
    }
    if fill_all(buf, GRND_INSECURE).is_ok() {
        return Ok(false);
    }
    read_urandom(buf)?;
    Ok(false)
}

/// getrandom until `buf` is full; a result of 0 is an error (EIO).
fn fill_all(buf: &mut [u8], flags: u32) -> core::result::Result<(), Errno> {
    let mut off = 0;
    while off < buf.len() {
        match getrandom(&mut buf[off..], flags) {
            Ok(0) => return Err(Errno::IO),
            Ok(n) => off += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` from /dev/urandom, which must be a character device.
fn read_urandom(buf: &mut [u8]) -> Result<()> {
    const PATH: &str = "/dev/urandom";
    let err = |e| Error::os(Status::Os, "cannot read /dev/urandom for a new seed", e);
    let fd = rustix::fs::open(
        PATH,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(err)?;
    let mut f = File::from(fd);
    let is_dev = f.metadata().map(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_char_device()
    });
    if !matches!(is_dev, Ok(true)) || read_up_to(&mut f, buf) != buf.len() {
        return Err(err(Errno::IO));
    }
    Ok(())
}

/// Seed size: the pool size in bytes, between MIN_SEED and MAX_SEED.
fn seed_len() -> usize {
    let bits = crate::sys::read_to_string("/proc/sys/kernel/random/poolsize")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(256);
    (bits / 8).clamp(MIN_SEED, MAX_SEED)
}

/// Refuses a seed directory others can read or write.
pub fn check_dir_mode(path: &str) -> Result<()> {
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            return Err(Error::new(
                Status::NoPerm,
                msg(&[
                    "seed directory ",
                    path,
                    " is accessible by group or others; run: chmod 700 ",
                    path,
                ]),
            ));
        }
    }
    Ok(())
}
