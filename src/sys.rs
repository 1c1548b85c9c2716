//! The one module with `unsafe`: kernel random-pool ioctls, getrandom,
//! signal flags and fork/exec of child processes. Everything else in the crate is
//! safe code.
//!
//! Opcodes come from `rustix::ioctl::opcode`, which encodes direction and size
//! per architecture (MIPS and PowerPC use a different layout than x86 and ARM).
#![allow(unsafe_code)]

use core::sync::atomic::{AtomicI32, Ordering};
use rustix::fd::AsFd;
use rustix::io::Errno;
use rustix::ioctl::{opcode, Opcode};

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
    let mut count: libc::c_int = 0;
    // SAFETY: RNDGETENTCNT writes one int, into `count`.
    unsafe {
        ioctl(
            fd.as_fd(),
            RNDGETENTCNT,
            core::ptr::addr_of_mut!(count).cast(),
        )
    }?;
    Ok(count)
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
    unsafe {
        ioctl(
            fd.as_fd(),
            RNDADDENTROPY,
            core::ptr::addr_of_mut!(info).cast(),
        )
    }
    .map(drop)
}

/// Asks the kernel to reseed the CRNG from the input pool now.
pub fn reseed_crng(fd: impl AsFd) -> Result<(), Errno> {
    // SAFETY: RNDRESEEDCRNG takes no argument.
    unsafe { ioctl(fd.as_fd(), RNDRESEEDCRNG, core::ptr::null_mut()) }.map(drop)
}

/// ioctl(2) as a plain system call. Not rustix's: where rustix goes through
/// libc (big-endian MIPS), that is musl's ioctl, whose time64 conversion
/// tables cost about 1 KB, and these requests carry no time.
///
/// # Safety
/// `arg` must be what request `op` reads or writes.
unsafe fn ioctl(
    fd: rustix::fd::BorrowedFd<'_>,
    op: Opcode,
    arg: *mut libc::c_void,
) -> Result<libc::c_long, Errno> {
    use rustix::fd::AsRawFd;
    // SAFETY: the caller vouches for `arg`; the fd is open while borrowed.
    let r = unsafe { libc::syscall(libc::SYS_ioctl, fd.as_raw_fd(), op as libc::c_ulong, arg) };
    if r < 0 {
        Err(Errno::from_raw_os_error(errno()))
    } else {
        Ok(r)
    }
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

/// A SIGUSR1 arrived since the last `take_retry`.
static RETRY: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_retry(_sig: libc::c_int) {
    RETRY.store(1, Ordering::Relaxed);
}

/// Installs a SIGUSR1 handler (no SA_RESTART) that only records the
/// request: the client's "try again now" (`/etc/init.d/entropyservice
/// reconnect` when the WAN comes up). Without it SIGUSR1 would kill.
pub fn install_retry_handler() {
    // SAFETY: as in install_signal_handlers; the handler only stores to
    // an atomic.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_retry as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGUSR1, &sa, core::ptr::null_mut());
    }
}

/// Whether a SIGUSR1 arrived since the last call (and clears it).
pub fn take_retry() -> bool {
    RETRY.swap(0, Ordering::Relaxed) != 0
}

/// The terminating signal received so far, if any.
pub fn pending_signal() -> Option<i32> {
    match SIGNAL.load(Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// getrandom(2) flags (linux/random.h).
pub const GRND_NONBLOCK: u32 = 0x0001;
pub const GRND_INSECURE: u32 = 0x0004;

/// Fills `buf` from the kernel's getrandom(2). Called directly through libc:
/// rustix's libc backend (used on big-endian MIPS) looks the function up with
/// dlsym, which drags musl's whole printf into a static binary.
pub fn getrandom(buf: &mut [u8], flags: u32) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(Errno::from_raw_os_error(errno()))
    } else {
        Ok(n as usize)
    }
}

/// poll(2), as rustix's `poll` is called, but with the wait handed to the
/// kernel as whole milliseconds (rounded up; None waits for ever). Where
/// rustix goes through libc (big-endian MIPS) its ppoll timespec reached
/// musl with an unset tv_nsec word: under qemu-user the kernel saw
/// tv_nsec = 0xffffffffeab4d400 and answered EINVAL, and `clock::sleep_ns`
/// would not have slept. No timespec crosses the libc boundary here.
pub fn poll(
    fds: &mut [rustix::event::PollFd<'_>],
    timeout: Option<&rustix::time::Timespec>,
) -> Result<usize, Errno> {
    const _: () = assert!(
        core::mem::size_of::<rustix::event::PollFd<'static>>()
            == core::mem::size_of::<libc::pollfd>()
    );
    let ms = match timeout {
        None => -1,
        Some(t) => {
            let ms = (t.tv_sec.max(0) as u64)
                .saturating_mul(1000)
                .saturating_add((t.tv_nsec.max(0) as u64).div_ceil(1_000_000));
            ms.min(i32::MAX as u64) as libc::c_int
        }
    };
    // SAFETY: rustix's PollFd is layout-compatible with struct pollfd (an
    // int fd, then short events and revents: repr(transparent) over
    // libc::pollfd on the libc backend, repr(C) with the same fields on
    // linux_raw; the sizes are checked above). The pointer and length come
    // from a live, exclusively borrowed slice, which poll reads and whose
    // revents it writes, within its length.
    let r = unsafe {
        libc::poll(
            fds.as_mut_ptr().cast::<libc::pollfd>(),
            fds.len() as libc::nfds_t,
            ms,
        )
    };
    if r < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(r as usize)
}

fn errno() -> i32 {
    // SAFETY: musl's __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Pipes and process ids of a child started by [`spawn`].
pub struct Spawned {
    pub pid: rustix::process::Pid,
    pub stdout: rustix::fd::OwnedFd,
    pub stderr: rustix::fd::OwnedFd,
}

/// Starts `path` (no PATH search) with `argv` (argv[0] included) and stdin
/// on /dev/null, stdout and stderr on pipes. `env` None inherits this
/// process's environment. `detach` makes the child its own session leader
/// (no controlling terminal, so an SSH client can never prompt), kills it
/// if this process dies and clears ambient capabilities (under ujail
/// CAP_SYS_ADMIN is ambient; an SSH client must not inherit it).
///
/// An exec failure comes back as the child's errno, with the child reaped.
/// Replaces std::process::Command, whose environment map, posix_spawn and
/// set*id paths this program never used (with getrandom through libc above,
/// 54 KB less on big-endian MIPS).
pub fn spawn(
    path: &core::ffi::CStr,
    argv: &[std::ffi::CString],
    env: Option<&[std::ffi::CString]>,
    detach: bool,
) -> Result<Spawned, Errno> {
    use rustix::fd::AsRawFd;
    use rustix::pipe::{pipe_with, PipeFlags};

    // Everything the child touches is prepared here: between fork and exec
    // only async-signal-safe calls are made, and nothing allocates.
    let ptrs = |v: &[std::ffi::CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(core::iter::once(core::ptr::null()))
            .collect()
    };
    let argv_p = ptrs(argv);
    let env_p = env.map(ptrs);
    let null = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let (out_r, out_w) = pipe_with(PipeFlags::CLOEXEC)?;
    let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC)?;
    let (exec_r, exec_w) = pipe_with(PipeFlags::CLOEXEC)?;
    // std opens /dev/null on any of fds 0-2 that were closed at startup, so
    // none of these is 0, 1 or 2 and the dup2 calls cannot clobber each other.
    let fds = [
        (null.as_raw_fd(), 0),
        (out_w.as_raw_fd(), 1),
        (err_w.as_raw_fd(), 2),
    ];
    let report = exec_w.as_raw_fd();
    // The child compares its parent with this pid, not with 1: under ujail
    // (a new PID namespace) or as a container's init this process IS pid 1,
    // and a child that saw getppid() == 1 as "parent died" never exec'd.
    let parent = rustix::process::getpid().as_raw_pid();

    // A bare fork: clone(SIGCHLD) with no other flags (the argument order of
    // clone differs between architectures, but all the others are 0). musl's
    // fork() adds atfork handlers and its internal locks, about 2 KB on MIPS,
    // for libc state this single-threaded program never hands to a child
    // that only execs.
    // SAFETY: fork has no memory-safety preconditions; the child branch below
    // uses only async-signal-safe libc calls on memory prepared before fork,
    // and never returns (exec or _exit). (Its stale thread id in musl matters
    // only to pthread calls and raise(), which it never makes.)
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::c_long::from(libc::SIGCHLD),
            0,
            0,
            0,
            0,
        )
    } as libc::pid_t;
    if pid < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    if pid == 0 {
        // SAFETY: in the child: dup2, sigprocmask, signal, setsid, prctl,
        // getppid, execv(e), write and _exit are async-signal-safe; argv_p and
        // env_p are NULL-terminated arrays of pointers to live C strings.
        unsafe {
            for (from, to) in fds {
                if libc::dup2(from, to) < 0 {
                    child_fail(report);
                }
            }
            // Rust ignores SIGPIPE and the parent may block signals: the child
            // starts as a freshly exec'd program would from a shell.
            let mut set: libc::sigset_t = core::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, core::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            if detach {
                libc::setsid();
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL,
                    0,
                    0,
                    0,
                );
                // The parent may have died before prctl took effect (then
                // nobody reads the report, but every early exit reports).
                if libc::getppid() != parent {
                    *libc::__errno_location() = libc::ESRCH;
                    child_fail(report);
                }
            }
            match &env_p {
                Some(e) => libc::execve(path.as_ptr(), argv_p.as_ptr(), e.as_ptr()),
                None => libc::execv(path.as_ptr(), argv_p.as_ptr()),
            };
            child_fail(report);
        }
    }
    let pid = rustix::process::Pid::from_raw(pid).ok_or(Errno::INVAL)?;
    drop((null, out_w, err_w, exec_w));
    // The report pipe closes on a successful exec (CLOEXEC) or carries errno.
    let mut code = [0u8; 4];
    let mut got = 0;
    let failed = loop {
        match rustix::io::read(&exec_r, &mut code[got..]) {
            Ok(0) if got == 0 => break None,
            // A pipe write of 4 bytes is atomic: a short report cannot happen.
            Ok(0) => break Some(Errno::IO),
            Ok(n) => {
                got += n;
                if got == code.len() {
                    break Some(Errno::from_raw_os_error(i32::from_ne_bytes(code)));
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                break Some(e);
            }
        }
    };
    let Some(e) = failed else {
        return Ok(Spawned {
            pid,
            stdout: out_r,
            stderr: err_r,
        });
    };
    while let Err(Errno::INTR) =
        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
    {}
    Err(e)
}

/// In a forked child: sends errno to the parent and exits with 127.
///
/// # Safety
/// Only to be called in the child between fork and exec.
unsafe fn child_fail(report: libc::c_int) -> ! {
    let code = errno().to_ne_bytes();
    // SAFETY: write and _exit are async-signal-safe; `code` is a live buffer.
    unsafe {
        libc::write(report, code.as_ptr().cast(), code.len());
        libc::_exit(127)
    }
}

/// A small global allocator for the binary (about 1 KB of code instead of
/// the C library's malloc on the static MIPS builds): power-of-two size
/// classes from 16 bytes to 4 KiB, each with a free list, carved from 64 KiB
/// anonymous mappings; larger blocks are their own mapping and are unmapped
/// when freed. Small blocks are reused, never returned to the kernel: the
/// process's small-object peak is its footprint (a few tens of KiB here).
pub struct SmallAlloc;

const MIN_CLASS: usize = 16;
const CLASSES: usize = 9; // 16, 32, ..., 4096
const ARENA: usize = 64 * 1024;
const PAGE: usize = 4096;

struct Heap {
    free: [*mut u8; CLASSES],
    bump: usize,
    end: usize,
}

struct HeapCell(core::cell::UnsafeCell<Heap>);
// SAFETY: the Heap is only touched with HEAP_LOCK held (see `with_heap`).
unsafe impl Sync for HeapCell {}

static HEAP: HeapCell = HeapCell(core::cell::UnsafeCell::new(Heap {
    free: [core::ptr::null_mut(); CLASSES],
    bump: 0,
    end: 0,
}));
static HEAP_LOCK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn with_heap<R>(f: impl FnOnce(&mut Heap) -> R) -> R {
    while HEAP_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    // SAFETY: HEAP_LOCK is held, so this is the only reference to the Heap
    // until it is released below.
    let r = f(unsafe { &mut *HEAP.0.get() });
    HEAP_LOCK.store(false, Ordering::Release);
    r
}

/// The size class index for a layout, or None for a block of its own.
fn size_class(size: usize, align: usize) -> Option<usize> {
    let n = size.max(align).max(MIN_CLASS).checked_next_power_of_two()?;
    (n <= PAGE).then(|| (n.trailing_zeros() - MIN_CLASS.trailing_zeros()) as usize)
}

fn map(len: usize) -> *mut u8 {
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        core::ptr::null_mut()
    } else {
        p.cast()
    }
}

fn page_round(size: usize) -> Option<usize> {
    size.checked_add(PAGE - 1).map(|s| s & !(PAGE - 1))
}

// SAFETY: blocks handed out are at least `layout.size()` bytes, aligned to
// `layout.align()` (classes: each block is aligned to its class size, which is at least the alignment;
// own mappings: page-aligned, and larger alignments are refused), and each
// is handed out once until it is freed.
unsafe impl core::alloc::GlobalAlloc for SmallAlloc {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        let Some(c) = size_class(layout.size(), layout.align()) else {
            if layout.align() > PAGE {
                return core::ptr::null_mut();
            }
            return page_round(layout.size()).map_or(core::ptr::null_mut(), map);
        };
        with_heap(|h| {
            let head = h.free[c];
            if !head.is_null() {
                // SAFETY: `head` is a freed block of this class; its first
                // bytes hold the next free block (written by `dealloc`).
                h.free[c] = unsafe { head.cast::<*mut u8>().read_unaligned() };
                return head;
            }
            // Every block of a class is aligned to its size (a power of two
            // no smaller than any alignment that maps to the class), so a
            // block freed by one caller is aligned for the next.
            let n = MIN_CLASS << c;
            let mut at = (h.bump + n - 1) & !(n - 1);
            if h.bump == 0 || at + n > h.end {
                let a = map(ARENA);
                if a.is_null() {
                    return a;
                }
                h.bump = a as usize;
                h.end = h.bump + ARENA;
                at = h.bump;
            }
            h.bump = at + n;
            at as *mut u8
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        match size_class(layout.size(), layout.align()) {
            Some(c) => with_heap(|h| {
                // SAFETY: `ptr` is a block of class `c` (at least 16 bytes)
                // that the caller gives back; it now holds the list link.
                unsafe { ptr.cast::<*mut u8>().write_unaligned(h.free[c]) };
                h.free[c] = ptr;
            }),
            None => {
                if let Some(len) = page_round(layout.size()) {
                    // SAFETY: `ptr` is the start of a mapping of `len` bytes
                    // made by `alloc` for this layout, and no longer used.
                    unsafe { libc::munmap(ptr.cast(), len) };
                }
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: core::alloc::Layout, new: usize) -> *mut u8 {
        let old = size_class(layout.size(), layout.align());
        if old.is_some() && old == size_class(new, layout.align()) {
            return ptr;
        }
        // SAFETY: the caller guarantees `new` is a valid size for this
        // alignment (GlobalAlloc::realloc's contract).
        let new_layout =
            unsafe { core::alloc::Layout::from_size_align_unchecked(new, layout.align()) };
        // SAFETY: as for `alloc`; a non-zero size (realloc's contract).
        let p = unsafe { self.alloc(new_layout) };
        if !p.is_null() {
            // SAFETY: both blocks are live, distinct and at least this long.
            unsafe { core::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new)) };
            // SAFETY: `ptr` was allocated with `layout` and is not used again.
            unsafe { self.dealloc(ptr, layout) };
        }
        p
    }
}

/// Acts as `uid`/`gid` for everything that follows: supplementary groups
/// set to `gid` alone, then the effective group and user ids. The real and
/// saved ids stay as they were. Used by root before it touches files in a
/// directory another user controls, so that user's links and swaps can only
/// reach what they could reach themselves. Raw system calls, which change
/// only the calling thread: call it while the process has one thread (musl's
/// setgroups/seteuid would link its all-threads machinery, a few KB).
pub fn act_as(uid: u32, gid: u32) -> Result<(), Errno> {
    #[cfg(not(any(target_arch = "arm", target_arch = "x86")))]
    use libc::{
        SYS_setgroups as SETGROUPS, SYS_setresgid as SETRESGID, SYS_setresuid as SETRESUID,
    };
    #[cfg(any(target_arch = "arm", target_arch = "x86"))]
    use libc::{
        SYS_setgroups32 as SETGROUPS, SYS_setresgid32 as SETRESGID, SYS_setresuid32 as SETRESUID,
    };
    let groups = [gid as libc::gid_t];
    let keep = -1 as libc::c_long;
    // SAFETY: setgroups reads exactly one gid_t from a live local array;
    // setresgid and setresuid take plain integers (-1: leave unchanged).
    let failed = unsafe {
        libc::syscall(SETGROUPS, 1 as libc::c_long, groups.as_ptr()) != 0
            || libc::syscall(SETRESGID, keep, gid as libc::c_long, keep) != 0
            || libc::syscall(SETRESUID, keep, uid as libc::c_long, keep) != 0
    };
    if failed {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(())
}

/// The value of environment variable `name`, if set. Not std's
/// `env::var_os`: its environment lock and copy cost about 1 KB on MIPS,
/// and this program never changes its own environment.
pub fn env_bytes(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv returns NULL or a NUL-terminated string in the
    // environment block. Nothing in this program calls setenv, putenv or
    // std::env::set_var/remove_var, so that string stays valid and
    // unchanged for the life of the process.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        (!p.is_null()).then(|| core::ffi::CStr::from_ptr(p).to_bytes())
    }
}

/// [`env_bytes`] as text: None when unset or not UTF-8 (as
/// `std::env::var(..).ok()`).
pub fn env(name: &core::ffi::CStr) -> Option<&'static str> {
    env_bytes(name).and_then(|v| core::str::from_utf8(v).ok())
}

/// `mkdir -p`: makes `path` and its missing parents, each with `mode`
/// (less the umask). An existing directory, or a link to one, is fine.
/// std's recursive `DirBuilder` does the same through its `Path` machinery,
/// about 2.5 KB more on MIPS.
pub fn create_dir_all(path: &str, mode: u32) -> std::io::Result<()> {
    let mode = rustix::fs::Mode::from_raw_mode(mode);
    let parents = path.match_indices('/').map(|(i, _)| i);
    for end in parents.chain(core::iter::once(path.len())) {
        let p = &path[..end];
        if p.is_empty() || p.ends_with('/') {
            continue;
        }
        match rustix::fs::mkdir(p, mode) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if std::fs::metadata(path)?.is_dir() {
        Ok(())
    } else {
        Err(Errno::NOTDIR.into())
    }
}

/// The whole file at `path` as UTF-8 text; small files only (proc files,
/// status and marker files, /etc/passwd). Not std's `read_to_string`,
/// whose generic read-to-end costs about 2 KB on MIPS.
pub fn read_to_string(path: &str) -> std::io::Result<String> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match rustix::io::read(&fd, &mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    String::from_utf8(buf).map_err(|_| std::io::ErrorKind::InvalidData.into())
}

#[cfg(test)]
mod tests {
    use core::alloc::{GlobalAlloc, Layout};

    #[test]
    fn small_alloc_blocks_are_aligned_distinct_and_reused() {
        let a = SmallAlloc;
        let mut live = Vec::new();
        for (i, (size, align)) in [
            (1, 1),
            (16, 8),
            (24, 8),
            (100, 4),
            (4096, 8),
            (4097, 8),
            (70_000, 16),
            (64, 64),
        ]
        .into_iter()
        .enumerate()
        {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY (test): non-zero sizes; each block freed once below.
            let p = unsafe { a.alloc(l) };
            assert!(!p.is_null() && p as usize % align == 0, "{size}/{align}");
            unsafe { core::ptr::write_bytes(p, i as u8, size) };
            live.push((p, l, i as u8));
        }
        for &(p, l, v) in &live {
            let s = unsafe { core::slice::from_raw_parts(p, l.size()) };
            assert!(
                s.iter().all(|&b| b == v),
                "block of {} overwritten",
                l.size()
            );
        }
        let (p, l, _) = live[3];
        unsafe { a.dealloc(p, l) };
        assert_eq!(
            unsafe { a.alloc(l) },
            p,
            "a freed block of the class is reused"
        );
        unsafe { core::ptr::write_bytes(p, 3, l.size()) };
        // realloc within a class keeps the block; across classes copies.
        let q = unsafe { a.realloc(p, l, 120) };
        assert_eq!(q, p);
        let r = unsafe { a.realloc(q, Layout::from_size_align(120, 4).unwrap(), 10_000) };
        assert!(unsafe { core::slice::from_raw_parts(r, 100) }
            .iter()
            .all(|&b| b == 3));
        unsafe { a.dealloc(r, Layout::from_size_align(10_000, 4).unwrap()) };
        for (i, &(p, l, _)) in live.iter().enumerate() {
            if i != 3 {
                unsafe { a.dealloc(p, l) };
            }
        }
    }

    use super::*;

    /// Our poll: a ready pipe, a timeout, and a wait shorter than 1 ms that
    /// still reaches the kernel as a valid (rounded-up) wait.
    #[test]
    fn poll_in_milliseconds() {
        use rustix::event::{PollFd, PollFlags};
        let (r, w) = rustix::pipe::pipe().unwrap();
        let ts = |s: i64, ns: i64| rustix::time::Timespec {
            tv_sec: s as _,
            tv_nsec: ns as _,
        };
        let mut fds = [PollFd::new(&r, PollFlags::IN)];
        assert_eq!(poll(&mut fds, Some(&ts(0, 1))), Ok(0));
        assert_eq!(poll(&mut fds, Some(&ts(0, 0))), Ok(0));
        rustix::io::write(&w, b"x").unwrap();
        assert_eq!(poll(&mut fds, Some(&ts(5, 999_999_999))), Ok(1));
        assert!(fds[0].revents().contains(PollFlags::IN));
        assert_eq!(poll(&mut fds, None), Ok(1));
        // Far beyond i32 milliseconds: capped, not wrapped into "for ever" or EINVAL.
        assert_eq!(poll(&mut fds, Some(&ts(i64::from(i32::MAX), 0))), Ok(1));
    }

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

    #[test]
    fn create_dir_all_and_read_to_string() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("es-sys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let d = d.to_str().unwrap().to_string();
        let deep = format!("{d}/a//b/c/");
        super::create_dir_all(&deep, 0o700).unwrap();
        let mode = std::fs::metadata(format!("{d}/a/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        // Existing: fine; a file in the way: an error, nothing made under it.
        super::create_dir_all(&deep, 0o700).unwrap();
        std::fs::write(format!("{d}/f"), "text\n").unwrap();
        assert!(super::create_dir_all(&format!("{d}/f"), 0o700).is_err());
        assert!(super::create_dir_all(&format!("{d}/f/x"), 0o700).is_err());
        assert_eq!(super::read_to_string(&format!("{d}/f")).unwrap(), "text\n");
        std::fs::write(format!("{d}/bin"), b"\xff").unwrap();
        let e = super::read_to_string(&format!("{d}/bin")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(super::read_to_string(&format!("{d}/none")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
