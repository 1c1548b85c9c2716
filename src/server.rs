//! `entropyservice server`: the forced command. Data flow:
//! request check -> peer check -> session slots -> source -> rate -> stdout.
//!
//! Guarantees: a refused session writes nothing to stdout; the client's
//! words are only ever parsed, never run; a client hang-up ends the session
//! with status 0.

use crate::cli;
use crate::clock;
use crate::error::{msg, Error, Result, Status};
use crate::limits;
use crate::log::Num;
use crate::parse::{self, Request};
use crate::rate::{Bucket, NS};
use crate::source::Source;
use std::io::Write;

const BUF: usize = 16 * 1024;

struct Audit<'a> {
    client: &'a str,
    peer: String,
    request: String,
    file: Option<std::fs::File>,
}

impl Audit<'_> {
    fn line(&mut self, parts: &[&str]) {
        let mut s = msg(&[
            "client=",
            self.client,
            " peer=",
            &self.peer,
            " request=\"",
            &self.request,
            "\"",
        ]);
        for p in parts {
            s.push_str(p);
        }
        crate::sys::syslog(libc::LOG_INFO, &s);
        if let Some(f) = self.file.as_mut() {
            s.push('\n');
            let _ = f.write_all(s.as_bytes());
        }
    }
}

/// Printable form of the client's request for logs: control characters
/// and quotes replaced, bounded length.
fn printable(s: &str) -> String {
    s.chars()
        .take(parse::MAX_REQUEST)
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

pub fn run(a: &cli::Server) -> Result<()> {
    crate::sys::syslog_open(c"entropyservice");
    if !parse::is_safe_name(&a.client) {
        return Err(Error::new(
            Status::Usage,
            "--client must be 1-64 of letters, digits, '.', '_', '-'",
        ));
    }
    let max_time = parse::duration_ns(&a.max_time).ok_or_else(|| {
        Error::new(
            Status::Usage,
            "--max-time must be a duration such as 30s, 10m or 1h",
        )
    })?;
    let allow = match &a.allow_from {
        Some(s) => Some(parse::cidr_list(s).ok_or_else(|| {
            Error::new(
                Status::Usage,
                msg(&[
                    "--allow-from ",
                    s,
                    " is not a comma-separated list of CIDRs such as 192.0.2.0/24,2001:db8::/32",
                ]),
            )
        })?),
        None => None,
    };
    let raw_request = std::env::var("SSH_ORIGINAL_COMMAND").unwrap_or_default();
    let conn = std::env::var("SSH_CONNECTION")
        .or_else(|_| std::env::var("SSH_CLIENT"))
        .ok();
    let peer = conn.as_deref().and_then(parse::peer_address);
    let mut audit = Audit {
        client: &a.client,
        peer: match (peer, &conn) {
            (Some(p), _) => {
                let mut s = String::new();
                crate::error::push_display(&mut s, p);
                s
            }
            (None, Some(_)) => "malformed".into(),
            (None, None) => "local".into(),
        },
        request: printable(&raw_request),
        file: a.audit_file.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .ok()
        }),
    };
    let result = session(
        a,
        &raw_request,
        peer,
        conn.is_some(),
        allow.as_deref(),
        max_time,
        &mut audit,
    );
    match &result {
        Ok(_) => {}
        Err(e) => audit.line(&[
            " refused status=",
            Num::new(e.exit_code() as u64).as_str(),
            " reason=\"",
            &e.msg,
            "\"",
        ]),
    }
    result.map(|_| ())
}

fn session(
    a: &cli::Server,
    raw_request: &str,
    peer: Option<core::net::IpAddr>,
    have_conn: bool,
    allow: Option<&[parse::Cidr]>,
    max_time: u64,
    audit: &mut Audit<'_>,
) -> Result<()> {
    let request = parse::request(raw_request, a.max_bytes)
        .map_err(|e| Error::new(Status::Data, msg(&["bad request: ", e.as_str()])))?;
    if let Some(allow) = allow {
        let Some(p) = peer else {
            let why = if have_conn {
                "SSH_CONNECTION is malformed"
            } else {
                "SSH_CONNECTION and SSH_CLIENT are not set"
            };
            return Err(Error::new(
                Status::NoPerm,
                msg(&[
                    "peer not allowed: ",
                    why,
                    "; --allow-from needs the peer address from sshd or dropbear",
                ]),
            ));
        };
        if !allow.iter().any(|c| c.contains(p)) {
            return Err(Error::new(
                Status::NoPerm,
                msg(&[
                    "peer ",
                    &audit.peer,
                    " is not allowed by --allow-from for client ",
                    audit.client,
                ]),
            ));
        }
    }
    let lock_dir = a.lock_dir.clone().unwrap_or_else(limits::default_lock_dir);
    let _client_slot = if a.max_sessions > 0 {
        let dir = msg(&[&lock_dir, "/client-", &a.client]);
        limits::ensure_private_dir(&lock_dir)?;
        Some(limits::acquire(&dir, a.max_sessions)?.ok_or_else(|| {
            Error::new(
                Status::TempFail,
                msg(&[
                    "session cap reached: client ",
                    &a.client,
                    " already has ",
                    Num::new(a.max_sessions as u64).as_str(),
                    " sessions; try again later",
                ]),
            )
        })?)
    } else {
        None
    };
    let all_dir = msg(&[&lock_dir, "/all"]);
    let _total_slot = if a.max_total_sessions > 0 || a.total_rate > 0 {
        limits::ensure_private_dir(&lock_dir)?;
        let cap = if a.max_total_sessions > 0 {
            a.max_total_sessions
        } else {
            limits::UNCAPPED_SLOTS
        };
        Some(limits::acquire(&all_dir, cap)?.ok_or_else(|| {
            Error::new(
                Status::TempFail,
                msg(&[
                    "server session cap reached: ",
                    Num::new(cap as u64).as_str(),
                    " sessions in total; try again later",
                ]),
            )
        })?)
    } else {
        None
    };
    let mut source = Source::open(&a.source, clock::now_ns())?;
    let limit = match request {
        Request::Get(n) => n,
        Request::Stream => a.max_bytes,
    };
    audit.line(&[" start source=", source.describe()]);
    let start = clock::now_ns();
    let (sent, why) = stream(a, &mut source, limit, start, max_time, &all_dir);
    let dur_ms = clock::now_ns().saturating_sub(start) / 1_000_000;
    let (why_str, res) = match why {
        End::Done => ("done", Ok(())),
        End::HungUp => ("client hung up", Ok(())),
        End::MaxBytes => ("max-bytes reached", Ok(())),
        End::MaxTime => ("max-time reached", Ok(())),
        End::Signal => ("signal", Ok(())),
        End::Failed(e) => ("error", Err(e)),
    };
    if let Some(d) = &source.dropped {
        audit.line(&[" source-health \"", d, "\""]);
    }
    audit.line(&[
        " end bytes=",
        Num::new(sent).as_str(),
        " duration_ms=",
        Num::new(dur_ms).as_str(),
        " reason=\"",
        why_str,
        "\"",
    ]);
    res
}

enum End {
    Done,
    HungUp,
    MaxBytes,
    MaxTime,
    Signal,
    Failed(Error),
}

fn stream(
    a: &cli::Server,
    source: &mut Source,
    limit: u64,
    start: u64,
    max_time: u64,
    all_dir: &str,
) -> (u64, End) {
    let mut buf = [0u8; BUF];
    let burst = a.burst.unwrap_or((a.rate / 4).max(32)).clamp(1, BUF as u64);
    let mut bucket = Bucket::new(a.rate, burst, start);
    let mut out = std::io::stdout().lock();
    let mut sent = 0u64;
    let mut next_eval = start;
    let legacy_reserve = a.reserve_bits > 0 && crate::kernel::info().legacy();
    loop {
        if crate::sys::pending_signal().is_some() {
            return (sent, End::Signal);
        }
        let now = clock::now_ns();
        if now.saturating_sub(start) >= max_time {
            return (sent, End::MaxTime);
        }
        if sent >= limit {
            return (
                sent,
                if a.max_bytes == limit && limit > 0 {
                    End::MaxBytes
                } else {
                    End::Done
                },
            );
        }
        if now >= next_eval {
            next_eval = now + NS;
            if a.total_rate > 0 {
                let live = limits::count_live(all_dir).max(1) as u64;
                let share = a.total_rate / live;
                let rate = if a.rate == 0 {
                    share
                } else {
                    a.rate.min(share)
                };
                bucket.set_rate(rate.max(1), now);
            }
            if legacy_reserve && crate::kernel::info().entropy_avail < a.reserve_bits as i32 {
                clock::sleep_ns(NS / 4);
                continue;
            }
        }
        let want = (limit - sent).min(BUF as u64).min(if bucket.rate() == 0 {
            BUF as u64
        } else {
            bucket.burst()
        });
        let wait = bucket.wait_ns(want, now);
        if wait > 0 {
            clock::sleep_ns(wait.min(next_eval.saturating_sub(now)).max(1));
            continue;
        }
        let n = bucket.take(want, now) as usize;
        if let Err(e) = source.fill(&mut buf[..n], now) {
            return (sent, End::Failed(e));
        }
        let w = out.write_all(&buf[..n]).and_then(|()| out.flush());
        buf[..n].fill(0);
        match w {
            Ok(()) => sent += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return (sent, End::HungUp),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return (sent, End::Signal),
            Err(e) => {
                return (
                    sent,
                    End::Failed(Error::os(Status::Io, "writing to the client failed", e)),
                )
            }
        }
    }
}
