//! The client's state file on tmpfs (`key: value` lines), and the `status`
//! command that prints it with the kernel's view, for people or as JSON.

use crate::error::{msg, Error, Result, Status};
use crate::kernel;
use crate::log::Num;
use std::io::Write;

/// Where runtime files go: /run/entropyservice (or /var/run) as root,
/// /tmp/entropyservice-UID otherwise.
pub fn runtime_dir() -> String {
    crate::limits::default_lock_dir()
}

pub fn default_status_file() -> String {
    msg(&[&runtime_dir(), "/status"])
}

/// What the client reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub pid: u32,
    pub mode: &'static str,
    pub state: &'static str,
    pub server: String,
    pub last_success: u64,
    pub bytes_received: u64,
    pub bits_credited: u64,
    pub health_failures: u64,
    pub reconnects: u64,
    pub reseeds: u64,
    pub crng_ready_at: u64,
    pub last_error: String,
}

/// Field names, in file order.
pub const FIELDS: [&str; 12] = [
    "pid",
    "mode",
    "state",
    "server",
    "last_success",
    "bytes_received",
    "bits_credited",
    "health_failures",
    "reconnects",
    "reseeds",
    "crng_ready_at",
    "last_error",
];

impl State {
    fn values(&self) -> [String; 12] {
        let n = |v: u64| Num::new(v).as_str().to_string();
        [
            n(self.pid as u64),
            self.mode.into(),
            self.state.into(),
            self.server.clone(),
            n(self.last_success),
            n(self.bytes_received),
            n(self.bits_credited),
            n(self.health_failures),
            n(self.reconnects),
            n(self.reseeds),
            n(self.crng_ready_at),
            self.last_error.replace('\n', " "),
        ]
    }

    /// Replaces the status file atomically (temp file + rename; on tmpfs,
    /// so no fsync and no flash wear).
    pub fn write(&self, path: &str) -> Result<()> {
        let mut s = String::with_capacity(512);
        for (k, v) in FIELDS.iter().zip(self.values()) {
            s.push_str(k);
            s.push_str(": ");
            s.push_str(&v);
            s.push('\n');
        }
        if let Some(dir) = std::path::Path::new(path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = msg(&[path, ".tmp"]);
        let r = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(s.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, path));
        r.map_err(|e| {
            Error::os(
                Status::CantCreate,
                &msg(&["cannot write status file ", path]),
                e,
            )
        })
    }
}

/// Parses a status file into (key, value) pairs, keeping only known keys,
/// each at most once, values at most 512 bytes.
pub fn parse(text: &str) -> Vec<(&'static str, &str)> {
    let mut out: Vec<(&'static str, &str)> = Vec::new();
    for line in text.lines().take(64) {
        let Some((k, v)) = line.split_once(": ") else {
            continue;
        };
        if let Some(key) = FIELDS.iter().find(|f| **f == k) {
            if v.len() <= 512 && !out.iter().any(|(o, _)| o == key) {
                out.push((key, v));
            }
        }
    }
    out
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                let b = c as u8;
                out.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
                out.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn is_number_field(k: &str) -> bool {
    !matches!(k, "mode" | "state" | "server" | "last_error")
}

/// Renders the status for `entropyservice status`.
pub fn render(file_text: Option<&str>, k: kernel::Info, json: bool) -> String {
    let pairs = file_text.map(parse).unwrap_or_default();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let kernel_pairs = [
        ("crng_ready", yes_no(k.crng_ready).to_string()),
        ("entropy_avail", k.entropy_avail.to_string()),
        ("poolsize", Num::new(k.poolsize as u64).as_str().to_string()),
    ];
    let mut out = String::with_capacity(512);
    if json {
        out.push_str("{\"kernel\":{");
        for (i, (key, v)) in kernel_pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_str(&mut out, key);
            out.push(':');
            if *key == "crng_ready" {
                out.push_str(if k.crng_ready { "true" } else { "false" });
            } else {
                out.push_str(v);
            }
        }
        out.push_str("},\"client\":");
        if file_text.is_none() {
            out.push_str("null");
        } else {
            out.push('{');
            for (i, (key, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_str(&mut out, key);
                out.push(':');
                if is_number_field(key) && crate::parse::decimal(v).is_some() {
                    out.push_str(v);
                } else {
                    json_str(&mut out, v);
                }
            }
            out.push('}');
        }
        out.push_str("}\n");
    } else {
        for (key, v) in kernel_pairs {
            out.push_str(key);
            out.push_str(": ");
            out.push_str(&v);
            out.push('\n');
        }
        match file_text {
            None => out.push_str("client: not running (no status file)\n"),
            Some(_) => {
                for (key, v) in pairs {
                    out.push_str(key);
                    out.push_str(": ");
                    out.push_str(v);
                    out.push('\n');
                }
            }
        }
    }
    out
}

pub fn run(a: &crate::cli::Status) -> Result<()> {
    let path = a.status_file.clone().unwrap_or_else(default_status_file);
    let text = std::fs::read_to_string(&path).ok();
    let out = render(text.as_deref(), kernel::info(), a.json);
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_json() {
        let st = State {
            pid: 7,
            mode: "topup",
            state: "idle",
            server: "u@h:22".into(),
            bits_credited: 128,
            last_error: "a \"quoted\"\nline".into(),
            ..State::default()
        };
        let dir = std::env::temp_dir().join(format!("es-status-{}", std::process::id()));
        let path = dir.join("status");
        st.write(path.to_str().unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let p = parse(&text);
        assert!(p.contains(&("bits_credited", "128")));
        assert!(p.contains(&("last_error", "a \"quoted\" line")));
        let k = kernel::Info {
            poolsize: 256,
            entropy_avail: 256,
            crng_ready: true,
        };
        let j = render(Some(&text), k, true);
        assert!(j.starts_with("{\"kernel\":{\"crng_ready\":true,\"entropy_avail\":256,\"poolsize\":256},\"client\":{\"pid\":7,"), "{j}");
        assert!(
            j.contains("\"last_error\":\"a \\\"quoted\\\" line\""),
            "{j}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn hostile_status_file() {
        let text = "pid: 1\npid: 2\nbogus: x\nmode: \u{1}\"\n";
        let p = parse(text);
        assert_eq!(p, vec![("pid", "1"), ("mode", "\u{1}\"")]);
        let j = render(Some(text), kernel::Info::default(), true);
        assert!(j.contains("\"mode\":\"\\u0001\\\"\""), "{j}");
    }
}
