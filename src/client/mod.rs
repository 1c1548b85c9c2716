//! `entropyservice client`: ssh child -> health -> credit policy -> kernel.
//!
//! Guarantees: bytes reach RNDADDENTROPY only after the health tests passed
//! on the whole chunk (for `get N`, on all N bytes); a session that fails a
//! test, stalls or ends short credits nothing more; every SSH child is killed
//! and reaped before the next one starts.
//!
//! mod.rs runs the command and the daemon loop; `config` checks the command
//! line, `session` reads SSH sessions and credits what passed, `peers` is
//! the failover order, `seeds` the seed-file schedule.

mod config;
mod peers;
mod seeds;
mod session;

use crate::cli;
use crate::clock;
use crate::error::{Error, Result, Status};
use crate::kernel::{self, Pool};
use crate::log;
use crate::parse;
use crate::rate::{Backoff, NS};
use crate::seed::SeedDir;
use crate::status::{self, State};
use crate::sys::pending_signal;
use crate::text::msg;
use crate::text::{Num, Seconds};
use config::{config, Config, Mode};
use peers::Peers;
use seeds::{after_pull, save_seed, saved_this_boot, SeedSchedule};
use session::{stream_session, topup_once};

/// Largest `get N` the client asks for.
pub const MAX_GET: usize = 4096;

/// `interval` +-10%, `r` uniform over u32.
fn jittered(interval: u64, r: u32) -> u64 {
    let tenth = interval / 10;
    interval - tenth + crate::rate::scale(2 * tenth, r)
}

pub fn run(a: &cli::Client) -> Result<()> {
    // First, so a SIGTERM during start-up is recorded, not fatal.
    crate::sys::install_signal_handlers();
    crate::sys::install_retry_handler();
    let cfg = config(a)?;
    let mut pool = Pool::open(parse::duration_ns(&a.reseed_interval).ok_or_else(|| {
        Error::new(
            Status::Usage,
            "--reseed-interval must be a duration such as 60s",
        )
    })?)?;
    if a.check {
        return Ok(());
    }
    status::ensure_runtime_dir(&cfg.runtime)?;
    status::check_status_dir(&cfg.status_file)?;
    let mut st = State {
        pid: std::process::id(),
        ..State::default()
    };
    let mut peers = Peers::new(&cfg.servers, cfg.max_backoff);
    if let Some(n) = a.once {
        st.mode = "once";
        peers.quiet_last = true;
        let was_ready = kernel::crng_ready();
        let (credited, reseeded) = peers.try_each(clock::now_ns(), &mut st, |s, st| {
            topup_once(&cfg, s, &mut pool, st, n as usize)
        })?;
        let line = msg(&[
            "received ",
            Num::new(n as u64).as_str(),
            if n == 1 {
                " byte from "
            } else {
                " bytes from "
            },
            &st.server,
            ", credited ",
            Num::new(credited).as_str(),
            if was_ready && credited > 0 {
                " bits (mixed; the CRNG was already ready, so the kernel's count does not grow), reseeded "
            } else {
                " bits, reseeded "
            },
            if reseeded { "yes" } else { "no" },
            "\n",
        ]);
        crate::log::stdout(line.as_bytes());
        return Ok(());
    }
    let status_dir = cfg.status_file.rsplit_once('/').map_or(".", |(d, _)| d);
    if !status::on_ram_fs(if status_dir.is_empty() {
        "/"
    } else {
        status_dir
    }) {
        log::warn_parts(&[
            "status file ",
            &cfg.status_file,
            " is not on tmpfs: every top-up rewrites it (a flash write on a router); ",
            if status::on_ram_fs("/run") {
                "choose a file under /run"
            } else {
                "/run is not tmpfs here either: give --status-file on a tmpfs mount, or ignore this where writes are cheap"
            },
        ]);
    }
    // Held until exit: `status` tells a running client by it, also one
    // whose recorded pid is 1 of a PID namespace (ujail).
    let _lock = status::hold_lock(&cfg.status_file)?;
    daemon(&cfg, &mut peers, &mut pool, &mut st)
}

fn write_state(cfg: &Config, st: &State) {
    if let Err(e) = st.write(&cfg.status_file) {
        log::warn(&e.msg);
    }
}

fn daemon(cfg: &Config, peers: &mut Peers, pool: &mut Pool, st: &mut State) -> Result<()> {
    let info = kernel::info();
    let mode = match cfg.mode {
        Mode::Auto if info.legacy() => Mode::Stream,
        Mode::Auto => Mode::Topup,
        m => m,
    };
    st.mode = if mode == Mode::Stream {
        "stream"
    } else {
        "topup"
    };
    log::info_parts(&[
        "starting in ",
        st.mode,
        " mode with ",
        Num::new(peers.list.len() as u64).as_str(),
        " server(s)",
    ]);
    let mut seeds = SeedSchedule {
        interval: cfg.seed_interval,
        saved_this_boot: saved_this_boot(cfg),
        last: None,
    };
    let mut backoff = Backoff::new(NS, cfg.max_backoff);
    // When a stream last updated the status file.
    let mut written = 0u64;
    if !info.crng_ready {
        st.state = "seeding";
        write_state(cfg, st);
        // Safe whoever loaded before: see the seed module's notes.
        match SeedDir::open(&cfg.seed_dir).and_then(|d| d.load(pool)) {
            Ok(l) => log::info_parts(&[
                "CRNG not ready: loaded ",
                Num::new(l.bytes as u64).as_str(),
                " seed bytes, credited ",
                Num::new(l.bits_credited).as_str(),
                " bits",
            ]),
            Err(e) => log::warn(&e.msg),
        }
        while !kernel::crng_ready() {
            if pending_signal().is_some() {
                return finish(cfg, st);
            }
            let r = peers.try_each(clock::now_ns(), st, |s, st| {
                stream_session(cfg, s, pool, st, &kernel::crng_ready, &mut |st| {
                    progress(cfg, st, &mut written)
                })
            });
            if pending_signal().is_some() {
                return finish(cfg, st);
            }
            write_state(cfg, st);
            if r.is_err() && !kernel::crng_ready() && !idle(backoff.delay(clock::jitter()), true) {
                return finish(cfg, st);
            }
        }
        backoff.reset();
        #[allow(clippy::disallowed_methods)] // the wall clock, for a status time only
        let wall = clock::wall_secs();
        st.crng_ready_at = wall;
        log::info("kernel CRNG is ready");
    }
    // Kernels 5.18+ count no credit once the CRNG is ready and reseed it
    // from their own pool (about 32 bytes a minute is all a reseed takes):
    // a stream there would only burn bandwidth and CPU. It goes on as
    // top-ups, which bound what it takes to --get-bytes per --interval.
    let mode = if mode == Mode::Stream && !info.legacy() {
        log::info("the CRNG is ready and this kernel (5.18 or later) counts no more credits: stream mode goes on as top-ups of --get-bytes every --interval");
        st.mode = "topup";
        Mode::Topup
    } else {
        mode
    };
    let mut failing = false;
    let mut worked = false;
    loop {
        if pending_signal().is_some() {
            return finish(cfg, st);
        }
        st.state = "fetching";
        write_state(cfg, st);
        let r = match mode {
            Mode::Stream => peers.try_each(clock::now_ns(), st, |s, st| {
                stream_session(cfg, s, pool, st, &|| false, &mut |st| {
                    after_pull(cfg, &mut seeds, st);
                    progress(cfg, st, &mut written);
                })
            }),
            _ => peers
                .try_each(clock::now_ns(), st, |s, st| {
                    topup_once(cfg, s, pool, st, cfg.get_bytes)
                })
                .map(|_| {
                    #[allow(clippy::disallowed_methods)] // the wall clock, for a status time only
                    let wall = clock::wall_secs();
                    st.last_success = wall;
                    after_pull(cfg, &mut seeds, st);
                }),
        };
        let wait = match r {
            // A stream that a signal ended: it proves nothing about the server.
            Ok(()) if pending_signal().is_some() => return finish(cfg, st),
            Ok(()) => {
                if failing || !worked {
                    log::info_parts(&["fetching from ", &st.server, " works"]);
                }
                failing = false;
                worked = true;
                backoff.reset();
                st.state = "idle";
                jittered(cfg.interval, clock::jitter())
            }
            Err(_) if pending_signal().is_some() => return finish(cfg, st),
            // Every server refused the request itself: asking again cannot
            // help, so stop with 78 (procd and systemd do not restart it).
            Err(e) if peers.all_refused => {
                finish(cfg, st)?;
                return Err(Error::new(
                    Status::Config,
                    msg(&[
                        &e.msg,
                        "; every server refuses this request: fix --get-bytes or the servers' --max-bytes",
                    ]),
                ));
            }
            Err(_) => {
                failing = true;
                let d = backoff.delay(clock::jitter());
                log::info_parts(&["retrying in ", Seconds::new(d).as_str(), " s"]);
                st.state = "retrying";
                d
            }
        };
        write_state(cfg, st);
        // No child process and no timer between top-ups: one sleep.
        if !idle(wait, failing) {
            return finish(cfg, st);
        }
    }
}

/// Sleeps `ns` unless a terminating signal arrives (false). After a
/// failure (`failing`), SIGUSR1 ends the wait at once: the network came up.
/// A working client ignores it, so no session or schedule is disturbed.
fn idle(ns: u64, failing: bool) -> bool {
    let end = clock::now_ns().saturating_add(ns);
    loop {
        if pending_signal().is_some() {
            return false;
        }
        if crate::sys::take_retry() && failing {
            log::info("trying again now (SIGUSR1: the network came up)");
            return true;
        }
        let now = clock::now_ns();
        if now >= end {
            return true;
        }
        clock::sleep_ns(end - now);
    }
}

/// Keeps the status file current while a stream runs, at most once a second
/// (a stream credits a chunk many times a second).
fn progress(cfg: &Config, st: &State, written: &mut u64) {
    let now = clock::now_ns();
    if now.saturating_sub(*written) >= NS {
        *written = now;
        write_state(cfg, st);
    }
}

/// On SIGTERM, SIGINT or SIGHUP: save a seed, record the state, exit 0.
fn finish(cfg: &Config, st: &mut State) -> Result<()> {
    log::info("terminating: saving a seed");
    save_seed(cfg, st);
    st.state = "stopped";
    write_state(cfg, st);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        assert_eq!(jittered(1000, 0), 900);
        assert_eq!(jittered(1000, u32::MAX), 1100);
        assert_eq!(jittered(1000, u32::MAX / 2), 999);
    }
}
