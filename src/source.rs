//! Server-side random sources. getrandom is always there; a hardware RNG or
//! a named device or FIFO is health-tested chunk by chunk and always XORed
//! with getrandom, so a broken or hostile device can never make the output
//! worse than getrandom alone (the health tests only catch gross failures:
//! 7-bit bytes or biased bits pass them; the XOR does not let them through). A failing device is dropped for the rest of the session
//! and getrandom carries on. A regular file is refused: it would replay the
//! same bytes to every session.

use crate::error::{Error, Result, Status};
use crate::health::Health;
use crate::sys::{getrandom, GRND_NONBLOCK};
use crate::text::msg;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

pub const HWRNG: &str = "/dev/hwrng";
/// Longest wait for a device to produce one chunk before it is dropped.
const DEVICE_TIMEOUT_MS: u32 = 2000;

struct Device {
    path: String,
    /// What the audit line calls the source while the device is in use.
    label: String,
    file: File,
    health: Health,
    /// When the device last produced bytes (monotonic ns).
    last_data: u64,
}

pub struct Source {
    device: Option<Device>,
    /// A named source: wait (up to DEVICE_TIMEOUT_MS) for a full chunk of
    /// device bytes. `auto` takes only what the hwrng has ready.
    wait: bool,
    /// Why the device was dropped; the server takes it for its audit log,
    /// so it is logged once.
    pub dropped: Option<String>,
}

/// A character device or a FIFO: something that produces new bytes, unlike
/// a regular file, which would replay the same bytes to every session.
fn is_device(f: &File) -> bool {
    f.metadata()
        .map(|m| m.file_type())
        .is_ok_and(|t| t.is_char_device() || t.is_fifo())
}

fn open_device(path: &str) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

impl Source {
    /// `auto`, `getrandom`, or a path.
    pub fn open(spec: &str, now: u64) -> Result<Source> {
        match spec {
            "getrandom" => Ok(Source {
                device: None,
                wait: false,
                dropped: None,
            }),
            "auto" => {
                // A regular file there (a container's stand-in) is not a
                // device: getrandom alone then.
                let device = open_device(HWRNG)
                    .ok()
                    .filter(is_device)
                    .map(|file| Device {
                        path: HWRNG.into(),
                        label: "hwrng^getrandom".into(),
                        file,
                        health: Health::new(),
                        last_data: now,
                    });
                Ok(Source {
                    device,
                    wait: false,
                    dropped: None,
                })
            }
            path => {
                let file = open_device(path).map_err(|e| {
                    Error::os(
                        Status::Io,
                        &msg(&[
                            "cannot open random source ",
                            path,
                            " (use --source getrandom or auto)",
                        ]),
                        e,
                    )
                })?;
                if !is_device(&file) {
                    return Err(Error::new(
                        Status::Config,
                        msg(&[
                            "random source ",
                            path,
                            " is not a character device or a FIFO (a regular file would replay the same bytes to every session); use --source auto, getrandom or a device",
                        ]),
                    ));
                }
                Ok(Source {
                    device: Some(Device {
                        path: path.into(),
                        label: msg(&[path, "^getrandom"]),
                        file,
                        health: Health::new(),
                        last_data: now,
                    }),
                    wait: true,
                    dropped: None,
                })
            }
        }
    }

    /// Describes the source in use now, for the audit line.
    pub fn describe(&self) -> &str {
        match &self.device {
            None => "getrandom",
            Some(d) => &d.label,
        }
    }

    /// Fills `buf` with output bytes: getrandom, XORed with device bytes
    /// that passed the health tests.
    pub fn fill(&mut self, buf: &mut [u8], now: u64) -> Result<()> {
        fill_getrandom(buf)?;
        if self.wait {
            self.xor_device(buf);
        } else {
            self.xor_available(buf, now);
        }
        Ok(())
    }

    /// A named source: XORs a full chunk of device bytes into each 4 KiB of
    /// `buf`. A chunk that fails (EOF, no data within DEVICE_TIMEOUT_MS, a
    /// health test) is not used and the device is dropped.
    fn xor_device(&mut self, buf: &mut [u8]) {
        let Some(dev) = self.device.as_mut() else {
            return;
        };
        let mut tmp = [0u8; 4096];
        let mut verdict = Ok(());
        for out in buf.chunks_mut(tmp.len()) {
            let chunk = &mut tmp[..out.len()];
            verdict = read_full(&mut dev.file, chunk)
                .and_then(|()| dev.health.check(chunk).map_err(|f| f.as_str()));
            if verdict.is_err() {
                break;
            }
            out.iter_mut().zip(chunk.iter()).for_each(|(o, d)| *o ^= d);
        }
        tmp.fill(0);
        if let Err(why) = verdict {
            self.drop_device(why);
        }
    }

    /// `auto`: XORs whatever the device has ready into `buf` without waiting,
    /// so output is never slower than getrandom. A device that has produced
    /// nothing for DEVICE_TIMEOUT_MS, errs or fails a health test is dropped.
    fn xor_available(&mut self, buf: &mut [u8], now: u64) {
        let Some(dev) = self.device.as_mut() else {
            return;
        };
        let mut tmp = [0u8; 4096];
        let n = buf.len().min(tmp.len());
        let verdict = match dev.file.read(&mut tmp[..n]) {
            Ok(0) => Err("end of file"),
            Ok(k) => {
                dev.last_data = now;
                let r = dev.health.check(&tmp[..k]).map_err(|f| f.as_str());
                if r.is_ok() {
                    buf.iter_mut().zip(&tmp[..k]).for_each(|(o, d)| *o ^= d);
                }
                r
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::Interrupted =>
            {
                if now.saturating_sub(dev.last_data) > DEVICE_TIMEOUT_MS as u64 * 1_000_000 {
                    Err("no data within 2 seconds")
                } else {
                    Ok(())
                }
            }
            Err(_) => Err("read error"),
        };
        tmp.fill(0);
        if let Err(why) = verdict {
            self.drop_device(why);
        }
    }

    fn drop_device(&mut self, why: &str) {
        if let Some(dev) = self.device.take() {
            self.dropped = Some(msg(&[
                "random source ",
                &dev.path,
                " dropped: ",
                why,
                "; using getrandom for the rest of the session",
            ]));
        }
    }
}

fn fill_getrandom(buf: &mut [u8]) -> Result<()> {
    let mut off = 0;
    while off < buf.len() {
        match getrandom(&mut buf[off..], GRND_NONBLOCK) {
            Ok(n) => off += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                return Err(Error::new(
                    Status::TempFail,
                    "this server's kernel CRNG is not ready yet; try again later",
                ));
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
    let start = crate::clock::now_ns();
    while off < buf.len() {
        match f.read(&mut buf[off..]) {
            Ok(0) => return Err("end of file"),
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if crate::clock::now_ns().saturating_sub(start)
                    >= DEVICE_TIMEOUT_MS as u64 * 1_000_000
                {
                    return Err("no data within 2 seconds");
                }
                // Devices without poll support report readable at once, so
                // wait a little in any case.
                let ts = rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: 2_000_000,
                };
                let mut fds = [PollFd::new(&*f, PollFlags::IN)];
                let _ = poll(&mut fds, Some(&ts));
                crate::clock::sleep_ns(2_000_000);
            }
            Err(_) => return Err("read error"),
        }
    }
    Ok(())
}
