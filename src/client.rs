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
use crate::sys::pending_signal;

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
    session_timeout: u64,
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
    if agent && crate::sys::env_bytes(c"SSH_AUTH_SOCK").is_none() {
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

/// The fields of one `--server` spec, before any file is looked at.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec<'a> {
    pub host: &'a str,
    pub port: Option<u16>,
    pub user: Option<&'a str>,
    pub key: Option<&'a str>,
    pub host_key: Option<&'a str>,
}

/// Parses `--server "host=H,port=P,user=U,key=FILE,host-key=TYPE BASE64"`
/// (pure; `make_server` then checks names, the key file and the host key).
pub fn parse_server_spec(spec: &str) -> core::result::Result<Spec<'_>, &'static str> {
    let (mut host, mut port, mut user, mut key, mut hk) = (None, None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or("expected key=value fields separated by commas")?;
        match k.trim() {
            "host" => host = Some(v.trim()),
            "port" => {
                port = Some(
                    parse::decimal(v.trim())
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0)
                        .ok_or("port must be 1-65535")?,
                )
            }
            "user" => user = Some(v.trim()),
            "key" => key = Some(v.trim()),
            "host-key" => hk = Some(v.trim()),
            _ => return Err("unknown field; use host, port, user, key, host-key"),
        }
    }
    Ok(Spec {
        host: host.ok_or("host= is missing")?,
        port,
        user,
        key,
        host_key: hk,
    })
}

fn server_spec(spec: &str, agent: bool) -> Result<Server> {
    let s = parse_server_spec(spec)
        .map_err(|why| Error::new(Status::Usage, msg(&["--server ", spec, ": ", why])))?;
    make_server(s.host, s.port, s.user, s.key, s.host_key, agent)
}

fn config(a: &cli::Client) -> Result<Config> {
    // Zero would mean sessions back to back, or no port at all.
    if parse::duration_ns(&a.interval) == Some(0) {
        return Err(Error::new(
            Status::Usage,
            "--interval 0 would open SSH sessions back to back; give a time such as 10m",
        ));
    }
    if a.port == Some(0) {
        return Err(Error::new(
            Status::Usage,
            "-p 0: the port must be 1 to 65535",
        ));
    }
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
    let program = ssh::pick_program(a.ssh.as_deref(), &servers)?;
    let status_file = a
        .status_file
        .clone()
        .unwrap_or_else(status::default_status_file);
    let runtime = match &a.runtime_dir {
        Some(d) => d.clone(),
        None => match status_file.rsplit_once('/') {
            Some(("", _)) => "/".into(),
            Some((d, _)) => d.into(),
            None => ".".into(),
        },
    };
    ssh::check_runtime_dir(&runtime)?;
    let interval = duration("interval", &a.interval)?;
    Ok(Config {
        program,
        servers,
        bits_per_byte: a.credit_bits_per_byte,
        mode,
        interval,
        get_bytes: a.get_bytes as usize,
        connect_timeout: duration("connect-timeout", &a.connect_timeout)?,
        stall_timeout: duration("stall-timeout", &a.stall_timeout)?,
        session_timeout: session_timeout(&a.session_timeout)?,
        max_backoff: duration("max-backoff", &a.max_backoff)?,
        low_water: a.low_water,
        seed_dir: a
            .seed_dir
            .clone()
            .unwrap_or_else(|| seed::DEFAULT_DIR.into()),
        seed_interval: duration("seed-interval", &a.seed_interval)?,
        status_file,
        runtime,
    })
}

/// Reads exactly `buf.len()` bytes from a new session running `command`.
fn fetch_exact(
    cfg: &Config,
    s: &Server,
    st: &mut State,
    command: &str,
    buf: &mut [u8],
) -> Result<()> {
    status::ensure_runtime_dir(&cfg.runtime)?;
    let mut sess = Session::start(
        &cfg.program,
        s,
        command,
        &cfg.runtime,
        cfg.connect_timeout / NS,
    )?;
    st.sessions += 1;
    let end = clock::now_ns().saturating_add(cfg.session_timeout);
    let mut got = 0;
    while got < buf.len() {
        let timeout = if got == 0 {
            cfg.connect_timeout
        } else {
            cfg.stall_timeout
        };
        let timeout = cut(timeout, end, clock::now_ns());
        match sess.read(&mut buf[got..], timeout)? {
            Read::Data(n) => got += n,
            Read::Eof => {
                if let Some(e) = ssh_failure(sess, s, got == 0, EOF) {
                    return Err(e);
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
                if let Some(e) = ssh_failure(sess, s, got == 0, !EOF) {
                    return Err(e);
                }
                let what = if clock::now_ns() >= end {
                    " did not finish within --session-timeout; session killed"
                } else if got == 0 {
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
                if pending_signal().is_some() {
                    return Err(Error::new(Status::Unavailable, "interrupted by a signal"));
                }
            }
        }
    }
    // A `get N` server exits by itself now: wait (one blocking poll, no
    // polling loop) for the child to close its stdout, then reap it. A
    // legacy `cat` server streams on; finish() kills it.
    let mut extra = [0u8; 64];
    let _ = sess.read(&mut extra, cfg.stall_timeout.min(2 * NS));
    extra.fill(0);
    let _ = sess.finish();
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
    let n = n.min(MAX_GET);
    let cmd = msg(&["get ", Num::new(n as u64).as_str()]);
    let r = fetch_exact(cfg, s, st, &cmd, &mut buf[..n]);
    if let Err(e) = r {
        buf.fill(0);
        return Err(e);
    }
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
/// says stop, a signal arrives, or the session fails. `after_credit` runs
/// after each credited chunk (the seed schedule).
fn stream_session(
    cfg: &Config,
    s: &Server,
    pool: &mut Pool,
    st: &mut State,
    done: &dyn Fn() -> bool,
    after_credit: &mut dyn FnMut(&mut State),
) -> Result<()> {
    status::ensure_runtime_dir(&cfg.runtime)?;
    let mut sess = Session::start(
        &cfg.program,
        s,
        "cat /dev/random",
        &cfg.runtime,
        cfg.connect_timeout / NS,
    )?;
    st.sessions += 1;
    let mut health = Health::new();
    let mut chunk = [0u8; CHUNK];
    let mut got = 0usize;
    let mut first = true;
    let legacy = kernel::info().legacy();
    let mut chunk_end = 0;
    loop {
        if pending_signal().is_some() || done() {
            chunk.fill(0);
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
        // Minimum progress: each chunk within --session-timeout.
        if got == 0 {
            chunk_end = clock::now_ns().saturating_add(cfg.session_timeout);
        }
        let timeout = cut(timeout, chunk_end, clock::now_ns());
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
                    let r = pool.add(&chunk, cfg.bits_per_byte);
                    chunk.fill(0);
                    st.bits_credited += r?;
                    pool.reseed(clock::now_ns())?;
                    st.reseeds = pool.totals.reseeds;
                    st.last_success = clock::wall_secs();
                    after_credit(st);
                }
            }
            end @ (Read::Eof | Read::Timeout) => {
                chunk.fill(0);
                if let Some(e) = ssh_failure(sess, s, first, end == Read::Eof) {
                    return Err(e);
                }
                let what = if end == Read::Eof {
                    " closed the stream; the last partial chunk was not credited"
                } else if clock::now_ns() >= chunk_end {
                    " sent less than 512 bytes within --session-timeout; session killed"
                } else {
                    " stalled; session killed"
                };
                return Err(Error::new(
                    Status::Unavailable,
                    msg(&["server ", &s.label(), what]),
                ));
            }
            Read::Interrupted => {}
        }
    }
}

/// A read's wait: `per_read`, cut to what is left until `end` (ns).
fn cut(per_read: u64, end: u64, now: u64) -> u64 {
    per_read.min(end.saturating_sub(now))
}

/// `--session-timeout`: a duration, not 0.
fn session_timeout(v: &str) -> Result<u64> {
    match duration("session-timeout", v)? {
        0 => Err(Error::new(
            Status::Usage,
            "--session-timeout 0 would end every session at once; give a time such as 2m",
        )),
        t => Ok(t),
    }
}

/// `ssh_failure`'s `eof`: the child closed its stdout (not a timeout).
const EOF: bool = true;

/// Ends a session that hit EOF or a timeout. If nothing came yet and the
/// SSH client said why (host key, auth, connection), that is the error. A
/// client that closed its output unasked, with nothing on stdout or stderr
/// and a failed exit, never reached the server (killed, or it died before
/// or right after exec): that is not the server's fault.
fn ssh_failure(sess: Session, s: &Server, nothing_yet: bool, eof: bool) -> Option<Error> {
    let (clean, err) = sess.finish();
    if !nothing_yet {
        return None;
    }
    if !err.trim().is_empty() {
        return Some(ssh::diagnose(s, &err));
    }
    (eof && !clean).then(|| {
        Error::new(
            Status::Unavailable,
            msg(&[
                "the SSH client for ",
                &s.label(),
                " failed before any output and without a message (killed, or it cannot run here); nothing credited",
            ]),
        )
    })
}

/// Servers in failover order, each with the time until which it is skipped.
struct Peers {
    list: Vec<(Server, u64)>,
    /// Penalty for a server that failed a host-key check or health test.
    penalty: u64,
    last_failed: bool,
    /// The caller prints the final error itself: do not log it too.
    quiet_last: bool,
}

impl Peers {
    fn new(servers: &[Server], penalty: u64) -> Peers {
        Peers {
            list: servers.iter().cloned().map(|s| (s, 0)).collect(),
            penalty,
            last_failed: false,
            quiet_last: false,
        }
    }

    /// Runs `f` on each server not in its penalty period, in order, until one
    /// succeeds. Host-key and health failures put a server in the penalty box.
    fn try_each<T>(
        &mut self,
        now: u64,
        st: &mut State,
        mut f: impl FnMut(&Server, &mut State) -> Result<T>,
    ) -> Result<T> {
        let mut last = Error::new(
            Status::Unavailable,
            "every server is skipped after recent host-key or health failures",
        );
        // A failure is logged when the next server is tried, or at the end
        // unless the caller reports the returned error itself (`--once`),
        // so that one failure makes one line.
        let mut unlogged: Option<String> = None;
        for (s, until) in self.list.iter_mut() {
            if *until > now {
                continue;
            }
            if let Some(line) = unlogged.take() {
                log::warn(&line);
            }
            if self.last_failed {
                st.reconnects += 1;
            }
            st.server = s.label();
            match f(s, st) {
                Ok(v) => {
                    self.last_failed = false;
                    st.last_error.clear();
                    return Ok(v);
                }
                Err(e) => {
                    self.last_failed = true;
                    if pending_signal().is_some() {
                        return Err(e);
                    }
                    unlogged = Some(
                        if matches!(e.status, Status::HostKey | Status::Data | Status::Config) {
                            *until = now.saturating_add(self.penalty);
                            msg(&[
                                &e.msg,
                                "; skipping this server for ",
                                Num::new(self.penalty / NS).as_str(),
                                " s",
                            ])
                        } else {
                            e.msg.clone()
                        },
                    );
                    st.last_error = e.msg.clone();
                    last = e;
                }
            }
        }
        if let Some(line) = unlogged.filter(|_| !self.quiet_last) {
            log::warn(&line);
        }
        Err(last)
    }
}

/// When to refresh the seed file: after the first successful pull of each
/// boot, then at most every `interval` (plus at shutdown), so a top-up never
/// costs a flash write.
#[derive(Debug)]
struct SeedSchedule {
    interval: u64,
    /// A seed was already refreshed this boot (by an earlier client run).
    saved_this_boot: bool,
    last: Option<u64>,
}

impl SeedSchedule {
    /// Whether a successful pull at `now` should refresh the seed file.
    fn due(&mut self, now: u64) -> bool {
        let due = match self.last {
            None => !self.saved_this_boot,
            Some(t) => now.saturating_sub(t) >= self.interval,
        };
        if due || self.last.is_none() {
            self.last = Some(now);
        }
        due
    }
}

/// Nanoseconds as seconds with one decimal ("0.7", "12.0"), for log lines.
struct Seconds {
    buf: heapless::String<24>,
}

impl Seconds {
    fn new(ns: u64) -> Seconds {
        let mut buf = heapless::String::new();
        let _ = buf.push_str(Num::new(ns / NS).as_str());
        let _ = buf.push('.');
        let _ = buf.push_str(Num::new(ns % NS / (NS / 10)).as_str());
        Seconds { buf }
    }

    fn as_str(&self) -> &str {
        &self.buf
    }
}

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
    daemon(&cfg, &mut peers, &mut pool, &mut st)
}

fn write_state(cfg: &Config, st: &State) {
    if let Err(e) = st.write(&cfg.status_file) {
        log::warn(&e.msg);
    }
}

fn save_seed(cfg: &Config, st: &mut State) {
    let r = seed::check_dir_mode(&cfg.seed_dir)
        .and_then(|()| SeedDir::open(&cfg.seed_dir))
        .and_then(|d| d.save());
    match r {
        Ok(creditable) => {
            st.seed_saved_at = clock::wall_secs();
            log::info_parts(&[
                if creditable {
                    "saved a creditable seed in "
                } else {
                    "saved a seed (not creditable: the CRNG is not ready) in "
                },
                &cfg.seed_dir,
            ]);
        }
        Err(e) => log::warn(&e.msg),
    }
}

/// The per-boot marker: the boot id of the last boot in which a seed was
/// refreshed after a successful pull.
fn boot_marker(cfg: &Config) -> String {
    msg(&[&cfg.runtime, "/seed-saved"])
}

fn saved_this_boot(cfg: &Config) -> bool {
    match (
        kernel::boot_id(),
        crate::sys::read_to_string(&boot_marker(cfg)),
    ) {
        (Some(id), Ok(text)) => text.trim() == id.as_str(),
        _ => false,
    }
}

fn mark_saved_this_boot(cfg: &Config) {
    if let Some(id) = kernel::boot_id() {
        let _ = std::fs::write(boot_marker(cfg), id.as_bytes());
    }
}

/// Runs the schedule after a successful pull; saves a seed when due.
fn after_pull(cfg: &Config, seeds: &mut SeedSchedule, st: &mut State) {
    if seeds.due(clock::now_ns()) {
        save_seed(cfg, st);
        if !seeds.saved_this_boot {
            seeds.saved_this_boot = true;
            mark_saved_this_boot(cfg);
        }
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
        st.crng_ready_at = clock::wall_secs();
        log::info("kernel CRNG is ready");
    }
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
                    st.last_success = clock::wall_secs();
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
    fn seed_schedule_first_pull_then_interval() {
        let mut s = SeedSchedule {
            interval: 100,
            saved_this_boot: false,
            last: None,
        };
        assert!(s.due(5), "first pull of the boot");
        assert!(!s.due(50) && !s.due(104));
        assert!(s.due(105));
        assert!(!s.due(106));
        // A restarted client in the same boot waits a full interval.
        let mut s = SeedSchedule {
            interval: 100,
            saved_this_boot: true,
            last: None,
        };
        assert!(!s.due(5) && !s.due(104));
        assert!(s.due(105));
    }

    #[test]
    fn seconds_have_one_decimal() {
        assert_eq!(Seconds::new(0).as_str(), "0.0");
        assert_eq!(Seconds::new(734_000_000).as_str(), "0.7");
        assert_eq!(Seconds::new(600 * NS + NS / 2).as_str(), "600.5");
    }

    #[test]
    fn session_deadline_cuts_every_wait() {
        // A fake clock: a server that sends a byte just before each stall
        // timeout gets shorter and shorter waits, then none.
        let s = NS;
        let end = 100 * s + 120 * s;
        assert_eq!(cut(60 * s, end, 100 * s), 60 * s);
        assert_eq!(cut(60 * s, end, 159 * s), 60 * s);
        assert_eq!(cut(60 * s, end, 218 * s), 2 * s);
        assert_eq!(cut(60 * s, end, 220 * s), 0);
        assert_eq!(cut(60 * s, end, 999 * s), 0);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        assert_eq!(jittered(1000, 0), 900);
        assert_eq!(jittered(1000, u32::MAX), 1100);
        assert_eq!(jittered(1000, u32::MAX / 2), 999);
    }
}
