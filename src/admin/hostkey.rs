//! `entropyservice hostkey`: prints this server's host keys (Dropbear's
//! through dropbearkey, OpenSSH's .pub files) for the client's pin.

use super::{first_key_line, run_tool, MAX_PUB_FILE};
use crate::child::{find_program, SYSTEM_PATH};
use crate::cli::Hostkey;
use crate::error::{Error, Result, Status};
use crate::hostkey::{PublicKey, KEY_TYPES};
use crate::log;
use crate::text::msg;
use std::fs::File;
use std::io::{Read, Write};

const DROPBEAR_HOST_DIR: &str = "/etc/dropbear";
const OPENSSH_HOST_DIR: &str = "/etc/ssh";

/// Host key files in `dir` whose names start with `prefix` and end with
/// `suffix`. A missing directory is `Ok(None)`.
fn host_key_files(dir: &str, prefix: &str, suffix: &str) -> Result<Option<Vec<String>>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::os(Status::NoInput, &msg(&["cannot list ", dir]), e)),
    };
    let v: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| {
            n.starts_with(prefix) && n.ends_with(suffix) && n.len() > prefix.len() + suffix.len()
        })
        .map(|n| msg(&[dir.trim_end_matches('/'), "/", &n]))
        .collect();
    Ok(Some(v))
}

struct Found {
    key: PublicKey,
    sources: String,
}

fn add_found(all: &mut Vec<Found>, key: PublicKey, source: &str) {
    match all.iter_mut().find(|f| f.key == key) {
        Some(f) => {
            f.sources.push_str(", ");
            f.sources.push_str(source);
        }
        None => all.push(Found {
            key,
            sources: source.into(),
        }),
    }
}

pub fn hostkey(a: &Hostkey) -> Result<()> {
    let explicit = a.dropbear_dir.is_some() || a.openssh_dir.is_some();
    let dropbear_dir = a
        .dropbear_dir
        .as_deref()
        .or((!explicit).then_some(DROPBEAR_HOST_DIR));
    let openssh_dir = a
        .openssh_dir
        .as_deref()
        .or((!explicit).then_some(OPENSSH_HOST_DIR));
    let mut all: Vec<Found> = Vec::new();

    if let Some(dir) = dropbear_dir {
        let files = host_key_files(dir, "dropbear_", "_host_key")?;
        if files.is_none() && explicit {
            return Err(Error::new(
                Status::NoInput,
                msg(&["Dropbear host key directory ", dir, " does not exist"]),
            ));
        }
        let files = files.unwrap_or_default();
        let tool = if files.is_empty() {
            None
        } else {
            find_program("dropbearkey", SYSTEM_PATH)
        };
        if !files.is_empty() && tool.is_none() {
            log::warn_parts(&[
                "found Dropbear host keys in ",
                dir,
                " but dropbearkey is not installed to read them",
            ]);
        }
        for (f, tool) in files.iter().filter_map(|f| tool.as_deref().map(|t| (f, t))) {
            match run_tool(tool, &["-y", "-f", f]) {
                Ok(r) => match first_key_line(&r.stdout) {
                    Some((k, _)) if r.ok => add_found(&mut all, k, &msg(&["dropbear ", f])),
                    _ => log::warn_parts(&[
                        "cannot read the Dropbear host key ",
                        f,
                        ": ",
                        r.complaint(),
                    ]),
                },
                Err(e) => log::warn(&e.msg),
            }
        }
    }
    if let Some(dir) = openssh_dir {
        let files = host_key_files(dir, "ssh_host_", "_key.pub")?;
        if files.is_none() && explicit {
            return Err(Error::new(
                Status::NoInput,
                msg(&["OpenSSH host key directory ", dir, " does not exist"]),
            ));
        }
        for f in files.unwrap_or_default() {
            let mut text = String::new();
            let r = File::open(&f).and_then(|h| h.take(MAX_PUB_FILE).read_to_string(&mut text));
            match (r, first_key_line(&text)) {
                (Ok(_), Some((k, _))) => add_found(&mut all, k, &msg(&["openssh ", &f])),
                (Err(e), _) => {
                    log::warn(&Error::os(Status::NoInput, &msg(&["cannot read ", &f]), e).msg)
                }
                (Ok(_), None) => log::warn_parts(&[&f, " holds no public key line"]),
            }
        }
    }
    if all.is_empty() {
        let mut where_ = String::new();
        for (d, pat) in [
            (dropbear_dir, "/dropbear_*_host_key"),
            (openssh_dir, "/ssh_host_*_key.pub"),
        ] {
            if let Some(d) = d {
                if !where_.is_empty() {
                    where_.push_str(" or ");
                }
                where_.push_str(&msg(&[d.trim_end_matches('/'), pat]));
            }
        }
        return Err(Error::new(
            Status::NoInput,
            msg(&["no host key found in ", &where_, "; start the SSH server once so it creates its keys, or pass --dropbear-dir / --openssh-dir"]),
        ));
    }
    // The preferred type first: that is the one to pin. (parse admits only
    // KEY_TYPES, so every key is printed.)
    let mut out = String::new();
    for f in KEY_TYPES
        .iter()
        .flat_map(|t| all.iter().filter(move |f| f.key.kind == *t))
    {
        // Whatever is pasted, the whole line or the first two words, parses:
        // PublicKey::parse ignores words after the key.
        out.push_str(&msg(&[
            &f.key.line(),
            "  # ",
            &f.key.fingerprint(),
            " (",
            &f.sources,
            ")\n",
        ]));
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}
