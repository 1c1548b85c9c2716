//! Server-side random sources. getrandom is always there; a hardware RNG or
//! a file (FIFO, device) is health-tested chunk by chunk and, under `auto`,
//! XORed with getrandom so a broken or hostile device can never make the
//! output worse than getrandom alone. A failing device is dropped for the
//! rest of the session and getrandom carries on.

use crate::error::{msg, Error, Result, Status};
use crate::health::Health;
use crate::log;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::rand::{getrandom, GetRandomFlags};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

pub const HWRNG: &str = "/dev/hwrng";
/// Longest wait for a device to produce one chunk before it is dropped.
const DEVICE_TIMEOUT_MS: u32 = 2000;

struct Device {
    path: String,
    file: File,
    health: Health,
}

pub struct Source {
    device: Option<Device>,
    xor: bool,
}

fn open_device(path: &str) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

impl Source {
    /// `auto`, `getrandom`, or a path.
    pub fn open(spec: &str) -> Result<Source> {
        match spec {
            "getrandom" => Ok(Source { device: None, xor: false }),
            "auto" => {
                let device = open_device(HWRNG).ok().map(|file| Device {
                    path: HWRNG.into(),
                    file,
                    health: Health::new(),
                });
                Ok(Source { device, xor: true })
            }
            path => {
                let file = open_device(path).map_err(|e| {
                    Error::os(Status::Io, &msg(&["cannot open random source ", path, " (use --source getrandom or auto)"]), e)
                })?;
                Ok(Source {
                    device: Some(Device {
                        path: path.into(),
                        file,
                        health: Health::new(),
                    }),
                    xor: false,
                })
            }
        }
    }

    /// Describes the source in use now, for the audit line.
    pub fn describe(&self) -> &str {
        match &self.device {
            None => "getrandom",
            Some(d) if self.xor => {
                let _ = d;
                "hwrng^getrandom"
            }
            Some(d) => &d.path,
        }
    }

    /// Fills `buf` with output bytes.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        let use_device_only = self.device.is_some() && !self.xor;
        if !use_device_only {
            fill_getrandom(buf)?;
        }
        let Some(dev) = self.device.as_mut() else {
            return Ok(());
        };
        let mut tmp = [0u8; 4096];
        let mut off = 0;
        while off < buf.len() {
            let n = (buf.len() - off).min(tmp.len());
            let chunk = &mut tmp[..n];
            let verdict = read_full(&mut dev.file, chunk).and_then(|()| dev.health.check(chunk).map_err(|f| f.as_str()));
            if let Err(why) = verdict {
                log::warn_parts(&["random source ", &dev.path, " dropped: ", why, "; using getrandom for the rest of the session"]);
                self.device = None;
                if use_device_only {
                    // Nothing from the device reaches the output this round.
                    fill_getrandom(buf)?;
                }
                return Ok(());
            }
            let out = &mut buf[off..off + n];
            if self.xor {
                out.iter_mut().zip(chunk.iter()).for_each(|(o, d)| *o ^= d);
            } else {
                out.copy_from_slice(chunk);
            }
            off += n;
        }
        tmp.fill(0);
        Ok(())
    }
}

fn fill_getrandom(buf: &mut [u8]) -> Result<()> {
    let mut off = 0;
    while off < buf.len() {
        match getrandom(&mut buf[off..], GetRandomFlags::NONBLOCK) {
            Ok(n) => off += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                return Err(Error::new(Status::TempFail, "this server's kernel CRNG is not ready yet; try again later"));
            }
            Err(e) => return Err(Error::os(Status::Io, "getrandom failed", e)),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes from a non-blocking device, waiting at
/// most DEVICE_TIMEOUT_MS in total. EOF, errors and timeouts are failures.
fn read_full(f: &mut File, buf: &mut [u8]) -> core::result::Result<(), &'static str> {
    let mut off = 0;
    let mut waited = 0;
    while off < buf.len() {
        match f.read(&mut buf[off..]) {
            Ok(0) => return Err("end of file"),
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if waited >= DEVICE_TIMEOUT_MS {
                    return Err("no data within 2 seconds");
                }
                let ts = rustix::time::Timespec { tv_sec: 0, tv_nsec: 100_000_000 };
                let mut fds = [PollFd::new(&*f, PollFlags::IN)];
                let _ = poll(&mut fds, Some(&ts));
                waited += 100;
            }
            Err(_) => return Err("read error"),
        }
    }
    Ok(())
}
