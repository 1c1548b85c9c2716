//! Child processes (the SSH client, dropbearkey, ssh-keygen) without
//! `std::process`: `sys::spawn` forks and execs, this module keeps the
//! safe bookkeeping (wait status cached once reaped, kill only while
//! unreaped, both output pipes drained together).

use crate::sys::poll;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions, WaitStatus};
use std::ffi::CString;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;

/// A started child. Like `std::process::Child`, dropping it neither kills
/// nor reaps it: its owner does that.
pub struct Child {
    pid: Pid,
    status: Option<WaitStatus>,
}

/// Environment for a child: `None` inherits ours, else exactly these
/// `NAME=value` entries.
pub type Env<'a> = Option<&'a [(&'a str, &'a [u8])]>;

fn cstring(b: &[u8]) -> Result<CString, Errno> {
    CString::new(b).map_err(|_| Errno::INVAL)
}

impl Child {
    /// Runs `path` (a path, not searched on PATH) with `args`, stdin on
    /// /dev/null and stdout/stderr on the returned pipes. See `sys::spawn`
    /// for `detach`.
    pub fn spawn(
        path: &str,
        args: &[&str],
        env: Env<'_>,
        detach: bool,
    ) -> Result<(Child, File, File), Errno> {
        let c_path = cstring(path.as_bytes())?;
        let mut argv = Vec::with_capacity(args.len() + 1);
        argv.push(c_path.clone());
        for a in args {
            argv.push(cstring(a.as_bytes())?);
        }
        let envp = match env {
            None => None,
            Some(vars) => {
                let mut v = Vec::with_capacity(vars.len());
                for (name, value) in vars {
                    let mut e = Vec::with_capacity(name.len() + 1 + value.len());
                    e.extend_from_slice(name.as_bytes());
                    e.push(b'=');
                    e.extend_from_slice(value);
                    v.push(cstring(&e)?);
                }
                Some(v)
            }
        };
        let s = crate::sys::spawn(&c_path, &argv, envp.as_deref(), detach)?;
        Ok((
            Child {
                pid: s.pid,
                status: None,
            },
            File::from(s.stdout),
            File::from(s.stderr),
        ))
    }

    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn id(&self) -> u32 {
        self.pid.as_raw_pid() as u32
    }

    /// The exit status if the child has exited (reaping it), else None.
    pub fn try_wait(&mut self) -> Result<Option<WaitStatus>, Errno> {
        if self.status.is_none() {
            if let Some((_, st)) = waitpid(Some(self.pid), WaitOptions::NOHANG)? {
                self.status = Some(st);
            }
        }
        Ok(self.status)
    }

    /// Blocks until the child exits and reaps it.
    pub fn wait(&mut self) -> Result<WaitStatus, Errno> {
        loop {
            if let Some(st) = self.status {
                return Ok(st);
            }
            match waitpid(Some(self.pid), WaitOptions::empty()) {
                Ok(Some((_, st))) => self.status = Some(st),
                Ok(None) | Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// SIGKILL, unless already reaped (the pid may belong to another process then).
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = kill_process(self.pid, Signal::KILL);
        }
    }
}

/// Whether `st` is a normal exit with status 0.
pub fn success(st: WaitStatus) -> bool {
    st.exit_status() == Some(0)
}

/// The system's program directories: what PATH stands for when it is
/// unset, and what the admin commands search after it (sshd and dropbear
/// live in sbin, which a user's PATH may lack).
pub const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// A regular file with an execute bit.
pub fn is_executable(path: &str) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// The first executable `name` in the directories of PATH (SYSTEM_PATH
/// when PATH is unset), then in those of `then` (colon-separated, "" for
/// none). Relative directories are skipped: where a program is found never
/// depends on the current directory.
pub fn find_program(name: &str, then: &str) -> Option<String> {
    let path = crate::sys::env(c"PATH").unwrap_or(SYSTEM_PATH);
    for list in [path, then] {
        for dir in list.split(':').filter(|d| d.starts_with('/')) {
            let p = crate::text::msg(&[dir, "/", name]);
            if is_executable(&p) {
                return Some(p);
            }
        }
    }
    None
}

/// What a finished tool printed, and whether it exited with status 0.
pub struct Output {
    pub ok: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `path` with `args` in our environment to completion, reading its
/// stdout and stderr together (so neither pipe can fill up and stall it).
pub fn output(path: &str, args: &[&str]) -> Result<Output, Errno> {
    let (mut child, out, err) = Child::spawn(path, args, None, false)?;
    let mut files = [Some(out), Some(err)];
    let mut bufs = [Vec::new(), Vec::new()];
    let drained = drain(&mut files, &mut bufs);
    if drained.is_err() {
        child.kill();
    }
    let st = child.wait();
    drained?;
    Ok(Output {
        ok: success(st?),
        stdout: core::mem::take(&mut bufs[0]),
        stderr: core::mem::take(&mut bufs[1]),
    })
}

fn drain(files: &mut [Option<File>; 2], bufs: &mut [Vec<u8>; 2]) -> Result<(), Errno> {
    let mut tmp = [0u8; 1024];
    loop {
        let mut ready = [false; 2];
        {
            let mut which: heapless::Vec<usize, 2> = heapless::Vec::new();
            let mut fds: heapless::Vec<PollFd<'_>, 2> = heapless::Vec::new();
            for (i, f) in files.iter().enumerate() {
                if let Some(f) = f {
                    let _ = which.push(i);
                    let _ = fds.push(PollFd::new(f, PollFlags::IN));
                }
            }
            if fds.is_empty() {
                return Ok(());
            }
            match poll(&mut fds, None) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
            for (&i, p) in which.iter().zip(fds.iter()) {
                ready[i] = !p.revents().is_empty();
            }
        }
        for (i, f) in files.iter_mut().enumerate() {
            let Some(fd) = f.as_ref().filter(|_| ready[i]) else {
                continue;
            };
            match rustix::io::read(fd, &mut tmp) {
                Ok(0) => *f = None,
                Ok(n) => bufs[i].extend_from_slice(&tmp[..n]),
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Output {
        output("/bin/sh", &["-c", script]).unwrap()
    }

    #[test]
    fn output_separates_streams_and_reports_failure() {
        let o = sh("printf out; printf err >&2; exit 3");
        assert!(!o.ok);
        assert_eq!((&o.stdout[..], &o.stderr[..]), (&b"out"[..], &b"err"[..]));
        assert!(sh("exit 0").ok);
    }

    /// More than a pipe buffer on both streams: reading one to EOF first
    /// would leave the child blocked on the other.
    #[test]
    fn output_drains_both_pipes_together() {
        let o = sh("head -c 300000 /dev/zero >&2; head -c 200000 /dev/zero");
        assert!(o.ok);
        assert_eq!((o.stdout.len(), o.stderr.len()), (200_000, 300_000));
    }

    #[test]
    fn missing_program_is_the_exec_errno() {
        assert_eq!(
            output("/nonexistent/entropyservice-test", &[]).err(),
            Some(Errno::NOENT)
        );
        assert_eq!(output("/dev/null", &[]).err(), Some(Errno::ACCESS));
        assert_eq!(output("/bin/s\0h", &[]).err(), Some(Errno::INVAL));
    }

    /// The child gets exactly the given environment, /dev/null as stdin,
    /// default SIGPIPE, and with `detach` its own session.
    #[test]
    fn spawn_sets_up_the_child() {
        let script = "echo \"A=$A HOME=$HOME\"; cat; \
                      echo \"$$ $(cut -d' ' -f6 /proc/$$/stat)\"; \
                      grep SigIgn /proc/$$/status";
        let env: &[(&str, &[u8])] = &[("A", b"1 2"), ("PATH", b"/usr/bin:/bin")];
        let (mut c, mut out, _err) =
            Child::spawn("/bin/sh", &["-c", script], Some(env), true).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        assert!(success(c.wait().unwrap()), "{s}");
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "A=1 2 HOME=");
        let ids: Vec<&str> = lines[1].split(' ').collect();
        assert_eq!(ids[0], c.id().to_string());
        assert_eq!(ids[0], ids[1], "child is not its own session leader");
        // SIGPIPE is signal 13: bit 12 of the ignored mask.
        let ign = u64::from_str_radix(lines[2].trim_start_matches("SigIgn:").trim(), 16).unwrap();
        assert_eq!(ign & (1 << 12), 0, "SIGPIPE still ignored: {}", lines[2]);
    }

    #[test]
    fn kill_and_wait_report_the_signal_and_cache_the_status() {
        let (mut c, _out, _err) = Child::spawn("/bin/sleep", &["10"], None, false).unwrap();
        assert!(c.try_wait().unwrap().is_none());
        c.kill();
        let st = c.wait().unwrap();
        assert_eq!(st.terminating_signal(), Some(9));
        // Reaped: asking again answers from the cache, not waitpid (ECHILD).
        assert_eq!(c.try_wait().unwrap().map(|s| s.as_raw()), Some(st.as_raw()));
        c.kill();
    }
}
