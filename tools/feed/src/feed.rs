//! The two feeds of entropyservice from the cross-built static binaries:
//! what goes into the package (one list for both formats), the .ipk layout
//! of OpenWrt's scripts/ipkg-build, the apk layout of include/package-pack.mk,
//! the indexes and their signatures, and a checker of a built feed.
//!
//! Output, per OpenWrt architecture ARCH:
//!   OUT/opkg/ARCH/entropyservice_VERSION_ARCH.ipk, Packages, Packages.gz, Packages.sig
//!   OUT/apk/ARCH/entropyservice-VERSION.apk, packages.adb
//!   OUT/keys/entropyservice-feed.usign.pub, OUT/keys/entropyservice-feed.pem

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{apk, tar, usign, Error};

pub const PKG: &str = "entropyservice";
const LICENSE: &str = "GPL-2.0-or-later";
const SECTION: &str = "utils";
const USERID: &str = "entropyservice:entropyservice";
const URL: &str = "https://example.invalid/entropyservice";
/// openwrt/Makefile's Package/entropyservice/description, as ipkg-build
/// writes it (each line's leading blanks become one space) ...
const DESCRIPTION_LINES: [&str; 2] = [
    "Moves randomness over SSH from entropyservice servers into the",
    "kernel random pool; credits a saved seed at boot before the network is up.",
];
/// ... and openwrt/Makefile's Package/entropyservice/conffiles: the UCI file
/// and the client key that uci-defaults makes (never the seeds, which a
/// backup restored onto several routers would credit on each).
const CONFFILES: &[&str] = &[
    "/etc/config/entropyservice",
    "/etc/entropyservice/id_client",
    "/etc/entropyservice/id_client.pub",
];
pub const USIGN_PUB_NAME: &str = "entropyservice-feed.usign.pub";
pub const APK_PUB_NAME: &str = "entropyservice-feed.pem";

pub struct Target {
    pub rust: String,
    pub arches: Vec<String>,
    /// ELF class, data, e_machine
    pub elf: (u8, u8, u16),
}

/// scripts/targets.tsv: columns by position, comments and blank lines skipped.
pub fn read_targets(path: &Path) -> Result<Vec<Target>, Error> {
    let text = fs::read_to_string(path).map_err(|e| Error::io("read", path, &e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let bad = || {
            Error::msg(format!(
                "{}:{}: want TARGET<TAB>ARCH,...<TAB>CLASS,DATA,MACHINE",
                path.display(),
                n + 1
            ))
        };
        if cols.len() < 3 {
            return Err(bad());
        }
        let id: Vec<&str> = cols[2].split(',').collect();
        if id.len() != 3 {
            return Err(bad());
        }
        let elf = (
            id[0].parse().map_err(|_| bad())?,
            id[1].parse().map_err(|_| bad())?,
            id[2].parse().map_err(|_| bad())?,
        );
        let arches: Vec<String> = cols[1]
            .split(',')
            .map(str::to_string)
            .filter(|a| !a.is_empty())
            .collect();
        if arches.is_empty()
            || arches.iter().any(|a| {
                !a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
        {
            return Err(bad());
        }
        out.push(Target {
            rust: cols[0].to_string(),
            arches,
            elf,
        });
    }
    Ok(out)
}

/// The static-binary check: ELF identity as the target wants it, no program
/// interpreter, no DT_NEEDED.
pub fn check_elf(bin: &[u8], name: &str, want: (u8, u8, u16), target: &str) -> Result<(), Error> {
    if bin.len() < 52 || &bin[..4] != b"\x7fELF" {
        return Err(Error::msg(format!("{name} is not an ELF file")));
    }
    let (class, data) = (bin[4], bin[5]);
    let be = data == 2;
    let u16_at = |o: usize| -> Option<u64> {
        let b = bin.get(o..o.checked_add(2)?)?;
        Some(u64::from(if be {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        }))
    };
    let u32_at = |o: usize| -> Option<u64> {
        let b: [u8; 4] = bin.get(o..o.checked_add(4)?)?.try_into().ok()?;
        Some(u64::from(if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }))
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = bin.get(o..o.checked_add(8)?)?.try_into().ok()?;
        Some(if be {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    };
    let machine = u16_at(18).unwrap_or(0) as u16;
    if (class, data, machine) != want {
        return Err(Error::msg(format!(
            "{name} is ELF class/data/machine '{class} {data} {machine}', but {target} needs '{} {} {}'",
            want.0, want.1, want.2
        )));
    }
    let trunc = || Error::msg(format!("{name}: truncated ELF program headers"));
    let (phoff, phentsize, phnum) = if class == 2 {
        (
            u64_at(32).ok_or_else(trunc)?,
            u16_at(54).ok_or_else(trunc)?,
            u16_at(56).ok_or_else(trunc)?,
        )
    } else {
        (
            u32_at(28).ok_or_else(trunc)?,
            u16_at(42).ok_or_else(trunc)?,
            u16_at(44).ok_or_else(trunc)?,
        )
    };
    for i in 0..phnum {
        let ph = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok())
            .ok_or_else(trunc)?;
        let p_type = u32_at(ph).ok_or_else(trunc)?;
        if p_type == 3 {
            return Err(Error::msg(format!(
                "{name} has a program interpreter: not a static binary"
            )));
        }
        if p_type == 2 {
            let (off, size) = if class == 2 {
                (
                    u64_at(ph + 8).ok_or_else(trunc)?,
                    u64_at(ph + 32).ok_or_else(trunc)?,
                )
            } else {
                (
                    u32_at(ph + 4).ok_or_else(trunc)?,
                    u32_at(ph + 16).ok_or_else(trunc)?,
                )
            };
            let ent: u64 = if class == 2 { 16 } else { 8 };
            let end = off.checked_add(size).ok_or_else(trunc)?;
            let mut o = off;
            while o.checked_add(ent).is_some_and(|e| e <= end) {
                let at = usize::try_from(o).map_err(|_| trunc())?;
                let tag = if class == 2 { u64_at(at) } else { u32_at(at) }.ok_or_else(trunc)?;
                if tag == 0 {
                    break;
                }
                if tag == 1 {
                    return Err(Error::msg(format!(
                        "{name} needs shared libraries: not a static binary"
                    )));
                }
                o += ent;
            }
        }
    }
    Ok(())
}

/// One file of the package.
pub struct File {
    /// Without the leading slash: `usr/bin/entropyservice`.
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// What openwrt/Makefile's Package/entropyservice/install puts in the
/// package, plus the keep.d file package-pack.mk adds for the conffiles
/// the package does not ship (the client key made at install).
pub fn payload(files_dir: &Path, binary: Vec<u8>) -> Result<Vec<File>, Error> {
    let read = |name: &str| -> Result<Vec<u8>, Error> {
        let p = files_dir.join(name);
        fs::read(&p).map_err(|e| Error::io("read", &p, &e))
    };
    Ok(vec![
        File {
            path: format!("usr/bin/{PKG}"),
            mode: 0o755,
            data: binary,
        },
        File {
            path: format!("etc/init.d/{PKG}"),
            mode: 0o755,
            data: read(&format!("{PKG}.init"))?,
        },
        File {
            path: format!("etc/config/{PKG}"),
            mode: 0o600,
            data: read(&format!("{PKG}.config"))?,
        },
        File {
            path: format!("etc/uci-defaults/90-{PKG}"),
            mode: 0o755,
            data: read(&format!("{PKG}.uci-defaults"))?,
        },
        File {
            path: format!("etc/capabilities/{PKG}.json"),
            mode: 0o644,
            data: read(&format!("{PKG}.capabilities.json"))?,
        },
        File {
            path: format!("etc/hotplug.d/iface/90-{PKG}"),
            mode: 0o644,
            data: read(&format!("{PKG}.hotplug"))?,
        },
        File {
            path: format!("lib/upgrade/keep.d/{PKG}"),
            mode: 0o644,
            data: keep_d(),
        },
    ])
}

/// package-pack.mk's keep.d: the conffiles the package does not ship, one a line.
fn keep_d() -> Vec<u8> {
    let shipped = ["/etc/config/entropyservice"];
    let mut out = String::new();
    for c in CONFFILES.iter().filter(|c| !shipped.contains(c)) {
        out.push_str(c);
        out.push('\n');
    }
    out.into_bytes()
}

pub struct Meta {
    /// `0.1.0-r1`
    pub version: String,
    pub maintainer: String,
    pub epoch: u64,
}

// --- opkg ------------------------------------------------------------------------

/// Tar entries for `tar -C DIR .` with GNU tar's --sort=name: `./`, then
/// each directory's entries by name, depth first.
fn tree_entries(files: &[File]) -> Vec<tar::Entry> {
    #[derive(Default)]
    struct Node {
        dirs: BTreeMap<String, Node>,
        files: BTreeMap<String, usize>,
    }
    let mut root = Node::default();
    for (i, f) in files.iter().enumerate() {
        let comps: Vec<&str> = f.path.split('/').collect();
        let mut n = &mut root;
        for c in &comps[..comps.len() - 1] {
            n = n.dirs.entry((*c).to_string()).or_default();
        }
        n.files.insert(comps[comps.len() - 1].to_string(), i);
    }
    fn walk(n: &Node, prefix: &str, files: &[File], out: &mut Vec<tar::Entry>) {
        // GNU tar sorts all names of a directory together
        let mut names: Vec<(&String, Option<&Node>, Option<usize>)> = Vec::new();
        for (k, v) in &n.dirs {
            names.push((k, Some(v), None));
        }
        for (k, &v) in &n.files {
            names.push((k, None, Some(v)));
        }
        names.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (name, dir, file) in names {
            if let Some(d) = dir {
                let p = format!("{prefix}{name}/");
                out.push(tar::Entry {
                    name: p.clone(),
                    mode: 0o755,
                    data: None,
                });
                walk(d, &p, files, out);
            } else if let Some(i) = file {
                out.push(tar::Entry {
                    name: format!("{prefix}{name}"),
                    mode: files[i].mode,
                    data: Some(files[i].data.clone()),
                });
            }
        }
    }
    let mut out = vec![tar::Entry {
        name: "./".into(),
        mode: 0o755,
        data: None,
    }];
    walk(&root, "./", files, &mut out);
    out
}

pub fn gzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data)
        .map_err(|e| Error::msg(format!("gzip: {e}")))?;
    enc.finish().map_err(|e| Error::msg(format!("gzip: {e}")))
}

pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(1 << 30)
        .read_to_end(&mut out)
        .map_err(|e| Error::msg(format!("gunzip: {e}")))?;
    Ok(out)
}

fn control(meta: &Meta, arch: &str, installed_size: usize) -> String {
    let mut c = String::new();
    c.push_str(&format!("Package: {PKG}\nVersion: {}\n", meta.version));
    c.push_str(&format!(
        "Source: {PKG}/openwrt\nSourceName: {PKG}\nLicense: {LICENSE}\nSection: {SECTION}\n"
    ));
    c.push_str(&format!(
        "Require-User: {USERID}\nSourceDateEpoch: {}\n",
        meta.epoch
    ));
    c.push_str(&format!(
        "Maintainer: {}\nArchitecture: {arch}\nInstalled-Size: {installed_size}\n",
        meta.maintainer
    ));
    c.push_str("Description: ");
    for l in DESCRIPTION_LINES {
        c.push_str(&format!(" {l}\n"));
    }
    c
}

const POSTINST: &str = "#!/bin/sh\n[ \"${IPKG_NO_SCRIPT}\" = \"1\" ] && exit 0\n[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n. ${IPKG_INSTROOT}/lib/functions.sh\ndefault_postinst $0 $@\n";
const PRERM: &str = "#!/bin/sh\n[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n. ${IPKG_INSTROOT}/lib/functions.sh\ndefault_prerm $0 $@\n";

/// One .ipk as ipkg-build makes it: a gzip'd tar of ./debian-binary,
/// ./data.tar.gz, ./control.tar.gz.
pub fn build_ipk(files: &[File], meta: &Meta, arch: &str) -> Result<Vec<u8>, Error> {
    let data_tar = tar::write(&tree_entries(files), meta.epoch)?;
    let data = gzip(&data_tar)?;
    let mut conffiles = String::new();
    for c in CONFFILES {
        conffiles.push_str(c);
        conffiles.push('\n');
    }
    let ctl = vec![
        tar::Entry {
            name: "./".into(),
            mode: 0o755,
            data: None,
        },
        tar::Entry {
            name: "./conffiles".into(),
            mode: 0o644,
            data: Some(conffiles.into_bytes()),
        },
        tar::Entry {
            name: "./control".into(),
            mode: 0o644,
            data: Some(control(meta, arch, data_tar.len()).into_bytes()),
        },
        tar::Entry {
            name: "./postinst".into(),
            mode: 0o755,
            data: Some(POSTINST.as_bytes().to_vec()),
        },
        tar::Entry {
            name: "./prerm".into(),
            mode: 0o755,
            data: Some(PRERM.as_bytes().to_vec()),
        },
    ];
    let control_tgz = gzip(&tar::write(&ctl, meta.epoch)?)?;
    let outer = vec![
        tar::Entry {
            name: "./debian-binary".into(),
            mode: 0o644,
            data: Some(b"2.0\n".to_vec()),
        },
        tar::Entry {
            name: "./data.tar.gz".into(),
            mode: 0o644,
            data: Some(data),
        },
        tar::Entry {
            name: "./control.tar.gz".into(),
            mode: 0o644,
            data: Some(control_tgz),
        },
    ];
    gzip(&tar::write(&outer, meta.epoch)?)
}

/// The pieces of an .ipk: (control text, data.tar entries).
pub fn read_ipk(ipk: &[u8]) -> Result<(String, Vec<tar::ReadEntry>, Vec<tar::ReadEntry>), Error> {
    let outer = tar::read(&gunzip(ipk)?)?;
    let names: Vec<&str> = outer.iter().map(|e| e.name.as_str()).collect();
    if names != ["./debian-binary", "./data.tar.gz", "./control.tar.gz"] {
        return Err(Error::msg(format!(
            "ipk members are {names:?}, not ipkg-build's three"
        )));
    }
    if outer[0].data != b"2.0\n" {
        return Err(Error::msg("ipk debian-binary is not '2.0'"));
    }
    let data = tar::read(&gunzip(&outer[1].data)?)?;
    let ctl = tar::read(&gunzip(&outer[2].data)?)?;
    let control = ctl
        .iter()
        .find(|e| e.name == "./control")
        .map(|e| String::from_utf8_lossy(&e.data).into_owned())
        .ok_or_else(|| Error::msg("ipk has no ./control"))?;
    Ok((control, data, ctl))
}

/// The stanza scripts/ipkg-make-index.sh writes: the control fields with
/// Filename, Size and SHA256sum before Description, then a blank line.
pub fn stanza(control: &str, filename: &str, ipk: &[u8]) -> String {
    let mut out = String::new();
    let (head, desc) = match control.find("\nDescription:") {
        Some(i) => (&control[..=i], &control[i + 1..]),
        None => (control, ""),
    };
    out.push_str(head);
    out.push_str(&format!(
        "Filename: {filename}\nSize: {}\nSHA256sum: {}\n",
        ipk.len(),
        crate::hex(&Sha256::digest(ipk))
    ));
    out.push_str(desc);
    out.push('\n');
    out
}

// --- apk -------------------------------------------------------------------------

fn apk_scripts() -> Vec<(&'static str, String)> {
    // package-pack.mk: post-install, post-upgrade (the same with
    // PKG_UPGRADE=1), pre-deinstall; pre-install/pre-upgrade only for
    // packages with a preinst, which this one has not.
    let body = format!(
        "[ \"${{IPKG_NO_SCRIPT}}\" = \"1\" ] && exit 0\n[ -s ${{IPKG_INSTROOT}}/lib/functions.sh ] || exit 0\n. ${{IPKG_INSTROOT}}/lib/functions.sh\nexport root=\"${{IPKG_INSTROOT}}\"\nexport pkgname=\"{PKG}\"\nadd_group_and_user\ndefault_postinst\n"
    );
    vec![
        ("post-install", format!("#!/bin/sh\n{body}")),
        (
            "pre-deinstall",
            format!("#!/bin/sh\n[ -s ${{IPKG_INSTROOT}}/lib/functions.sh ] || exit 0\n. ${{IPKG_INSTROOT}}/lib/functions.sh\nexport root=\"${{IPKG_INSTROOT}}\"\nexport pkgname=\"{PKG}\"\ndefault_prerm\n"),
        ),
        ("post-upgrade", format!("#!/bin/sh\nexport PKG_UPGRADE=1\n{body}")),
    ]
}

/// The apk tree: the files plus package-pack.mk's lib/apk/packages/:
/// `.rusers` (USERID, read by add_group_and_user), `.list` (regular files,
/// sorted, made before .list, .conffiles and .conffiles_static exist, as
/// package-pack.mk's find does), `.conffiles`, `.conffiles_static` (path
/// and SHA-256 of each conffile the package ships).
pub fn apk_tree(files: &[File]) -> Vec<apk::TreeFile> {
    let dir = "lib/apk/packages";
    let mut tree: Vec<apk::TreeFile> = files
        .iter()
        .map(|f| apk::TreeFile {
            path: f.path.clone(),
            mode: f.mode,
            data: f.data.clone(),
        })
        .collect();
    tree.push(apk::TreeFile {
        path: format!("{dir}/{PKG}.rusers"),
        mode: 0o644,
        data: format!("{USERID}\n").into_bytes(),
    });
    let mut list: Vec<String> = tree.iter().map(|f| format!("/{}", f.path)).collect();
    list.sort();
    let mut list_text = list.join("\n");
    list_text.push('\n');
    let mut conffiles = String::new();
    let mut statics = String::new();
    for c in CONFFILES {
        conffiles.push_str(&format!("{c}\n"));
        if let Some(f) = files.iter().find(|f| format!("/{}", f.path) == *c) {
            statics.push_str(&format!("{c} {}\n", crate::hex(&Sha256::digest(&f.data))));
        }
    }
    tree.push(apk::TreeFile {
        path: format!("{dir}/{PKG}.list"),
        mode: 0o644,
        data: list_text.into_bytes(),
    });
    tree.push(apk::TreeFile {
        path: format!("{dir}/{PKG}.conffiles"),
        mode: 0o644,
        data: conffiles.into_bytes(),
    });
    tree.push(apk::TreeFile {
        path: format!("{dir}/{PKG}.conffiles_static"),
        mode: 0o644,
        data: statics.into_bytes(),
    });
    tree
}

pub fn apk_info(meta: &Meta, arch: &str) -> apk::Info {
    apk::Info {
        name: PKG.into(),
        version: meta.version.clone(),
        description: DESCRIPTION_LINES.join(" "),
        arch: arch.into(),
        license: LICENSE.into(),
        origin: PKG.into(),
        maintainer: meta.maintainer.clone(),
        url: URL.into(),
        depends: Vec::new(),
    }
}

pub fn build_apk(
    files: &[File],
    meta: &Meta,
    arch: &str,
    key: &apk::PrivateKey,
) -> Result<apk::Built, Error> {
    let scripts = apk_scripts();
    apk::build_package(
        &apk_info(meta, arch),
        &apk_tree(files),
        &scripts,
        meta.epoch,
        Some(key),
    )
}

// --- the whole feed --------------------------------------------------------------

pub struct Keys {
    pub usign: usign::SecretKey,
    pub apk: apk::PrivateKey,
}

/// Writes `data` to `path` through a temporary file in the same directory,
/// synced, then renamed: no half-written file at `path`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("write", path, &e));
    }
    Ok(())
}

/// Sizes of what was built, for the report: (arch, ipk bytes, apk bytes).
pub type Sizes = Vec<(String, usize, usize)>;

/// Builds both feeds for every (target, binary) into `out`: everything is
/// written under a fresh directory beside it first and moved into place at
/// the end, so a failed build leaves `out` as it was.
pub fn build(
    out: &Path,
    files_dir: &Path,
    inputs: &[(&Target, PathBuf)],
    meta: &Meta,
    keys: &Keys,
) -> Result<Sizes, Error> {
    apk::validate_version(&meta.version)?;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, &e))?;
    let stage = parent.join(format!(".es-feed-{}", std::process::id()));
    let _ = fs::remove_dir_all(&stage);
    let res = build_into(&stage, files_dir, inputs, meta, keys);
    let res = res.and_then(|sizes| {
        fs::create_dir_all(out).map_err(|e| Error::io("create", out, &e))?;
        for sub in ["opkg", "apk", "keys"] {
            let dst = out.join(sub);
            let old = out.join(format!(".{sub}.old"));
            let _ = fs::remove_dir_all(&old);
            if dst.exists() {
                fs::rename(&dst, &old).map_err(|e| Error::io("move aside", &dst, &e))?;
            }
            fs::rename(stage.join(sub), &dst)
                .map_err(|e| Error::io("move into place", &dst, &e))?;
            let _ = fs::remove_dir_all(&old);
        }
        Ok(sizes)
    });
    let _ = fs::remove_dir_all(&stage);
    res
}

fn build_into(
    stage: &Path,
    files_dir: &Path,
    inputs: &[(&Target, PathBuf)],
    meta: &Meta,
    keys: &Keys,
) -> Result<Sizes, Error> {
    let mkdir = |p: &Path| fs::create_dir_all(p).map_err(|e| Error::io("create", p, &e));
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    for (target, bin_path) in inputs {
        let bin = fs::read(bin_path).map_err(|e| Error::io("read", bin_path, &e))?;
        check_elf(
            &bin,
            &bin_path.display().to_string(),
            target.elf,
            &target.rust,
        )?;
        let files = payload(files_dir, bin)?;
        for arch in &target.arches {
            if seen.contains(arch) {
                return Err(Error::msg(format!(
                    "architecture {arch} comes from two binaries"
                )));
            }
            seen.push(arch.clone());
            let odir = stage.join("opkg").join(arch);
            mkdir(&odir)?;
            let ipk = build_ipk(&files, meta, arch)?;
            let name = format!("{PKG}_{}_{arch}.ipk", meta.version);
            write_atomic(&odir.join(&name), &ipk, 0o644)?;
            let (control, _, _) = read_ipk(&ipk)?;
            let packages = stanza(&control, &name, &ipk);
            write_atomic(&odir.join("Packages"), packages.as_bytes(), 0o644)?;
            write_atomic(
                &odir.join("Packages.gz"),
                &gzip(packages.as_bytes())?,
                0o644,
            )?;
            write_atomic(
                &odir.join("Packages.sig"),
                keys.usign.sign(packages.as_bytes()).as_bytes(),
                0o644,
            )?;

            let adir = stage.join("apk").join(arch);
            mkdir(&adir)?;
            let built = build_apk(&files, meta, arch, &keys.apk)?;
            write_atomic(
                &adir.join(format!("{PKG}-{}.apk", meta.version)),
                &built.file,
                0o644,
            )?;
            let index = apk::build_index(
                &[apk::IndexEntry {
                    adb: &built.adb,
                    file_size: built.file.len() as u64,
                }],
                Some(&keys.apk),
            )?;
            write_atomic(&adir.join("packages.adb"), &index, 0o644)?;
            sizes.push((arch.clone(), ipk.len(), built.file.len()));
        }
    }
    let kdir = stage.join("keys");
    mkdir(&kdir)?;
    let upub = keys.usign.public();
    let comment = format!(
        "entropyservice feed key {}",
        usign::key_id(&upub.fingerprint)
    );
    write_atomic(
        &kdir.join(USIGN_PUB_NAME),
        upub.to_file(&comment).as_bytes(),
        0o644,
    )?;
    write_atomic(
        &kdir.join(APK_PUB_NAME),
        keys.apk.public().to_pem()?.as_bytes(),
        0o644,
    )?;
    Ok(sizes)
}

/// Checks a built feed with the public keys: for every architecture, the
/// usign signature over Packages, Packages.gz, each .ipk against its stanza
/// (size, SHA-256, control fields, layout), the signed packages.adb against
/// the signed .apk (file size, SHA-256 of its ADB block, fields), the .apk's
/// data against its hashes, and that both packages carry the same files.
/// Returns one line per architecture.
pub fn check(
    out: &Path,
    upub: &usign::PublicKey,
    apub: &apk::PublicKey,
    expect_arches: &[String],
) -> Result<Vec<String>, Error> {
    let rd = |p: &Path| fs::read(p).map_err(|e| Error::io("read", p, &e));
    let list = |p: &Path| -> Result<Vec<String>, Error> {
        let mut v: Vec<String> = fs::read_dir(p)
            .map_err(|e| Error::io("list", p, &e))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        v.sort();
        Ok(v)
    };
    let opkg_arches = list(&out.join("opkg"))?;
    let apk_arches = list(&out.join("apk"))?;
    if opkg_arches != apk_arches {
        return Err(Error::msg(format!(
            "opkg feed has {opkg_arches:?} but apk feed has {apk_arches:?}"
        )));
    }
    if !expect_arches.is_empty() {
        let mut want = expect_arches.to_vec();
        want.sort();
        if want != opkg_arches {
            return Err(Error::msg(format!(
                "feed has architectures {opkg_arches:?}, expected {want:?}"
            )));
        }
    }
    if opkg_arches.is_empty() {
        return Err(Error::msg(format!("{}: no architectures", out.display())));
    }
    let mut lines = Vec::new();
    for arch in &opkg_arches {
        let ctx = |e: Error| Error::msg(format!("{arch}: {}", e.0));
        let odir = out.join("opkg").join(arch);
        let packages = rd(&odir.join("Packages"))?;
        let sig = String::from_utf8_lossy(&rd(&odir.join("Packages.sig"))?).into_owned();
        upub.verify(&packages, &sig)
            .map_err(|e| Error::msg(format!("{arch}: Packages.sig: {}", e.0)))?;
        if gunzip(&rd(&odir.join("Packages.gz"))?)? != packages {
            return Err(Error::msg(format!("{arch}: Packages.gz is not Packages")));
        }
        let text = String::from_utf8_lossy(&packages).into_owned();
        let field = |name: &str| -> Option<String> {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
        };
        let filename = field("Filename")
            .ok_or_else(|| Error::msg(format!("{arch}: Packages has no Filename")))?;
        let ipk = rd(&odir.join(&filename))?;
        let (control, data, ctl) = read_ipk(&ipk).map_err(ctx)?;
        let epoch: u64 = control
            .lines()
            .find_map(|l| l.strip_prefix("SourceDateEpoch: "))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::msg(format!("{arch}: {filename}: no SourceDateEpoch")))?;
        if data
            .iter()
            .chain(ctl.iter())
            .any(|e| e.uid != 0 || e.gid != 0 || e.mtime != epoch)
        {
            return Err(Error::msg(format!(
                "{arch}: {filename}: tar entries not 0/0 or not at SourceDateEpoch"
            )));
        }
        if stanza(&control, &filename, &ipk) != text {
            return Err(Error::msg(format!(
                "{arch}: Packages does not match {filename} (size, SHA256sum or control)"
            )));
        }
        if field("Architecture").as_deref() != Some(arch.as_str()) {
            return Err(Error::msg(format!(
                "{arch}: Packages says Architecture {:?}",
                field("Architecture")
            )));
        }
        let version = field("Version").unwrap_or_default();
        let adir = out.join("apk").join(arch);
        let index = apk::read_index(&rd(&adir.join("packages.adb"))?, Some(apub))
            .map_err(|e| Error::msg(format!("{arch}: packages.adb: {}", e.0)))?;
        if index.len() != 1 {
            return Err(Error::msg(format!(
                "{arch}: packages.adb lists {} packages, not 1",
                index.len()
            )));
        }
        let get = |k: &str| {
            index[0]
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let apk_name = format!("{}-{}.apk", get("name"), get("version"));
        let apk_bytes = rd(&adir.join(&apk_name))?;
        let pkg = apk::read_package(&apk_bytes, Some(apub))
            .map_err(|e| Error::msg(format!("{arch}: {apk_name}: {}", e.0)))?;
        if get("file-size") != apk_bytes.len().to_string() {
            return Err(Error::msg(format!(
                "{arch}: packages.adb file-size {} but {apk_name} has {} bytes",
                get("file-size"),
                apk_bytes.len()
            )));
        }
        if get("hashes") != crate::hex(&Sha256::digest(&pkg.adb)) {
            return Err(Error::msg(format!(
                "{arch}: packages.adb hash is not SHA-256 of {apk_name}'s ADB block"
            )));
        }
        for (k, v) in &pkg.fields {
            if k != "hashes" && get(k) != *v {
                return Err(Error::msg(format!(
                    "{arch}: packages.adb {k} '{}' but the package says '{v}'",
                    get(k)
                )));
            }
        }
        if get("arch") != *arch || get("version") != version || get("name") != PKG {
            return Err(Error::msg(format!(
                "{arch}: apk name/version/arch {}/{}/{} do not match the feed",
                get("name"),
                get("version"),
                get("arch")
            )));
        }
        // Same payload in both formats (the apk adds lib/apk/packages/).
        let ipk_files: BTreeMap<String, (u32, Vec<u8>)> = data
            .iter()
            .filter(|e| e.kind == b'0')
            .map(|e| {
                (
                    e.name.trim_start_matches("./").to_string(),
                    (e.mode & 0o7777, e.data.clone()),
                )
            })
            .collect();
        let apk_files: BTreeMap<String, (u32, Vec<u8>)> = pkg
            .files
            .iter()
            .filter(|f| !f.path.starts_with("lib/apk/packages/"))
            .map(|f| (f.path.clone(), (f.mode, f.data.clone())))
            .collect();
        if ipk_files != apk_files {
            let a: Vec<&String> = ipk_files.keys().collect();
            let b: Vec<&String> = apk_files.keys().collect();
            return Err(Error::msg(format!(
                "{arch}: .ipk and .apk carry different files or modes ({a:?} vs {b:?})"
            )));
        }
        if pkg
            .files
            .iter()
            .any(|f| f.user != "root" || f.group != "root" || f.mtime != epoch)
        {
            return Err(Error::msg(format!(
                "{arch}: {apk_name} has files not root:root or not of the ipk's time"
            )));
        }
        if pkg.dirs.iter().any(|(_, mode)| *mode != 0o755) {
            return Err(Error::msg(format!(
                "{arch}: {apk_name} has a directory that is not 0755"
            )));
        }
        let names: Vec<&str> = pkg.scripts.iter().map(|(n, _)| n.as_str()).collect();
        if names != ["post-install", "pre-deinstall", "post-upgrade"] {
            return Err(Error::msg(format!(
                "{arch}: {apk_name} scripts are {names:?}"
            )));
        }
        lines.push(format!(
            "{arch}: {filename} {} bytes, {apk_name} {} bytes: signatures OK",
            ipk.len(),
            apk_bytes.len()
        ));
    }
    Ok(lines)
}
