//! Server-side random sources. getrandom is always there; a hardware RNG or
//! a named device or FIFO is health-tested chunk by chunk and always XORed
//! with getrandom, so a broken or hostile device can never make the output
//! worse than getrandom alone (the health tests only catch gross failures:
//! 7-bit bytes or biased bits pass them; the XOR does not let them through). A failing device is dropped for the rest of the session
//! and getrandom carries on. A regular file is refused: it would replay the
//! same bytes to every session.

use crate::clock::Clock;
use crate::error::{Error, Result, Status};
use crate::fd::{Fd, Input, OsError, Want};
use crate::health::Health;
use crate::sys::{getrandom, GRND_NONBLOCK};
use crate::text::msg;
use rustix::io::Errno;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

pub const HWRNG: &str = "/dev/hwrng";
/// Longest wait for a device to produce one chunk before it is dropped.
const DEVICE_TIMEOUT_MS: u32 = 2000;
const DEVICE_TIMEOUT_NS: u64 = DEVICE_TIMEOUT_MS as u64 * 1_000_000;
/// Pause between reads of a named device that has nothing yet.
const DEVICE_PAUSE_NS: u64 = 2_000_000;

struct Device<D> {
    path: String,
    /// What the audit line calls the source while the device is in use.
    label: String,
    dev: D,
    health: Health,
    /// When the device last produced bytes (monotonic ns).
    last_data: u64,
}

/// The output's base: getrandom in the program (a seam for tests).
type Base = fn(&mut [u8]) -> Result<()>;

/// The source stage. `D` is the device stage: a non-blocking descriptor
/// in the program, a fake in tests.
pub struct Source<D: Input = Fd<File>> {
    device: Option<Device<D>>,
    /// A named source: wait (up to DEVICE_TIMEOUT_MS) for a full chunk of
    /// device bytes. `auto` takes only what the hwrng has ready.
    wait: bool,
    base: Base,
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
            "getrandom" => Ok(Source::new(None, false, fill_getrandom)),
            "auto" => {
                // A regular file there (a container's stand-in) is not a
                // device: getrandom alone then.
                let device = open_device(HWRNG)
                    .ok()
                    .filter(is_device)
                    .map(|file| Device {
                        path: HWRNG.into(),
                        label: "hwrng^getrandom".into(),
                        dev: Fd(file),
                        health: Health::new(),
                        last_data: now,
                    });
                Ok(Source::new(device, false, fill_getrandom))
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
                let device = Device {
                    path: path.into(),
                    label: msg(&[path, "^getrandom"]),
                    dev: Fd(file),
                    health: Health::new(),
                    last_data: now,
                };
                Ok(Source::new(Some(device), true, fill_getrandom))
            }
        }
    }
}

impl<D: Input> Source<D> {
    /// A source on a fake device and base, for in-process tests.
    #[cfg(test)]
    pub(crate) fn fake(device: Option<(&str, D)>, wait: bool, base: Base, now: u64) -> Self {
        let device = device.map(|(path, dev)| Device {
            path: path.into(),
            label: msg(&[path, "^getrandom"]),
            dev,
            health: Health::new(),
            last_data: now,
        });
        Source::new(device, wait, base)
    }

    fn new(device: Option<Device<D>>, wait: bool, base: Base) -> Self {
        Source {
            device,
            wait,
            base,
            dropped: None,
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
    pub fn fill(&mut self, buf: &mut [u8], clock: &dyn Clock) -> Result<()> {
        (self.base)(buf)?;
        if self.wait {
            self.xor_device(buf, clock);
        } else {
            self.xor_available(buf, clock.now());
        }
        Ok(())
    }

    /// A named source: XORs a full chunk of device bytes into each 4 KiB of
    /// `buf`. A chunk that fails (EOF, no data within DEVICE_TIMEOUT_MS, a
    /// health test) is not used and the device is dropped.
    fn xor_device(&mut self, buf: &mut [u8], clock: &dyn Clock) {
        let Some(dev) = self.device.as_mut() else {
            return;
        };
        let mut tmp = [0u8; 4096];
        let mut verdict = Ok(());
        for out in buf.chunks_mut(tmp.len()) {
            let chunk = &mut tmp[..out.len()];
            verdict = read_full(&mut dev.dev, chunk, clock)
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
        let verdict = match dev.dev.read(&mut tmp[..n]) {
            Ok(0) => Err("end of file"),
            Ok(k) => {
                dev.last_data = now;
                let r = dev.health.check(&tmp[..k]).map_err(|f| f.as_str());
                if r.is_ok() {
                    buf.iter_mut().zip(&tmp[..k]).for_each(|(o, d)| *o ^= d);
                }
                r
            }
            Err(OsError(Errno::AGAIN | Errno::INTR)) => {
                if now.saturating_sub(dev.last_data) > DEVICE_TIMEOUT_NS {
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
fn read_full(
    dev: &mut dyn Input,
    buf: &mut [u8],
    clock: &dyn Clock,
) -> core::result::Result<(), &'static str> {
    let mut off = 0;
    let start = clock.now();
    while off < buf.len() {
        match dev.read(&mut buf[off..]) {
            Ok(0) => return Err("end of file"),
            Ok(n) => off += n,
            Err(OsError(Errno::INTR)) => {}
            Err(OsError(Errno::AGAIN)) => {
                let now = clock.now();
                if now.saturating_sub(start) >= DEVICE_TIMEOUT_NS {
                    return Err("no data within 2 seconds");
                }
                // Devices without poll support report readable at once, so
                // pause a little in any case.
                dev.wait(Want::Read, now + DEVICE_PAUSE_NS);
                dev.wait(Want::HangUp, clock.now() + DEVICE_PAUSE_NS);
            }
            Err(_) => return Err("read error"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Fake;
    use crate::fd::fake::{random_bytes, Trickle};

    const MS: u64 = 1_000_000;

    /// A known base instead of getrandom, so the XOR can be checked.
    fn base_byte(i: usize) -> u8 {
        (i as u8).wrapping_mul(31) ^ 0x5a
    }

    fn counting(buf: &mut [u8]) -> Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = base_byte(i);
        }
        Ok(())
    }

    fn base(n: usize) -> Vec<u8> {
        (0..n).map(base_byte).collect()
    }

    fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
        a.iter().zip(b).map(|(x, y)| x ^ y).collect()
    }

    /// The output is the base (getrandom) XOR device bytes, for a named
    /// device (whole chunks) and for `auto` (what the hwrng has ready).
    #[test]
    fn output_is_getrandom_xor_the_device() {
        let clock = Fake::at(0);
        let d = random_bytes(8192, 1);
        for wait in [true, false] {
            let dev = Trickle::all(&clock, d.clone());
            let mut src = Source::fake(Some(("/dev/x", dev)), wait, counting, 0);
            let mut out = vec![0u8; 4096];
            src.fill(&mut out, &clock).unwrap();
            assert_eq!(out, xor(&base(4096), &d[..4096]), "wait={wait}");
            assert!(src.dropped.is_none());
            assert_eq!(src.describe(), "/dev/x^getrandom");
        }
        // The real base: getrandom alone gives different bytes each time.
        let mut src = Source::open("getrandom", 0).unwrap();
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        src.fill(&mut a, &clock).unwrap();
        src.fill(&mut b, &clock).unwrap();
        assert!(a != b && a != [0u8; 64]);
    }

    /// A device whose bytes fail the health tests: that chunk never reaches
    /// the output (it is the base alone), the device is dropped with the
    /// reason, and getrandom carries on.
    #[test]
    fn bytes_that_fail_the_health_tests_never_reach_the_output() {
        let clock = Fake::at(0);
        for wait in [true, false] {
            let mut d = random_bytes(4096, 2);
            d.extend([0x41u8; 4096]);
            let dev = Trickle::all(&clock, d.clone());
            let mut src = Source::fake(Some(("/dev/x", dev)), wait, counting, 0);
            let mut out = vec![0u8; 4096];
            src.fill(&mut out, &clock).unwrap();
            assert_eq!(out, xor(&base(4096), &d[..4096]));
            src.fill(&mut out, &clock).unwrap();
            assert_eq!(out, base(4096), "wait={wait}");
            let why = src.dropped.take().unwrap();
            assert!(why.contains("/dev/x dropped: repetition"), "{why}");
            assert_eq!(src.describe(), "getrandom");
            src.fill(&mut out, &clock).unwrap();
            assert_eq!(out, base(4096));
            assert!(src.dropped.is_none(), "said once");
        }
    }

    /// The hardware RNG goes away mid-stream (end of file, or a read
    /// error): `auto` keeps what it read before, then falls back to
    /// getrandom for the rest of the session.
    #[test]
    fn hwrng_gone_mid_stream_falls_back_to_getrandom() {
        let clock = Fake::at(0);
        for (end, why) in [(None, "end of file"), (Some(Errno::IO), "read error")] {
            let d = random_bytes(6000, 3);
            let mut dev = Trickle::all(&clock, d.clone());
            dev.end = end;
            let mut src = Source::fake(Some((HWRNG, dev)), false, counting, 0);
            let mut out = vec![0u8; 4096];
            src.fill(&mut out, &clock).unwrap();
            assert_eq!(out, xor(&base(4096), &d[..4096]));
            src.fill(&mut out, &clock).unwrap();
            let mut want = xor(&base(1904), &d[4096..]);
            want.extend(&base(4096)[1904..]);
            assert_eq!(out, want);
            assert!(src.dropped.is_none());
            src.fill(&mut out, &clock).unwrap();
            assert_eq!(out, base(4096));
            let said = src.dropped.take().unwrap();
            assert!(said.contains(&format!("/dev/hwrng dropped: {why}; using getrandom")));
            assert_eq!(src.describe(), "getrandom");
        }
    }

    /// `auto` never waits for the hwrng: output goes on at getrandom's pace
    /// while the device has nothing, and a device silent for over 2 s is
    /// dropped.
    #[test]
    fn a_quiet_hwrng_never_slows_auto_and_is_dropped_after_2_s() {
        let clock = Fake::at(0);
        let mut dev = Trickle::new(&clock, random_bytes(1000, 4), u64::MAX, 0);
        dev.ready = 100;
        let mut src = Source::fake(Some((HWRNG, dev)), false, counting, 0);
        let mut out = vec![0u8; 512];
        src.fill(&mut out, &clock).unwrap();
        for t in [1000 * MS, 2000 * MS] {
            clock.set(t);
            src.fill(&mut out, &clock).unwrap();
            assert_eq!(clock.now(), t, "auto waited");
            assert_eq!(out, base(512));
            assert!(src.dropped.is_none());
        }
        clock.set(2000 * MS + 1);
        src.fill(&mut out, &clock).unwrap();
        assert!(src
            .dropped
            .take()
            .unwrap()
            .contains("no data within 2 seconds"));
    }

    /// A named device that trickles is waited for, chunk by chunk, as long
    /// as a chunk comes within 2 s; one that is slower is dropped after 2 s
    /// of waiting and the output is getrandom alone.
    #[test]
    fn a_trickling_named_device_is_waited_for_up_to_2_s_a_chunk() {
        let clock = Fake::at(0);
        let d = random_bytes(8192, 6);
        // 100 bytes every 10 ms: a 4 KiB chunk in 410 ms.
        let dev = Trickle::new(&clock, d.clone(), 10 * MS, 100);
        let mut src = Source::fake(Some(("/dev/x", dev)), true, counting, 0);
        let mut out = vec![0u8; 4096];
        src.fill(&mut out, &clock).unwrap();
        assert_eq!(out, xor(&base(4096), &d[..4096]));
        assert!(
            (410 * MS..=420 * MS).contains(&clock.now()),
            "{}",
            clock.now()
        );
        assert!(src.dropped.is_none());
        // 100 bytes every 100 ms: 4.1 s a chunk, too slow.
        let clock = Fake::at(0);
        let dev = Trickle::new(&clock, d.clone(), 100 * MS, 100);
        let mut src = Source::fake(Some(("/dev/x", dev)), true, counting, 0);
        src.fill(&mut out, &clock).unwrap();
        assert_eq!(out, base(4096));
        assert!(
            (2000 * MS..=2010 * MS).contains(&clock.now()),
            "{}",
            clock.now()
        );
        let why = src.dropped.take().unwrap();
        assert!(why.contains("no data within 2 seconds"), "{why}");
    }
}
