//! `entropyservice client`: ssh child -> health -> credit policy -> kernel.
//!
//! Guarantees: bytes reach RNDADDENTROPY only after the health tests passed
//! on the whole chunk (for `get N`, on all N bytes); a session that fails a
//! test, stalls or ends short credits nothing more; every SSH child is killed
//! and reaped before the next one starts.
//!
//! mod.rs runs the command and the daemon loop; `config` checks the command
//! line, `session` reads SSH sessions and credits what passed, `peers` is
//! the failover order, `seeds` the seed-file schedule, `world` what the
//! session and daemon code need of the outside (SSH children, the kernel,
//! the clock, signals), real or fake.

mod config;
mod peers;
mod seeds;
mod session;
mod world;

use crate::cli;
use crate::error::{Error, Result, Status};
use crate::kernel::{self, Pool};
use crate::log;
use crate::parse;
use crate::rate::{Backoff, NS};
use crate::status::{self, State};
use crate::text::msg;
use crate::text::{Num, Seconds};
use config::{config, Config, Mode};
use peers::Peers;
use seeds::{after_pull, save_seed, saved_this_boot, SeedSchedule};
use session::{stream_session, topup_once};
use world::{Real, World};

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
    let mut world = Real { cfg: &cfg };
    if let Some(n) = a.once {
        st.mode = "once";
        peers.quiet_last = true;
        let was_ready = kernel::crng_ready();
        let (credited, reseeded) = peers.try_each(&mut world, &mut st, |w, s, st| {
            topup_once(&cfg, w, s, &mut pool, st, n as usize)
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
    daemon(&cfg, &mut world, &mut peers, &mut pool, &mut st)
}

fn write_state(cfg: &Config, st: &State) {
    if let Err(e) = st.write(&cfg.status_file) {
        log::warn(&e.msg);
    }
}

fn daemon<W: World>(
    cfg: &Config,
    w: &mut W,
    peers: &mut Peers,
    pool: &mut Pool<W::Device>,
    st: &mut State,
) -> Result<()> {
    let legacy = w.legacy();
    let mode = match cfg.mode {
        Mode::Auto if legacy => Mode::Stream,
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
    if !w.crng_ready() {
        st.state = "seeding";
        write_state(cfg, st);
        w.load_seed(pool);
        while !w.crng_ready() {
            if w.signalled() {
                return finish(cfg, st);
            }
            let r = peers.try_each(w, st, |w, s, st| {
                stream_session(cfg, w, s, pool, st, true, &mut |st, now| {
                    progress(cfg, st, &mut written, now)
                })
            });
            if w.signalled() {
                return finish(cfg, st);
            }
            write_state(cfg, st);
            if r.is_err() && !w.crng_ready() {
                let d = backoff.delay(w.jitter());
                if !w.idle(d, true) {
                    return finish(cfg, st);
                }
            }
        }
        backoff.reset();
        #[allow(clippy::disallowed_methods)] // the wall clock, for a status time only
        let wall = crate::clock::wall_secs();
        st.crng_ready_at = wall;
        log::info("kernel CRNG is ready");
    }
    // Kernels 5.18+ count no credit once the CRNG is ready and reseed it
    // from their own pool (about 32 bytes a minute is all a reseed takes):
    // a stream there would only burn bandwidth and CPU. It goes on as
    // top-ups, which bound what it takes to --get-bytes per --interval.
    let mode = if mode == Mode::Stream && !legacy {
        log::info("the CRNG is ready and this kernel (5.18 or later) counts no more credits: stream mode goes on as top-ups of --get-bytes every --interval");
        st.mode = "topup";
        Mode::Topup
    } else {
        mode
    };
    let mut failing = false;
    let mut worked = false;
    loop {
        if w.signalled() {
            return finish(cfg, st);
        }
        st.state = "fetching";
        write_state(cfg, st);
        let r = match mode {
            Mode::Stream => peers.try_each(w, st, |w, s, st| {
                stream_session(cfg, w, s, pool, st, false, &mut |st, now| {
                    after_pull(cfg, &mut seeds, st, now);
                    progress(cfg, st, &mut written, now);
                })
            }),
            _ => peers
                .try_each(w, st, |w, s, st| {
                    topup_once(cfg, w, s, pool, st, cfg.get_bytes)
                })
                .map(|_| {
                    #[allow(clippy::disallowed_methods)] // the wall clock, for a status time only
                    let wall = crate::clock::wall_secs();
                    st.last_success = wall;
                    after_pull(cfg, &mut seeds, st, w.now());
                }),
        };
        let wait = match r {
            // A stream that a signal ended: it proves nothing about the server.
            Ok(()) if w.signalled() => return finish(cfg, st),
            Ok(()) => {
                if failing || !worked {
                    log::info_parts(&["fetching from ", &st.server, " works"]);
                }
                failing = false;
                worked = true;
                backoff.reset();
                st.state = "idle";
                jittered(cfg.interval, w.jitter())
            }
            Err(_) if w.signalled() => return finish(cfg, st),
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
                let d = backoff.delay(w.jitter());
                log::info_parts(&["retrying in ", Seconds::new(d).as_str(), " s"]);
                st.state = "retrying";
                d
            }
        };
        write_state(cfg, st);
        // No child process and no timer between top-ups: one sleep.
        if !w.idle(wait, failing) {
            return finish(cfg, st);
        }
    }
}

/// Keeps the status file current while a stream runs, at most once a second
/// (a stream credits a chunk many times a second).
fn progress(cfg: &Config, st: &State, written: &mut u64, now: u64) {
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
    use super::config::for_tests;
    use super::session::tests::{fake_pool, noise, reached};
    use super::world::fake::{Answer, FakeWorld, Time};
    use super::*;

    const T0: u64 = 5_000 * NS;
    const S: u64 = NS;

    /// A scratch directory for the status and seed files.
    fn scratch(name: &str) -> String {
        let d = std::env::temp_dir().join(format!("es-client-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("run")).unwrap();
        d.to_str().unwrap().to_string()
    }

    struct Run {
        r: Result<()>,
        st: State,
        status: String,
        seeds_saved: usize,
        credited_bits: u64,
        dir: String,
    }

    impl Drop for Run {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Runs the daemon in `w` until it returns.
    fn run_daemon(name: &str, cfg_edit: impl FnOnce(&mut Config), w: &mut FakeWorld<'_>) -> Run {
        let dir = scratch(name);
        let mut cfg = for_tests(&dir);
        cfg_edit(&mut cfg);
        let mut peers = Peers::new(&cfg.servers, cfg.max_backoff);
        let mut pool = fake_pool();
        let mut st = State::default();
        let r = daemon(&cfg, w, &mut peers, &mut pool, &mut st);
        let status = std::fs::read_to_string(&cfg.status_file).unwrap_or_default();
        let seeds_saved = std::fs::read_dir(&cfg.seed_dir)
            .map(|d| d.count())
            .unwrap_or(0);
        Run {
            r,
            st,
            status,
            seeds_saved,
            credited_bits: reached(&pool).0,
            dir,
        }
    }

    fn stopped_with_a_seed(run: &Run) {
        assert!(run.status.contains("state: stopped\n"), "{}", run.status);
        assert!(run.seeds_saved > 0, "no seed saved at exit");
    }

    /// The idle waits in whole seconds, and whether SIGUSR1 cut each.
    fn idles(w: &FakeWorld<'_>) -> Vec<(u64, bool)> {
        w.idles
            .iter()
            .map(|&(ns, cut)| {
                assert_eq!(ns % S, 0, "a wait of {ns} ns");
                (ns / S, cut)
            })
            .collect()
    }

    fn refused() -> Answer {
        Answer::Fails(Status::Unavailable, "connection refused")
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        assert_eq!(jittered(1000, 0), 900);
        assert_eq!(jittered(1000, u32::MAX), 1100);
        assert_eq!(jittered(1000, u32::MAX / 2), 999);
    }

    /// Both servers down for three rounds: the waits double from 1 s; the
    /// fourth round works and the client waits --interval (+10% here); the
    /// next failure waits 1 s again, and a SIGTERM in that wait ends the
    /// client at once with a seed saved. (Was a process test: "recovers
    /// within 7 s".)
    #[test]
    fn back_off_doubles_and_a_working_server_resets_it() {
        let t = Time::at(T0);
        let stop = T0 + 7 * S + 660 * S + S / 2;
        t.signal_at.set(stop);
        let mut w = FakeWorld::new(
            &t,
            (0..6)
                .map(|_| refused())
                .chain([Answer::sends(&noise(64, 1), 64, 0)]),
        );
        let run = run_daemon("backoff", |_| {}, &mut w);
        run.r.as_ref().unwrap();
        let at: Vec<(String, u64)> = w.connects.iter().map(|c| (c.0.clone(), c.2)).collect();
        let (a, b) = (
            "root@a.example:22".to_string(),
            "root@b.example:22".to_string(),
        );
        assert_eq!(
            at,
            vec![
                (a.clone(), T0),
                (b.clone(), T0),
                (a.clone(), T0 + S),
                (b.clone(), T0 + S),
                (a.clone(), T0 + 3 * S),
                (b.clone(), T0 + 3 * S),
                (a.clone(), T0 + 7 * S),
                (a, T0 + 667 * S),
                (b, T0 + 667 * S),
            ]
        );
        assert_eq!(
            idles(&w),
            [(1, false), (2, false), (4, false), (660, false), (1, false)]
        );
        assert_eq!(t.now(), stop, "stopped when the signal came");
        assert_eq!(run.credited_bits, 128);
        assert_eq!((run.st.sessions, run.st.reconnects), (1, 7));
        stopped_with_a_seed(&run);
        assert_eq!(t.ended.get(), 1);
    }

    /// The wait between failures is capped at --max-backoff.
    #[test]
    fn back_off_stops_growing_at_max_backoff() {
        let t = Time::at(T0);
        t.signal_at.set(T0 + 200 * S);
        let mut w = FakeWorld::new(&t, []);
        let run = run_daemon("cap", |c| c.max_backoff = 16 * S, &mut w);
        run.r.as_ref().unwrap();
        let waits: Vec<u64> = idles(&w).iter().map(|i| i.0).collect();
        assert_eq!(waits[..8], [1, 2, 4, 8, 16, 16, 16, 16]);
        assert!(waits.iter().all(|&x| x <= 16));
        assert_eq!(t.now(), T0 + 200 * S);
        stopped_with_a_seed(&run);
    }

    /// SIGUSR1 ends a failing client's wait at once; a working client's
    /// --interval is not disturbed by it.
    #[test]
    fn sigusr1_cuts_only_a_failing_wait() {
        let t = Time::at(T0);
        t.usr1_at.set(T0 + 20 * S);
        t.signal_at.set(T0 + 30 * S);
        let mut w = FakeWorld::new(&t, []);
        let run = run_daemon("usr1-failing", |_| {}, &mut w);
        run.r.as_ref().unwrap();
        let cut = [
            (1, false),
            (2, false),
            (4, false),
            (8, false),
            (16, true),
            (32, false),
        ];
        assert_eq!(idles(&w), cut);
        assert_eq!(w.connects.last().unwrap().2, T0 + 20 * S, "retried at once");

        let t = Time::at(T0);
        t.usr1_at.set(T0 + 20 * S);
        t.signal_at.set(T0 + 700 * S);
        let mut w = FakeWorld::new(&t, [Answer::sends(&noise(64, 2), 64, 0)]);
        let run = run_daemon("usr1-working", |_| {}, &mut w);
        run.r.as_ref().unwrap();
        assert_eq!(idles(&w)[0], (660, false));
        assert_eq!(w.connects[1].2, T0 + 660 * S, "the next top-up on time");
    }

    /// Every server refuses the request itself: asking again cannot help,
    /// so the client stops with 78 after one round, its state recorded.
    #[test]
    fn every_server_refusing_the_request_stops_with_78() {
        let t = Time::at(T0);
        let why = "server refused: get 64 is over its --max-bytes";
        let mut w = FakeWorld::new(
            &t,
            [
                Answer::Fails(Status::Config, why),
                Answer::Fails(Status::Config, why),
            ],
        );
        let run = run_daemon("refused", |_| {}, &mut w);
        let e = run.r.as_ref().unwrap_err();
        assert_eq!(e.exit_code(), 78);
        assert!(e.msg.starts_with(why), "{}", e.msg);
        assert!(e
            .msg
            .ends_with("fix --get-bytes or the servers' --max-bytes"));
        assert_eq!((w.connects.len(), w.idles.len()), (2, 0));
        assert_eq!(t.now(), T0);
        stopped_with_a_seed(&run);
    }

    /// A kernel whose CRNG is not ready: the seed file first, then a stream
    /// until it is ready, then top-ups (5.18+ counts nothing more).
    #[test]
    fn a_kernel_that_is_not_ready_is_seeded_then_topped_up() {
        let t = Time::at(T0);
        t.signal_at.set(T0 + 100 * S);
        let mut w = FakeWorld::new(
            &t,
            [
                Answer::sends_then_hangs(&noise(8 * 512, 3), 512, S),
                Answer::sends(&noise(64, 4), 64, 0),
            ],
        );
        w.ready_at = T0 + 2 * S + 1;
        let run = run_daemon("seeding", |_| {}, &mut w);
        run.r.as_ref().unwrap();
        assert_eq!(w.seed_loads, 1);
        let cmds: Vec<(&str, u64)> = w.connects.iter().map(|c| (c.1.as_str(), c.2)).collect();
        assert_eq!(cmds, vec![("cat /dev/random", T0), ("get 64", T0 + 3 * S)]);
        // Chunks at 0, 1, 2 and 3 s (ready is seen after the fourth).
        assert_eq!(run.credited_bits, 4 * 1024 + 128);
        assert_eq!(run.st.mode, "topup");
        assert_ne!(run.st.crng_ready_at, 0);
        assert_eq!(idles(&w), [(660, false)]);
        stopped_with_a_seed(&run);
        assert_eq!(t.ended.get(), 2);
    }

    /// Stream mode on an old kernel: a SIGTERM mid-stream ends the daemon
    /// at that moment, with the stream's credits kept, a seed saved and the
    /// state recorded. (Was a process test: "exits within 2 s".)
    #[test]
    fn a_signal_mid_stream_stops_the_daemon_at_once() {
        let t = Time::at(T0);
        t.signal_at.set(T0 + 5 * S + 1);
        let mut w = FakeWorld::new(&t, [Answer::sends_then_hangs(&noise(16 * 512, 5), 512, S)]);
        w.legacy = true;
        let run = run_daemon("stream-signal", |_| {}, &mut w);
        run.r.as_ref().unwrap();
        assert_eq!(run.st.mode, "stream");
        assert_eq!(t.now(), T0 + 5 * S + 1);
        assert_eq!(run.credited_bits, 6 * 1024);
        assert!(w.idles.is_empty());
        stopped_with_a_seed(&run);
        assert_eq!(t.ended.get(), 1);
    }
}
