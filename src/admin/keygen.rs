//! `entropyservice keygen`: makes the client's key with dropbearkey or
//! ssh-keygen and prints the line to authorize on the server. Never
//! replaces an existing key file.

use super::{first_key_line, fsync_dir, parent_dir, remove_if_present, run_tool};
use crate::child::{find_program, is_executable, SYSTEM_PATH};
use crate::cli::Keygen;
use crate::error::{Error, Result, Status};
use crate::hostkey::PublicKey;
use crate::log;
use crate::parse;
use crate::text::{msg, Num};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

pub const DEFAULT_KEY: &str = "/etc/entropyservice/id_client";

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyTool {
    Dropbear,
    OpenSsh,
}

fn keygen_tool(choice: Option<&str>) -> Result<(String, KeyTool)> {
    let flavor_of = |name: &str| {
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.contains("dropbearkey") {
            Some(KeyTool::Dropbear)
        } else if base.contains("ssh-keygen") {
            Some(KeyTool::OpenSsh)
        } else {
            None
        }
    };
    match choice {
        None => find_program("dropbearkey", SYSTEM_PATH)
            .map(|p| (p, KeyTool::Dropbear))
            .or_else(|| find_program("ssh-keygen", SYSTEM_PATH).map(|p| (p, KeyTool::OpenSsh)))
            .ok_or_else(|| Error::new(Status::Unavailable, "neither dropbearkey nor ssh-keygen is installed; install dropbear or openssh-client")),
        Some(c) => {
            let flavor = flavor_of(c).ok_or_else(|| Error::new(Status::Usage, "--tool must be dropbearkey or ssh-keygen, or a path to one of them"))?;
            let path = if c.contains('/') {
                is_executable(c).then(|| c.to_string())
            } else {
                find_program(c, SYSTEM_PATH)
            };
            let path = path.ok_or_else(|| Error::new(Status::Unavailable, msg(&["key tool ", c, " is not installed; install it or choose the other with --tool"])))?;
            Ok((path, flavor))
        }
    }
}

/// Runs the tool to make a `kind` key at `file` (which must not exist).
fn generate(tool: &str, flavor: KeyTool, kind: &str, file: &str, comment: &str) -> Result<()> {
    let size: &[&str] = if kind == "rsa" {
        if flavor == KeyTool::Dropbear {
            &["-s", "2048"]
        } else {
            &["-b", "2048"]
        }
    } else {
        &[]
    };
    let mut args: Vec<&str> = match flavor {
        KeyTool::Dropbear => vec!["-t", kind, "-f", file],
        KeyTool::OpenSsh => vec!["-q", "-t", kind, "-N", "", "-C", comment, "-f", file],
    };
    args.extend_from_slice(size);
    let r = run_tool(tool, &args)?;
    if r.ok && std::fs::metadata(file).is_ok() {
        return Ok(());
    }
    Err(Error::new(
        Status::CantCreate,
        msg(&[tool, " could not make a ", kind, " key: ", r.complaint()]),
    ))
}

/// The public key line (with comment) of the private key `file`.
fn public_of(tool: &str, flavor: KeyTool, file: &str) -> Result<String> {
    let text = match flavor {
        KeyTool::Dropbear => run_tool(tool, &["-y", "-f", file])?.stdout,
        KeyTool::OpenSsh => {
            let pub_file = msg(&[file, ".pub"]);
            std::fs::read_to_string(&pub_file)
                .map_err(|e| Error::os(Status::CantCreate, &msg(&["cannot read ", &pub_file]), e))?
        }
    };
    first_key_line(&text)
        .map(|(_, l)| l.to_string())
        .ok_or_else(|| {
            Error::new(
                Status::CantCreate,
                msg(&[tool, " made a key but printed no public key line for it"]),
            )
        })
}

pub fn keygen(a: &Keygen) -> Result<()> {
    let out = a.out.as_deref().unwrap_or(DEFAULT_KEY);
    if out.is_empty() || out.ends_with('/') {
        return Err(Error::new(Status::Usage, "--out must name a file"));
    }
    let kinds: &[&str] = match a.kind.as_deref() {
        None => &["ed25519", "rsa"],
        Some("ed25519") => &["ed25519"],
        Some("rsa") => &["rsa"],
        Some(_) => return Err(Error::new(Status::Usage, "--type must be ed25519 or rsa")),
    };
    let name = match &a.client {
        Some(c) if parse::is_safe_name(c) => c.clone(),
        Some(_) => {
            return Err(Error::new(
                Status::Usage,
                "--client must be 1-64 of letters, digits, '.', '_', '-'",
            ))
        }
        None => host_name().unwrap_or_else(|| "NAME".into()),
    };
    let (tool, flavor) = keygen_tool(a.tool.as_deref())?;
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(Error::new(Status::CantCreate, msg(&[out, " already exists; keygen never replaces a key: remove it first or choose another --out"])));
    }
    let dir = parent_dir(out);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Error::os(
                Status::CantCreate,
                &msg(&["cannot create directory ", dir]),
                e,
            )
        })?;

    // The tool writes a temporary name; link() then publishes it only if
    // `out` still does not exist, so a key is never replaced even in a race.
    let tmp = msg(&[out, ".tmp-", Num::new(std::process::id() as u64).as_str()]);
    let tmp_pub = msg(&[&tmp, ".pub"]);
    remove_if_present(&tmp);
    remove_if_present(&tmp_pub);
    let comment = msg(&["entropyservice:", &name]);
    let r = make_key(&tool, flavor, kinds, &tmp, &comment, out);
    remove_if_present(&tmp);
    remove_if_present(&tmp_pub);
    let (kind, public) = r?;
    fsync_dir(dir)?;

    let out_pub = msg(&[out, ".pub"]);
    let pub_written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&out_pub)
        .and_then(|mut f| f.write_all(msg(&[&public, "\n"]).as_bytes()));
    if let Err(e) = pub_written {
        log::warn(&Error::os(Status::CantCreate, &msg(&["cannot write ", &out_pub]), e).msg);
    }
    if kind != kinds[0] {
        log::warn_parts(&[
            &tool,
            " cannot make ed25519 keys here; made an RSA 2048 key instead",
        ]);
    }
    let format = if flavor == KeyTool::Dropbear {
        "Dropbear format, for dbclient"
    } else {
        "OpenSSH format, for ssh"
    };
    log::info_parts(&[
        "created ", out, " (", kind, ", ", format, ") and ", &out_pub,
    ]);
    let key_only = PublicKey::parse(&public)
        .map(|k| k.line())
        .unwrap_or_default();
    let text = msg(&[
        &public,
        "\n# On the server, as the user this client logs in as, run:\nentropyservice authorize --client ",
        &name,
        " '",
        &key_only,
        "'\n",
    ]);
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

/// Makes the key at `tmp` (ed25519 first when allowed), fixes its mode,
/// and links it to `out`. Returns the type made and the public line.
fn make_key(
    tool: &str,
    flavor: KeyTool,
    kinds: &[&str],
    tmp: &str,
    comment: &str,
    out: &str,
) -> Result<(&'static str, String)> {
    let mut first_err = None;
    let mut made = None;
    for k in kinds {
        match generate(tool, flavor, k, tmp, comment) {
            Ok(()) => {
                made = Some(if *k == "rsa" { "rsa" } else { "ed25519" });
                break;
            }
            Err(e) => {
                remove_if_present(tmp);
                remove_if_present(&msg(&[tmp, ".pub"]));
                first_err.get_or_insert(e);
            }
        }
    }
    let kind = match (made, first_err) {
        (Some(k), _) => k,
        (None, Some(e)) => return Err(e),
        (None, None) => return Err(Error::new(Status::Internal, "no key type to try")),
    };
    let public = public_of(tool, flavor, tmp)?;
    let f = File::open(tmp)
        .map_err(|e| Error::os(Status::CantCreate, &msg(&["cannot open ", tmp]), e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| f.sync_all())
        .map_err(|e| {
            Error::os(
                Status::CantCreate,
                &msg(&["cannot chmod and fsync ", tmp]),
                e,
            )
        })?;
    std::fs::hard_link(tmp, out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::new(Status::CantCreate, msg(&[out, " appeared while the key was made; keygen never replaces a key: remove it first or choose another --out"]))
        } else {
            Error::os(Status::CantCreate, &msg(&["cannot create ", out]), e)
        }
    })?;
    Ok((kind, public))
}

/// This host's name, if it can be a client name.
fn host_name() -> Option<String> {
    let s = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let s = s.trim();
    parse::is_safe_name(s).then(|| s.to_string())
}
