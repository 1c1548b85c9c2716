//! The client's command line, checked: servers (each with its pinned host
//! key and key file), durations, mode, and where its files go.

use super::MAX_GET;
use crate::cli;
use crate::error::{Error, Result, Status};
use crate::hostkey::PublicKey;
use crate::parse::{self, parse_server_spec};
use crate::seed;
use crate::ssh::{self, Program, Server};
use crate::status;
use crate::text::msg;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Auto,
    Topup,
    Stream,
}

pub(super) struct Config {
    pub(super) program: Program,
    pub(super) servers: Vec<Server>,
    pub(super) bits_per_byte: u32,
    pub(super) mode: Mode,
    pub(super) interval: u64,
    pub(super) get_bytes: usize,
    pub(super) connect_timeout: u64,
    pub(super) stall_timeout: u64,
    pub(super) session_timeout: u64,
    pub(super) max_backoff: u64,
    pub(super) low_water: u32,
    pub(super) seed_dir: String,
    pub(super) seed_interval: u64,
    pub(super) status_file: String,
    pub(super) runtime: String,
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

fn server_spec(spec: &str, agent: bool) -> Result<Server> {
    let s = parse_server_spec(spec)
        .map_err(|why| Error::new(Status::Usage, msg(&["--server ", spec, ": ", why])))?;
    make_server(s.host, s.port, s.user, s.key, s.host_key, agent)
}

pub(super) fn config(a: &cli::Client) -> Result<Config> {
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

/// A configuration for in-process tests: files under `dir`, servers
/// `a.example` and `b.example` (a made-up pinned key), the command's
/// defaults otherwise (--connect-timeout 30s, --stall-timeout 60s,
/// --session-timeout 2m, --interval 10m, --max-backoff 10m, --get-bytes 64,
/// 2 bits per byte, --seed-interval 1d).
#[cfg(test)]
pub(super) fn for_tests(dir: &str) -> Config {
    let key = PublicKey::parse(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Qta2V5LWZvci1vcGVud3J0LXRlc3RzLW9ubHkh",
    )
    .unwrap();
    let server = |host: &str| Server {
        host: host.into(),
        port: 22,
        user: "root".into(),
        key: None,
        host_key: key.clone(),
        agent: false,
    };
    Config {
        program: Program {
            path: "/nonexistent/dbclient".into(),
            flavor: ssh::Flavor::Dropbear,
        },
        servers: vec![server("a.example"), server("b.example")],
        bits_per_byte: 2,
        mode: Mode::Auto,
        interval: 600 * crate::rate::NS,
        get_bytes: 64,
        connect_timeout: 30 * crate::rate::NS,
        stall_timeout: 60 * crate::rate::NS,
        session_timeout: 120 * crate::rate::NS,
        max_backoff: 600 * crate::rate::NS,
        low_water: 2048,
        seed_dir: msg(&[dir, "/seed"]),
        seed_interval: 86400 * crate::rate::NS,
        status_file: msg(&[dir, "/status"]),
        runtime: msg(&[dir, "/run"]),
    }
}
