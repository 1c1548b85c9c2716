//! The one module with `unsafe`: kernel random-pool ioctls, signal flags,
//! child-process setup and syslog. Everything else in the crate is safe code.
//!
//! Opcodes come from `rustix::ioctl::opcode`, which encodes direction and size
//! per architecture (MIPS and PowerPC use a different layout than x86 and ARM).
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicI32, Ordering};
use rustix::fd::AsFd;
use rustix::io::Errno;
use rustix::ioctl::{opcode, Getter, NoArg, Opcode, Setter};

/// Largest payload of one RNDADDENTROPY call.
pub const POOL_CHUNK: usize = 512;

/// `struct rand_pool_info` with a fixed-size buffer, so no length is ever
/// trusted beyond what was checked on construction.
#[repr(C)]
pub struct RandPoolInfo {
    entropy_count: libc::c_int,
    buf_size: libc::c_int,
    buf: [u8; POOL_CHUNK],
}

const RNDGETENTCNT: Opcode = opcode::read::<libc::c_int>(b'R', 0);
// The kernel's header declares the argument as int[2]; that size is in the opcode.
const RNDADDENTROPY: Opcode = opcode::write::<[libc::c_int; 2]>(b'R', 3);
const RNDRESEEDCRNG: Opcode = opcode::none(b'R', 7);

/// The numeric opcodes, for diagnostics and tests. (`Opcode`'s width
/// differs between targets, hence the casts.)
#[allow(clippy::unnecessary_cast)]
pub fn opcodes() -> [u32; 3] {
    [
        RNDGETENTCNT as u32,
        RNDADDENTROPY as u32,
        RNDRESEEDCRNG as u32,
    ]
}

/// Reads the kernel's credited entropy count in bits.
pub fn get_entropy_count(fd: impl AsFd) -> Result<i32, Errno> {
    // SAFETY: RNDGETENTCNT writes one int; Getter provides exactly that storage.
    unsafe { rustix::ioctl::ioctl(fd, Getter::<RNDGETENTCNT, libc::c_int>::new()) }
}

/// Mixes `data` into the input pool and credits `bits` (the kernel caps it).
/// `data` longer than `POOL_CHUNK` is refused with EINVAL before any call.
pub fn add_entropy(fd: impl AsFd, data: &[u8], bits: u32) -> Result<(), Errno> {
    if data.len() > POOL_CHUNK || bits > data.len() as u32 * 8 {
        return Err(Errno::INVAL);
    }
    let mut info = RandPoolInfo {
        entropy_count: bits as libc::c_int,
        buf_size: data.len() as libc::c_int,
        buf: [0; POOL_CHUNK],
    };
    info.buf[..data.len()].copy_from_slice(data);
    // SAFETY: `info` is a complete rand_pool_info whose buf_size is no larger
    // than its buffer; the kernel reads buf_size bytes after the two ints.
    unsafe { rustix::ioctl::ioctl(&fd, Setter::<RNDADDENTROPY, RandPoolInfo>::new(info)) }
}

/// Asks the kernel to reseed the CRNG from the input pool now.
pub fn reseed_crng(fd: impl AsFd) -> Result<(), Errno> {
    // SAFETY: RNDRESEEDCRNG takes no argument.
    unsafe { rustix::ioctl::ioctl(fd, NoArg::<RNDRESEEDCRNG>::new()) }
}

/// The last terminating signal received (0 if none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::Relaxed);
}

/// Installs handlers for SIGTERM, SIGINT and SIGHUP that only record the
/// signal, without SA_RESTART, so blocking poll/read calls return EINTR and
/// the loops can wind down cleanly. SIGPIPE stays ignored (Rust's default),
/// so a closed pipe shows up as EPIPE.
pub fn install_signal_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler only stores to an
        // atomic, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, core::ptr::null_mut());
        }
    }
}

/// The terminating signal received so far, if any.
pub fn pending_signal() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// Makes a spawned child its own session leader (no controlling terminal, so
/// an SSH client can never prompt) and kills it if this process dies.
pub fn detach_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (setsid, prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // Under ujail CAP_SYS_ADMIN is ambient; the SSH client must not inherit it.
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
            // The parent may have died before prctl took effect.
            if libc::getppid() == 1 {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_match_the_kernel_header() {
        let [get, add, reseed] = opcodes();
        if cfg!(any(
            target_arch = "mips",
            target_arch = "mips64",
            target_arch = "powerpc",
            target_arch = "powerpc64"
        )) {
            assert_eq!([get, add, reseed], [0x4004_5200, 0x8008_5203, 0x2000_5207]);
        } else {
            assert_eq!([get, add, reseed], [0x8004_5200, 0x4008_5203, 0x0000_5207]);
        }
    }

    #[test]
    fn oversized_payload_is_refused_before_the_kernel() {
        let f = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(
            add_entropy(&f, &[0u8; POOL_CHUNK + 1], 0),
            Err(Errno::INVAL)
        );
        assert_eq!(add_entropy(&f, &[0u8; 4], 33), Err(Errno::INVAL));
    }

    #[test]
    fn entropy_count_reads_from_dev_random() {
        let f = std::fs::File::open("/dev/random").unwrap();
        let n = get_entropy_count(&f).unwrap();
        assert!((0..=4096).contains(&n), "entropy count {n}");
    }

    /// Mixing with zero credit needs CAP_SYS_ADMIN; CI runs as root. Under
    /// qemu-user (ENTROPYSERVICE_QEMU_USER=1) the emulator does not translate
    /// RNDADDENTROPY and answers ENOSYS, which is accepted only there.
    #[test]
    fn add_entropy_reaches_the_kernel() {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/random")
            .unwrap();
        let r = add_entropy(&f, &[0x5a; 32], 0);
        let qemu = std::env::var_os("ENTROPYSERVICE_QEMU_USER").is_some();
        match r {
            Ok(()) => {}
            Err(Errno::NOSYS) if qemu => {}
            Err(e) => panic!("RNDADDENTROPY failed: {e} (tests need root)"),
        }
    }
}
