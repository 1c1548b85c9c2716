//! Known answers made by the real usign and apk-tools 3.0.6 (the shared
//! vectors beside the checkout: ../shared/vectors, or ES_VECTORS), and round
//! trips of what this tool writes. A missing vector directory fails every
//! test that needs it, saying where it looked.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{adb, apk, feed, usign};

fn vectors() -> PathBuf {
    let dir = match std::env::var_os("ES_VECTORS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors"),
    };
    assert!(
        dir.join("README.md").is_file(),
        "known-answer vectors missing: {} (CI keeps shared/ beside the clone; or set ES_VECTORS)",
        dir.display()
    );
    dir
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn text(p: &Path) -> String {
    String::from_utf8(read(p)).unwrap_or_else(|_| panic!("{} is not text", p.display()))
}

// --- usign -------------------------------------------------------------------------

#[test]
fn usign_sign_gives_the_real_usign_signature() {
    let v = vectors().join("usign");
    let key = usign::SecretKey::parse(&text(&v.join("test-feed.sec"))).expect("secret key parses");
    assert_eq!(usign::key_id(&key.fingerprint), "a4f31e580c0c455e");
    let sig = key.sign(&read(&v.join("Packages")));
    assert_eq!(
        sig,
        text(&v.join("Packages.sig")),
        "Ed25519 is deterministic: same bytes as usign -S"
    );
}

#[test]
fn usign_verify_accepts_the_real_signature_and_refuses_a_changed_file() {
    let v = vectors().join("usign");
    let key = usign::PublicKey::parse(&text(&v.join("test-feed.pub"))).expect("public key parses");
    let msg = read(&v.join("Packages"));
    let sig = text(&v.join("Packages.sig"));
    key.verify(&msg, &sig)
        .expect("real usign signature verifies");
    let mut longer = msg.clone();
    longer.push(b'\n');
    assert_eq!(
        key.verify(&longer, &sig).unwrap_err().0,
        "verification failed"
    );
    // the secret key's public half is the public key file's
    let sec = usign::SecretKey::parse(&text(&v.join("test-feed.sec"))).unwrap();
    assert_eq!(
        sec.public().to_file("entropyservice test vector key"),
        text(&v.join("test-feed.pub"))
    );
}

#[test]
fn usign_generated_keys_round_trip_and_other_keys_fail() {
    let mut r = [0u8; 40];
    for (i, b) in r.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7).wrapping_add(1);
    }
    let k = usign::SecretKey::generate(&r);
    let file = k.to_file("c", &[9; 16]);
    let k2 = usign::SecretKey::parse(&file).expect("own secret key parses");
    let p = usign::PublicKey::parse(&k.public().to_file("p")).expect("own public key parses");
    let sig = k2.sign(b"Packages\n");
    p.verify(b"Packages\n", &sig)
        .expect("own signature verifies");
    let other = usign::PublicKey::parse(&text(&vectors().join("usign/test-feed.pub"))).unwrap();
    assert!(other
        .verify(b"Packages\n", &sig)
        .unwrap_err()
        .0
        .contains("signature is by key"));
    // a damaged secret key is refused by its checksum
    let mut lines: Vec<String> = file.lines().map(str::to_string).collect();
    let mut raw =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &lines[1]).unwrap();
    raw[60] ^= 1;
    lines[1] = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &raw);
    assert!(usign::SecretKey::parse(&lines.join("\n"))
        .err()
        .expect("damaged key refused")
        .0
        .contains("checksum"));
}

// --- apk: reading what the real apk wrote ---------------------------------------------

fn vector_pub() -> apk::PublicKey {
    apk::PublicKey::from_pem(&text(&vectors().join("apk-v3/test-signing-key.pub.pem")))
        .expect("vector public key")
}

#[test]
fn apk_key_id_is_the_one_apk_writes() {
    let k = vector_pub();
    assert_eq!(adb::hex(&k.key_id()), "0ce1dbdbdf2857daed6667eaf70871b0");
    let pem = text(&vectors().join("apk-v3/test-signing-key.pem"));
    let sk = apk::PrivateKey::from_pem(&pem).expect("vector private key");
    assert_eq!(sk.public().key_id(), k.key_id());
    // written back exactly as openssl ecparam wrote it (curve named: OpenSSL needs it)
    assert_eq!(sk.to_pem().unwrap(), pem);
    let public = text(&vectors().join("apk-v3/test-signing-key.pub.pem"));
    assert_eq!(sk.public().to_pem().unwrap(), public);
}

#[test]
fn dump_of_the_vector_package_is_what_apk_adbdump_prints() {
    let v = vectors().join("apk-v3");
    let got = apk::dump(&read(&v.join("esvector-1.0-r1.apk")), &[]).expect("vector package parses");
    assert_eq!(got, text(&v.join("esvector-1.0-r1.apk.adbdump.txt")));
    // with the key, the signature line says OK
    let ok = apk::dump(&read(&v.join("esvector-1.0-r1.apk")), &[vector_pub()]).unwrap();
    assert!(ok.contains("..: OK\n") && !ok.contains("UNTRUSTED"), "{ok}");
}

#[test]
fn dump_of_the_vector_index_is_what_apk_adbdump_prints() {
    let v = vectors().join("apk-v3");
    let got = apk::dump(&read(&v.join("packages.adb")), &[]).expect("vector index parses");
    assert_eq!(got, text(&v.join("packages.adb.adbdump.txt")));
}

#[test]
fn real_apk_signatures_verify_and_unsigned_is_refused() {
    let v = vectors().join("apk-v3");
    let key = vector_pub();
    let pkg = apk::read_package(&read(&v.join("esvector-1.0-r1.apk")), Some(&key))
        .expect("real package verifies");
    assert_eq!(pkg.files.len(), 6);
    let bin = pkg
        .files
        .iter()
        .find(|f| f.path == "usr/bin/esvector")
        .expect("usr/bin/esvector");
    assert_eq!(bin.data, read(&v.join("tree/usr/bin/esvector")));
    assert_eq!(bin.mode, 0o755);
    apk::read_index(&read(&v.join("packages.adb")), Some(&key)).expect("real index verifies");
    let e = apk::read_package(&read(&v.join("unsigned/esvector-1.0-r1.apk")), Some(&key))
        .err()
        .expect("unsigned refused");
    assert!(e.0.contains("no signature"), "{}", e.0);
    // the index's hash is SHA-256 of the package's ADB block
    let idx = apk::read_index(&read(&v.join("packages.adb")), None).unwrap();
    let h = idx[0].iter().find(|(k, _)| k == "hashes").unwrap();
    assert_eq!(h.1, adb::hex(&Sha256::digest(&pkg.adb)));
}

// --- apk: writing what the real apk writes --------------------------------------------

fn vector_tree() -> Vec<apk::TreeFile> {
    let root = vectors().join("apk-v3/tree");
    let mut out = Vec::new();
    fn walk(dir: &Path, root: &Path, out: &mut Vec<apk::TreeFile>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                use std::os::unix::fs::PermissionsExt;
                let exec = fs::metadata(&p).unwrap().permissions().mode() & 0o111 != 0;
                out.push(apk::TreeFile {
                    path: p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    mode: if exec { 0o755 } else { 0o644 },
                    data: read(&p),
                });
            }
        }
    }
    walk(&root, &root, &mut out);
    out
}

fn vector_info() -> apk::Info {
    apk::Info {
        name: "esvector".into(),
        version: "1.0-r1".into(),
        description: "Test vector package for apk v3 writers".into(),
        arch: "mips_24kc".into(),
        license: "GPL-2.0-or-later".into(),
        origin: "esvector".into(),
        maintainer: "Test Vector <vector@example.invalid>".into(),
        url: "https://example.invalid/esvector".into(),
        depends: vec!["libc".into()],
    }
}

fn vector_scripts() -> Vec<(&'static str, String)> {
    let v = vectors().join("apk-v3/scripts");
    vec![
        ("post-install", text(&v.join("post-install"))),
        ("pre-deinstall", text(&v.join("pre-deinstall"))),
    ]
}

fn plain(file: &[u8]) -> Vec<u8> {
    adb::File::parse(file).expect("parses").plain
}

#[test]
fn writer_makes_the_same_package_as_apk_mkpkg() {
    let v = vectors().join("apk-v3");
    let built = apk::build_package(
        &vector_info(),
        &vector_tree(),
        &vector_scripts(),
        1767225600,
        None,
    )
    .unwrap();
    // Unsigned: every byte of the uncompressed file is mkpkg's (block
    // order, field order, value layout, alignment, unique id, DATA blocks).
    assert_eq!(
        plain(&built.file),
        plain(&read(&v.join("unsigned/esvector-1.0-r1.apk")))
    );
    // Signed: the same ADB block and DATA blocks around our signature.
    let key = apk::PrivateKey::from_pem(&text(&v.join("test-signing-key.pem"))).unwrap();
    let signed = apk::build_package(
        &vector_info(),
        &vector_tree(),
        &vector_scripts(),
        1767225600,
        Some(&key),
    )
    .unwrap();
    let ours = adb::File::parse(&signed.file).unwrap();
    let real = adb::File::parse(&read(&v.join("esvector-1.0-r1.apk"))).unwrap();
    assert_eq!(
        ours.blocks.iter().map(|b| b.typ).collect::<Vec<_>>(),
        real.blocks.iter().map(|b| b.typ).collect::<Vec<_>>()
    );
    assert_eq!(ours.adb().buf, real.adb().buf);
    assert!(ours.data_blocks().eq(real.data_blocks()));
    assert!(
        signed.file.starts_with(b"ADBd"),
        "deflate, as the router's apk (no zstd) reads"
    );
    apk::read_package(&signed.file, Some(&vector_pub()))
        .expect("our signature verifies with the vector's public key");
}

#[test]
fn writer_makes_the_same_index_as_apk_mkndx() {
    let v = vectors().join("apk-v3");
    let pkg = read(&v.join("esvector-1.0-r1.apk"));
    let adb_payload = adb::File::parse(&pkg).unwrap().adb().buf.to_vec();
    let ours = apk::build_index(
        &[apk::IndexEntry {
            adb: &adb_payload,
            file_size: pkg.len() as u64,
        }],
        None,
    )
    .unwrap();
    let real = adb::File::parse(&read(&v.join("packages.adb"))).unwrap();
    assert_eq!(
        adb::File::parse(&ours).unwrap().adb().buf,
        real.adb().buf,
        "same ADB block as mkndx"
    );
    let key = apk::PrivateKey::from_pem(&text(&v.join("test-signing-key.pem"))).unwrap();
    let signed = apk::build_index(
        &[apk::IndexEntry {
            adb: &adb_payload,
            file_size: pkg.len() as u64,
        }],
        Some(&key),
    )
    .unwrap();
    apk::read_index(&signed, Some(&vector_pub())).expect("our index signature verifies");
    let dump = apk::dump(&signed, &[vector_pub()]).unwrap();
    let want = text(&v.join("packages.adb.adbdump.txt"));
    // everything but the (randomised) ECDSA signature line is identical
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("# sig "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&dump), strip(&want));
}

#[test]
fn tampering_is_caught() {
    let v = vectors().join("apk-v3");
    let key = apk::PrivateKey::from_pem(&text(&v.join("test-signing-key.pem"))).unwrap();
    let built = apk::build_package(
        &vector_info(),
        &vector_tree(),
        &vector_scripts(),
        1767225600,
        Some(&key),
    )
    .unwrap();
    let mut p = plain(&built.file);
    // last DATA block: usr/bin/esvector's bytes
    let n = p.len();
    let at = (n - 8..n).rev().find(|&i| p[i] != 0).unwrap();
    p[at] ^= 0x20;
    let e = apk::read_package(&p, Some(&vector_pub()))
        .err()
        .expect("changed data refused");
    assert!(e.0.contains("SHA-256"), "{}", e.0);
    let mut q = plain(&built.file);
    let pos = q.windows(8).position(|w| w == b"esvector").unwrap();
    q[pos] = b'E';
    let e = apk::read_package(&q, Some(&vector_pub()))
        .err()
        .expect("changed ADB refused");
    assert!(e.0.contains("does not verify"), "{}", e.0);
}

#[test]
fn apk_versions_follow_apk_syntax() {
    for ok in ["0.1.0-r1", "1.0-r1", "1.2.3", "2.0_rc1-r3", "1.2a-r0"] {
        apk::validate_version(ok).unwrap_or_else(|e| panic!("{ok}: {}", e.0));
    }
    for bad in [
        "0.1.0+git-r1",
        "1.0~abc-r1",
        "v1.0-r1",
        "1..2-r1",
        "1.0-r",
        "1.0-rx",
        "",
    ] {
        assert!(apk::validate_version(bad).is_err(), "{bad} accepted");
    }
}

// --- the feed ----------------------------------------------------------------------

/// A minimal static ELF with the identity of `t` and no program headers:
/// the ELF check looks at identity, PT_INTERP and DT_NEEDED only.
fn fake_elf(class: u8, data: u8, machine: u16, interp: bool) -> Vec<u8> {
    let mut b = vec![0u8; 256];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = class;
    b[5] = data;
    b[6] = 1;
    let put16 = |b: &mut Vec<u8>, o: usize, v: u16| {
        let x = if data == 2 {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        b[o..o + 2].copy_from_slice(&x);
    };
    put16(&mut b, 18, machine);
    if interp {
        // one program header of type PT_INTERP (3)
        if class == 2 {
            b[32] = 64;
            put16(&mut b, 54, 56);
            put16(&mut b, 56, 1);
            let t = if data == 2 {
                3u32.to_be_bytes()
            } else {
                3u32.to_le_bytes()
            };
            b[64..68].copy_from_slice(&t);
        } else {
            b[28] = 52;
            put16(&mut b, 42, 32);
            put16(&mut b, 44, 1);
            let t = if data == 2 {
                3u32.to_be_bytes()
            } else {
                3u32.to_le_bytes()
            };
            b[52..56].copy_from_slice(&t);
        }
    }
    b
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("es-feed-test-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn feed_builds_for_every_table_arch_and_checks() {
    let targets =
        feed::read_targets(&root().join("scripts/targets.tsv")).expect("scripts/targets.tsv");
    assert!(targets.len() >= 6);
    let d = tmpdir("feed");
    let mut inputs = Vec::new();
    for t in &targets {
        let p = d.join(format!("entropyservice-{}", t.rust));
        fs::write(&p, fake_elf(t.elf.0, t.elf.1, t.elf.2, false)).unwrap();
        inputs.push((t, p));
    }
    let mut r = [0u8; 40];
    r[0] = 0x0f; // a key id with a leading zero nibble, printed without it
    let keys = feed::Keys {
        usign: usign::SecretKey::generate(&r),
        apk: apk::PrivateKey::from_random(&[7u8; 32]).unwrap(),
    };
    let meta = feed::Meta {
        version: "0.1.0-r1".into(),
        maintainer: "t".into(),
        epoch: 1700000000,
    };
    let out = d.join("out");
    feed::build(&out, &root().join("openwrt/files"), &inputs, &meta, &keys).expect("feed builds");
    let arches: Vec<String> = targets.iter().flat_map(|t| t.arches.clone()).collect();
    let upub =
        usign::PublicKey::parse(&text(&out.join("keys").join(feed::USIGN_PUB_NAME))).unwrap();
    let apub = apk::PublicKey::from_pem(&text(&out.join("keys").join(feed::APK_PUB_NAME))).unwrap();
    let lines = feed::check(&out, &upub, &apub, &arches).expect("feed checks");
    assert_eq!(lines.len(), arches.len());

    // the apk layout of package-pack.mk
    let a = read(&out.join("apk/mips_24kc/entropyservice-0.1.0-r1.apk"));
    let pkg = apk::read_package(&a, Some(&apub)).unwrap();
    let get = |p: &str| {
        pkg.files
            .iter()
            .find(|f| f.path == p)
            .unwrap_or_else(|| panic!("{p} missing"))
    };
    assert_eq!(
        get("lib/apk/packages/entropyservice.rusers").data,
        b"entropyservice:entropyservice\n"
    );
    let list = String::from_utf8(get("lib/apk/packages/entropyservice.list").data.clone()).unwrap();
    assert!(
        list.contains("/etc/init.d/entropyservice\n")
            && list.contains("/etc/uci-defaults/90-entropyservice\n"),
        "{list}"
    );
    assert_eq!(
        get("lib/apk/packages/entropyservice.conffiles").data,
        b"/etc/config/entropyservice\n/etc/entropyservice/id_client\n/etc/entropyservice/id_client.pub\n"
    );
    assert_eq!(
        get("lib/upgrade/keep.d/entropyservice").data,
        b"/etc/entropyservice/id_client\n/etc/entropyservice/id_client.pub\n"
    );
    assert_eq!(
        get("etc/hotplug.d/iface/90-entropyservice").data,
        read(&root().join("openwrt/files/entropyservice.hotplug"))
    );
    let cfg = read(&root().join("openwrt/files/entropyservice.config"));
    assert_eq!(
        String::from_utf8(
            get("lib/apk/packages/entropyservice.conffiles_static")
                .data
                .clone()
        )
        .unwrap(),
        format!(
            "/etc/config/entropyservice {}\n",
            adb::hex(&Sha256::digest(&cfg))
        )
    );
    assert_eq!(get("etc/config/entropyservice").mode, 0o600);
    let post = &pkg
        .scripts
        .iter()
        .find(|(n, _)| n == "post-install")
        .unwrap()
        .1;
    assert!(
        post.contains("export pkgname=\"entropyservice\"\nadd_group_and_user\ndefault_postinst\n"),
        "{post}"
    );
    let up = &pkg
        .scripts
        .iter()
        .find(|(n, _)| n == "post-upgrade")
        .unwrap()
        .1;
    assert!(
        up.starts_with("#!/bin/sh\nexport PKG_UPGRADE=1\n[ \"${IPKG_NO_SCRIPT}\""),
        "{up}"
    );
    let pre = &pkg
        .scripts
        .iter()
        .find(|(n, _)| n == "pre-deinstall")
        .unwrap()
        .1;
    assert!(pre.ends_with("default_prerm\n"), "{pre}");
    let sig = text(&out.join("opkg/mips_24kc/Packages.sig"));
    assert!(sig.starts_with(&format!(
        "untrusted comment: signed by key {}\n",
        usign::key_id(&keys.usign.fingerprint)
    )));
    assert!(!usign::key_id(&keys.usign.fingerprint).starts_with('0'));

    // a changed Packages or a swapped .apk is caught by the checker
    let p = out.join("opkg/x86_64/Packages");
    let mut packages = read(&p);
    packages.extend_from_slice(b"\n");
    fs::write(&p, &packages).unwrap();
    let e = feed::check(&out, &upub, &apub, &arches).unwrap_err();
    assert!(
        e.0.contains("x86_64: Packages.sig: verification failed"),
        "{}",
        e.0
    );
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn feed_refuses_wrong_binaries_and_keeps_the_old_feed() {
    let targets = feed::read_targets(&root().join("scripts/targets.tsv")).unwrap();
    let t = targets
        .iter()
        .find(|t| t.rust == "aarch64-unknown-linux-musl")
        .expect("aarch64 in table");
    let d = tmpdir("refuse");
    let keys = feed::Keys {
        usign: usign::SecretKey::generate(&[3; 40]),
        apk: apk::PrivateKey::from_random(&[5u8; 32]).unwrap(),
    };
    let meta = feed::Meta {
        version: "0.1.0-r1".into(),
        maintainer: "t".into(),
        epoch: 1,
    };
    let out = d.join("out");
    fs::create_dir_all(out.join("opkg")).unwrap();
    fs::write(out.join("opkg/old"), b"old").unwrap();
    let p = d.join("entropyservice-aarch64-unknown-linux-musl");
    fs::write(&p, fake_elf(2, 1, 62, false)).unwrap();
    let e = feed::build(
        &out,
        &root().join("openwrt/files"),
        &[(t, p.clone())],
        &meta,
        &keys,
    )
    .unwrap_err();
    assert_eq!(
        e.0,
        format!(
            "{} is ELF class/data/machine '2 1 62', but aarch64-unknown-linux-musl needs '2 1 183'",
            p.display()
        )
    );
    fs::write(&p, fake_elf(2, 1, 183, true)).unwrap();
    let e = feed::build(
        &out,
        &root().join("openwrt/files"),
        &[(t, p.clone())],
        &meta,
        &keys,
    )
    .unwrap_err();
    assert!(
        e.0.ends_with("has a program interpreter: not a static binary"),
        "{}",
        e.0
    );
    assert_eq!(
        read(&out.join("opkg/old")),
        b"old",
        "a failed build leaves the old feed"
    );
    let bad = feed::Meta {
        version: "0.1.0+x-r1".into(),
        maintainer: "t".into(),
        epoch: 1,
    };
    fs::write(&p, fake_elf(2, 1, 183, false)).unwrap();
    assert!(
        feed::build(&out, &root().join("openwrt/files"), &[(t, p)], &bad, &keys)
            .unwrap_err()
            .0
            .contains("not valid for apk")
    );
    let _ = fs::remove_dir_all(&d);
}

#[test]
fn elf_check_finds_dt_needed_and_survives_garbage() {
    // ELF64 LE x86-64 with one PT_DYNAMIC (2) whose section holds DT_NEEDED (1)
    let mut b = vec![0u8; 512];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    b[64..68].copy_from_slice(&2u32.to_le_bytes()); // PT_DYNAMIC
    b[72..80].copy_from_slice(&256u64.to_le_bytes()); // p_offset
    b[96..104].copy_from_slice(&32u64.to_le_bytes()); // p_filesz
    b[256..264].copy_from_slice(&1u64.to_le_bytes()); // DT_NEEDED
    let e = feed::check_elf(&b, "x", (2, 1, 62), "t").unwrap_err();
    assert_eq!(e.0, "x needs shared libraries: not a static binary");
    // a static-pie style PT_DYNAMIC without DT_NEEDED is fine
    b[256..264].copy_from_slice(&0u64.to_le_bytes());
    feed::check_elf(&b, "x", (2, 1, 62), "t").expect("no DT_NEEDED: static");
    // absurd offsets are an error, not a crash
    b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(feed::check_elf(&b, "x", (2, 1, 62), "t")
        .unwrap_err()
        .0
        .contains("truncated"));
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[72..80].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(feed::check_elf(&b, "x", (2, 1, 62), "t")
        .unwrap_err()
        .0
        .contains("truncated"));
    assert!(feed::check_elf(b"\x7fELF", "x", (2, 1, 62), "t")
        .unwrap_err()
        .0
        .contains("not an ELF"));
}

#[test]
fn reader_survives_damaged_files() {
    let v = vectors().join("apk-v3");
    let good = plain(&read(&v.join("esvector-1.0-r1.apk")));
    // every truncation and every single-byte change: an error or a parse, never a panic
    for n in 0..good.len() {
        let _ = apk::read_package(&good[..n], Some(&vector_pub()));
        let _ = apk::dump(&good[..n], &[]);
    }
    for i in (0..good.len()).step_by(3) {
        let mut d = good.clone();
        d[i] ^= 0xff;
        let _ = apk::read_package(&d, None);
        let _ = apk::dump(&d, &[]);
        let _ = apk::read_index(&d, None);
    }
}

#[test]
fn written_packages_and_indexes_parse_back_to_their_input() {
    let key = apk::PrivateKey::from_random(&[11u8; 32]).unwrap();
    let tree = vector_tree();
    let info = vector_info();
    let built =
        apk::build_package(&info, &tree, &vector_scripts(), 1767225600, Some(&key)).unwrap();
    let pkg = apk::read_package(&built.file, Some(&key.public())).unwrap();
    let mut want: Vec<(String, u32, Vec<u8>)> = tree
        .iter()
        .map(|f| (f.path.clone(), f.mode, f.data.clone()))
        .collect();
    let mut got: Vec<(String, u32, Vec<u8>)> = pkg
        .files
        .iter()
        .map(|f| (f.path.clone(), f.mode, f.data.clone()))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(pkg
        .files
        .iter()
        .all(|f| f.user == "root" && f.group == "root" && f.mtime == 1767225600));
    let field = |k: &str| {
        pkg.fields
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("name"), info.name);
    assert_eq!(field("version"), info.version);
    assert_eq!(field("description"), info.description);
    assert_eq!(field("arch"), info.arch);
    assert_eq!(field("maintainer"), info.maintainer);
    assert_eq!(field("depends"), "libc");
    assert_eq!(
        field("installed-size"),
        tree.iter().map(|f| f.data.len()).sum::<usize>().to_string()
    );
    let scripts: Vec<(String, String)> = vector_scripts()
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    assert_eq!(pkg.scripts, scripts);
    let idx = apk::build_index(
        &[apk::IndexEntry {
            adb: &built.adb,
            file_size: built.file.len() as u64,
        }],
        Some(&key),
    )
    .unwrap();
    let entries = apk::read_index(&idx, Some(&key.public())).unwrap();
    assert_eq!(entries.len(), 1);
    let get = |k: &str| {
        entries[0]
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(get("file-size"), built.file.len().to_string());
    assert_eq!(get("hashes"), adb::hex(&Sha256::digest(&built.adb)));
    for k in [
        "name",
        "version",
        "description",
        "arch",
        "license",
        "origin",
        "maintainer",
        "url",
        "depends",
    ] {
        assert_eq!(get(k), field(k), "{k}");
    }
}
