//! `entropyservice client`: ssh child -> health -> credit policy -> kernel.
//!
//! Guarantees: bytes reach RNDADDENTROPY only after the health tests passed
//! on the whole chunk (for `get N`, on all N bytes); a session that fails a
//! test, stalls or ends short credits nothing more; every SSH child is killed
//! and reaped before the next one starts.

use crate::cli;
use crate::clock;
use crate::error::{msg, Error, Result, Status};
use crate::health::Health;
use crate::hostkey::PublicKey;
use crate::kernel::{self, Pool};
use crate::log::{self, Num};
use crate::parse;
use crate::rate::{Backoff, NS};
use crate::seed::{self, SeedDir};
use crate::ssh::{self, Program, Read, Server, Session};
use crate::status::{self, State};

/// Largest `get N` the client asks for.
pub const MAX_GET: usize = 4096;
/// Stream mode credits in chunks of this size, each tested in full first.
const CHUNK: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Auto,
    Topup,
    Stream,
}

struct Config {
    program: Program,
    servers: Vec<Server>,
    bits_per_byte: u32,
    mode: Mode,
    interval: u64,
    get_bytes: usize,
    connect_timeout: u64,
    stall_timeout: u64,
    max_backoff: u64,
    low_water: u32,
    seed_dir: String,
    seed_interval: u64,
    status_file: String,
    runtime: String,
}

fn duration(name: &str, v: &str) -> Result<u64> {
    parse::duration_ns(v).ok_or_else(|| {
        Error::new(
            Status::Usage,
            msg(&[
                "--",
                name,
                " ",
                v,
                " is not a duration such as 30s, 10m, 1h or 1d",
            ]),
        )
    })
}

fn host_key(v: Option<&str>, host: &str) -> Result<PublicKey> {
    let v = v.ok_or_else(|| {
        Error::new(
            Status::Usage,
            msg(&["no pinned host key for ", host, ": give --host-key \"TYPE BASE64\" (run `entropyservice hostkey` on the server to print it)"]),
        )
    })?;
    PublicKey::parse(v).map_err(|e| {
        Error::new(
            Status::Usage,
            msg(&["--host-key for ", host, ": ", e.as_str()]),
        )
    })
}

fn make_server(
    host: &str,
    port: Option<u16>,
    user: Option<&str>,
    key: Option<&str>,
    hk: Option<&str>,
    agent: bool,
) -> Result<Server> {
    let user = user.unwrap_or("root");
    ssh::check_target(host, user)?;
    let host_key = host_key(hk, host)?;
    if let Some(k) = key {
        ssh::check_key_file(k)?;
    } else if !agent {
        return Err(Error::new(
            Status::Usage,
            msg(&[
                "no key for ",
                host,
                ": give -i KEYFILE, or --agent to use the SSH agent in SSH_AUTH_SOCK",
            ]),
        ));
    }
    if agent && std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return Err(Error::new(
            Status::Usage,
            "--agent needs SSH_AUTH_SOCK to name the agent's socket",
        ));
    }
    Ok(Server {
        host: host.into(),
        port: port.unwrap_or(22),
        user: user.into(),
        key: key.map(String::from),
        host_key,
        agent,
    })
}

/// Parses `--server "host=H,port=P,user=U,key=FILE,host-key=TYPE BASE64"`.
fn server_spec(spec: &str, agent: bool) -> Result<Server> {
    let bad = |why: &str| Error::new(Status::Usage, msg(&["--server ", spec, ": ", why]));
    let (mut host, mut port, mut user, mut key, mut hk) = (None, None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| bad("expected key=value fields separated by commas"))?;
        match k.trim() {
            "host" => host = Some(v.trim()),
            "port" => {
                port = Some(
                    parse::decimal(v.trim())
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad("port must be 1-65535"))?,
                )
            }
            "user" => user = Some(v.trim()),
            "key" => key = Some(v.trim()),
            "host-key" => hk = Some(v.trim()),
            _ => return Err(bad("unknown field; use host, port, user, key, host-key")),
        }
    }
    let host = host.ok_or_else(|| bad("host= is missing"))?;
    make_server(host, port, user, key, hk, agent)
}

fn config(a: &cli::Client) -> Result<Config> {
    if a.credit_bits_per_byte > 8 {
        return Err(Error::new(
            Status::Usage,
            "--credit-bits-per-byte must be 0 to 8",
        ));
    }
    let mode = match a.mode.as_str() {
        "auto" => Mode::Auto,
        "topup" => Mode::Topup,
        "stream" => Mode::Stream,
        _ => {
            return Err(Error::new(
                Status::Usage,
                "--mode must be auto, topup or stream",
            ))
        }
    };
    if a.get_bytes == 0
        || a.get_bytes as usize > MAX_GET
        || a.once.is_some_and(|n| n == 0 || n as usize > MAX_GET)
    {
        return Err(Error::new(
            Status::Usage,
            "--get-bytes and --once take 1 to 4096 bytes",
        ));
    }
    let mut servers = Vec::new();
    if let Some(h) = &a.host {
        let (user, host) = parse::user_host(h)
            .ok_or_else(|| Error::new(Status::Usage, msg(&["invalid [USER@]HOST ", h])))?;
        servers.push(make_server(
            host,
            a.port,
            a.login.as_deref().or(user),
            a.identity.as_deref(),
            a.host_key.as_deref(),
            a.agent,
        )?);
    }
    for s in &a.server {
        servers.push(server_spec(s, a.agent)?);
    }
    if servers.is_empty() {
        return Err(Error::new(
            Status::Usage,
            "no server given: entropyservice client [OPTIONS] [USER@]HOST (see --help)",
        ));
    }
    let program = Program::find(a.ssh.as_deref())?;
    let runtime = status::runtime_dir();
    Ok(Config {
        program,
        servers,
        bits_per_byte: a.credit_bits_per_byte,
        mode,
        interval: duration("interval", &a.interval)?,
        get_bytes: a.get_bytes as usize,
        connect_timeout: duration("connect-timeout", &a.connect_timeout)?,
        stall_timeout: duration("stall-timeout", &a.stall_timeout)?,
        max_backoff: duration("max-backoff", &a.max_backoff)?,
        low_water: a.low_water,
        seed_dir: a
            .seed_dir
            .clone()
            .unwrap_or_else(|| seed::DEFAULT_DIR.into()),
        seed_interval: duration("seed-interval", &a.seed_interval)?,
        status_file: a
            .status_file
            .clone()
            .unwrap_or_else(status::default_status_file),
        runtime,
    })
}

/// Reads exactly `buf.len()` bytes from a new session running `command`.
fn fetch_exact(cfg: &Config, s: &Server, command: &str, buf: &mut [u8]) -> Result<()> {
    crate::limits::ensure_private_dir(&cfg.runtime)?;
    let mut sess = Session::start(
        &cfg.program,
        s,
        command,
        &cfg.runtime,
        cfg.connect_timeout / NS,
    )?;
    let mut got = 0;
    while got < buf.len() {
        let timeout = if got == 0 {
            cfg.connect_timeout
        } else {
            cfg.stall_timeout
        };
        match sess.read(&mut buf[got..], timeout)? {
            Read::Data(n) => got += n,
            Read::Eof => {
                let (_, err) = sess.finish();
                if got == 0 && !err.trim().is_empty() {
                    return Err(ssh::diagnose(s, &err));
                }
                let (a, b) = (Num::new(got as u64), Num::new(buf.len() as u64));
                return Err(Error::new(
                    Status::Data,
                    msg(&[
                        "server ",
                        &s.label(),
                        " sent ",
                        a.as_str(),
                        " of ",
                        b.as_str(),
                        " bytes; nothing credited",
                    ]),
                ));
            }
            Read::Timeout => {
                let (_, err) = sess.finish();
                if got == 0 && !err.trim().is_empty() {
                    return Err(ssh::diagnose(s, &err));
                }
                let what = if got == 0 {
                    " sent nothing within the connect timeout"
                } else {
                    " stalled; session killed"
                };
                return Err(Error::new(
                    Status::Unavailable,
                    msg(&["server ", &s.label(), what, "; nothing credited"]),
                ));
            }
            Read::Interrupted => {
                if crate::sys::pending_signal().is_some() {
                    return Err(Error::new(Status::Unavailable, "interrupted by a signal"));
                }
            }
        }
    }
    // Done reading: a legacy `cat` server would stream on, so end it here.
    drop(sess);
    Ok(())
}

fn health_error(s: &Server, f: crate::health::Failure) -> Error {
    Error::new(
        Status::Data,
        msg(&[
            "bytes from ",
            &s.label(),
            " failed the health tests: ",
            f.as_str(),
            "; nothing credited",
        ]),
    )
}

/// One `get N` round: fetch, test all N bytes, credit, reseed.
fn topup_once(
    cfg: &Config,
    s: &Server,
    pool: &mut Pool,
    st: &mut State,
    n: usize,
) -> Result<(u64, bool)> {
    let mut buf = [0u8; MAX_GET];
    let cmd = msg(&["get ", Num::new(n as u64).as_str()]);
    let r = fetch_exact(cfg, s, &cmd, &mut buf[..n]);
    st.reconnects += 1;
    r?;
    st.bytes_received += n as u64;
    let mut h = Health::new();
    if let Err(f) = h.check(&buf[..n]) {
        st.health_failures += 1;
        buf.fill(0);
        return Err(health_error(s, f));
    }
    let credited = pool.add(&buf[..n], cfg.bits_per_byte);
    buf.fill(0);
    let credited = credited?;
    st.bits_credited += credited;
    let reseeded = pool.reseed(clock::now_ns())?;
    st.reseeds = pool.totals.reseeds;
    Ok((credited, reseeded))
}

/// Streams from one server, crediting tested 512-byte chunks, until `done`
/// says stop, a signal arrives, or the session fails.
fn stream_session(
    cfg: &Config,
    s: &Server,
    pool: &mut Pool,
    st: &mut State,
    done: &dyn Fn() -> bool,
) -> Result<()> {
    crate::limits::ensure_private_dir(&cfg.runtime)?;
    let mut sess = Session::start(
        &cfg.program,
        s,
        "cat /dev/random",
        &cfg.runtime,
        cfg.connect_timeout / NS,
    )?;
    st.reconnects += 1;
    let mut health = Health::new();
    let mut chunk = [0u8; CHUNK];
    let mut got = 0usize;
    let mut first = true;
    let legacy = kernel::info().legacy();
    loop {
        if crate::sys::pending_signal().is_some() || done() {
            return Ok(());
        }
        if legacy && got == 0 && !first && kernel::info().entropy_avail >= cfg.low_water as i32 {
            // The pool is full enough: let the stream wait (SSH flow control
            // holds the server back) and look again shortly.
            clock::sleep_ns(NS / 2);
            continue;
        }
        let timeout = if first {
            cfg.connect_timeout
        } else {
            cfg.stall_timeout
        };
        match sess.read(&mut chunk[got..], timeout)? {
            Read::Data(n) => {
                first = false;
                got += n;
                st.bytes_received += n as u64;
                if got == CHUNK {
                    got = 0;
                    if let Err(f) = health.check(&chunk) {
                        st.health_failures += 1;
                        chunk.fill(0);
                        return Err(health_error(s, f));
                    }
                    st.bits_credited += pool.add(&chunk, cfg.bits_per_byte)?;
                    chunk.fill(0);
                    pool.reseed(clock::now_ns())?;
                    st.reseeds = pool.totals.reseeds;
                    st.last_success = clock::wall_secs();
                }
            }
            Read::Eof => {
                let (_, err) = sess.finish();
                if first && !err.trim().is_empty() {
                    return Err(ssh::diagnose(s, &err));
                }
                return Err(Error::new(
                    Status::Unavailable,
                    msg(&[
                        "server ",
                        &s.label(),
                        " closed the stream; the last partial chunk was not credited",
                    ]),
                ));
            }
            Read::Timeout => {
                let (_, err) = sess.finish();
                if first && !err.trim().is_empty() {
                    return Err(ssh::diagnose(s, &err));
                }
                return Err(Error::new(
                    Status::Unavailable,
                    msg(&["server ", &s.label(), " stalled; session killed"]),
                ));
            }
            Read::Interrupted => {}
        }
    }
}

/// Servers in failover order, each with the time until which it is skipped.
struct Peers {
    list: Vec<(Server, u64)>,
}

impl Peers {
    /// Runs `f` on each server not in its penalty period, in order, until one
    /// succeeds. Host-key and health failures put a server in the penalty box.
    fn try_each<T>(
        &mut self,
        cfg: &Config,
        st: &mut State,
        mut f: impl FnMut(&Server, &mut State) -> Result<T>,
    ) -> Result<T> {
        let now = clock::now_ns();
        let mut last = Error::new(
            Status::Unavailable,
            "every server is skipped after recent host-key or health failures",
        );
        for (s, until) in self.list.iter_mut() {
            if *until > now {
                continue;
            }
            st.server = s.label();
            match f(s, st) {
                Ok(v) => {
                    st.last_error.clear();
                    return Ok(v);
                }
                Err(e) => {
                    if matches!(e.status, Status::HostKey | Status::Data) {
                        *until = now.saturating_add(cfg.max_backoff);
                    }
                    log::warn(&e.msg);
                    st.last_error = e.msg.clone();
                    last = e;
                    if crate::sys::pending_signal().is_some() {
                        break;
                    }
                }
            }
        }
        Err(last)
    }
}

pub fn run(a: &cli::Client) -> Result<()> {
    let cfg = config(a)?;
    crate::sys::install_signal_handlers();
    let mut pool = Pool::open(parse::duration_ns(&a.reseed_interval).ok_or_else(|| {
        Error::new(
            Status::Usage,
            "--reseed-interval must be a duration such as 60s",
        )
    })?)?;
    let mut st = State {
        pid: std::process::id(),
        ..State::default()
    };
    let mut peers = Peers {
        list: cfg.servers.iter().cloned().map(|s| (s, 0)).collect(),
    };
    if let Some(n) = a.once {
        st.mode = "once";
        let (credited, reseeded) = peers.try_each(&cfg, &mut st, |s, st| {
            topup_once(&cfg, s, &mut pool, st, n as usize)
        })?;
        let line = msg(&[
            "received ",
            Num::new(n as u64).as_str(),
            " bytes from ",
            &st.server,
            ", credited ",
            Num::new(credited).as_str(),
            " bits, reseeded ",
            if reseeded { "yes" } else { "no" },
            "\n",
        ]);
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), line.as_bytes());
        return Ok(());
    }
    daemon(&cfg, &mut peers, &mut pool, &mut st)
}

fn write_state(cfg: &Config, st: &State) {
    if let Err(e) = st.write(&cfg.status_file) {
        log::warn(&e.msg);
    }
}

fn save_seed(cfg: &Config) {
    let r = seed::check_dir_mode(&cfg.seed_dir)
        .and_then(|()| SeedDir::open(&cfg.seed_dir))
        .and_then(|d| d.save());
    match r {
        Ok(true) => log::info_parts(&["saved a creditable seed in ", &cfg.seed_dir]),
        Ok(false) => log::info_parts(&[
            "saved a seed (not creditable: the CRNG was not ready) in ",
            &cfg.seed_dir,
        ]),
        Err(e) => log::warn(&e.msg),
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
    let mut backoff = Backoff::new(NS, cfg.max_backoff);
    if !info.crng_ready {
        st.state = "seeding";
        write_state(cfg, st);
        let marker = msg(&[&cfg.runtime, "/seed-loaded"]);
        if std::fs::metadata(&marker).is_err() {
            match SeedDir::open(&cfg.seed_dir).and_then(|d| d.load(pool)) {
                Ok(l) => {
                    log::info_parts(&[
                        "loaded ",
                        Num::new(l.bytes as u64).as_str(),
                        " seed bytes, credited ",
                        Num::new(l.bits_credited).as_str(),
                        " bits",
                    ]);
                    let _ = std::fs::write(&marker, b"");
                }
                Err(e) => log::warn(&e.msg),
            }
        }
        while !kernel::crng_ready() {
            if crate::sys::pending_signal().is_some() {
                return finish(cfg, st);
            }
            let r = peers.try_each(cfg, st, |s, st| {
                stream_session(cfg, s, pool, st, &kernel::crng_ready)
            });
            write_state(cfg, st);
            if r.is_err()
                && !kernel::crng_ready()
                && !clock::sleep_unless_signalled(backoff.delay(clock::jitter()))
            {
                return finish(cfg, st);
            }
        }
        backoff.reset();
        st.crng_ready_at = clock::wall_secs();
        log::info("kernel CRNG is ready");
    }
    let saved_marker = msg(&[&cfg.runtime, "/seed-saved"]);
    let mut last_seed_save: Option<u64> = None;
    let mut failing = false;
    loop {
        if crate::sys::pending_signal().is_some() {
            return finish(cfg, st);
        }
        st.state = "fetching";
        let r = match mode {
            Mode::Stream => peers
                .try_each(cfg, st, |s, st| stream_session(cfg, s, pool, st, &|| false))
                .map(|()| 0),
            _ => peers
                .try_each(cfg, st, |s, st| topup_once(cfg, s, pool, st, cfg.get_bytes))
                .map(|(c, _)| c),
        };
        let now = clock::now_ns();
        let wait = match r {
            Ok(_) => {
                st.last_success = clock::wall_secs();
                if failing || last_seed_save.is_none() {
                    log::info_parts(&["fetching from ", &st.server, " works"]);
                }
                failing = false;
                backoff.reset();
                let first_this_boot = std::fs::metadata(&saved_marker).is_err();
                if first_this_boot
                    || last_seed_save.is_some_and(|t| now.saturating_sub(t) >= cfg.seed_interval)
                {
                    save_seed(cfg);
                    let _ = std::fs::write(&saved_marker, b"");
                    last_seed_save = Some(now);
                } else if last_seed_save.is_none() {
                    last_seed_save = Some(now);
                }
                // Interval with +-10% jitter.
                let tenth = cfg.interval / 10;
                cfg.interval - tenth
                    + (2 * tenth as u128 * clock::jitter() as u128 / u32::MAX as u128) as u64
            }
            Err(_) => {
                failing = true;
                let d = backoff.delay(clock::jitter());
                log::info_parts(&["retrying in ", Num::new(d / NS).as_str(), " s"]);
                d
            }
        };
        st.state = "idle";
        write_state(cfg, st);
        if !clock::sleep_unless_signalled(wait) {
            return finish(cfg, st);
        }
    }
}

/// On SIGTERM, SIGINT or SIGHUP: save a seed, record the state, exit 0.
fn finish(cfg: &Config, st: &mut State) -> Result<()> {
    log::info("terminating: saving a seed");
    save_seed(cfg);
    st.state = "stopped";
    write_state(cfg, st);
    Ok(())
}
