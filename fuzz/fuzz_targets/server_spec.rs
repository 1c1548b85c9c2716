//! `client --server "host=H,port=P,user=U,key=FILE,host-key=TYPE BASE64"`
//! and what it becomes: the ssh / dbclient argument vector.
//!
//! `parse::parse_server_spec` is the pure part of `--server` parsing (the
//! rest stats the key file); this target runs it, then the checks
//! `make_server` runs (`ssh::check_target`, `hostkey::PublicKey::parse`),
//! builds the argv with `ssh::arguments` and checks that no input can add
//! an option or a second destination.
//!
//! Input: the spec text.
#![no_main]

use entropyservice::hostkey::PublicKey;
use entropyservice::parse::{self, parse_server_spec};
use entropyservice::ssh::{arguments, check_target, host_with_port, Flavor, Program, Server};
use libfuzzer_sys::fuzz_target;

const COMMAND: &str = "get 4096";

fn check_argv(p: &Program, s: &Server) {
    let a = arguments(p, s, "/run/entropyservice/known_hosts", COMMAND, 10);
    let n = a.len();
    // The destination and the remote command come last, exactly once.
    assert_eq!(a[n - 1], COMMAND);
    assert_eq!(a[n - 2], s.host);
    assert!(!a[n - 2].starts_with('-'), "{a:?}");
    // Every element before them is an option we wrote or the value of one:
    // options and values alternate, so a value can never start an option.
    let mut i = 0;
    while i < n - 2 {
        let opt = &a[i];
        assert!(opt.starts_with('-'), "{a:?} at {i}");
        let takes_value = !matches!(opt.as_str(), "-T" | "-x" | "-a");
        i += 1;
        if takes_value {
            assert!(i < n - 2, "{a:?}");
            match opt.as_str() {
                "-l" => assert_eq!(a[i], s.user),
                "-p" => assert_eq!(a[i], s.port.to_string()),
                "-i" => assert_eq!(Some(&a[i]), s.key.as_ref()),
                "-o" => {
                    assert!(a[i].contains('='));
                    // HostKeyAlgorithms comes from the parsed key type only.
                    assert!(!a[i].contains(['\n', ' ']), "{a:?}");
                }
                _ => {}
            }
            i += 1;
        }
    }
    assert_eq!(a.iter().filter(|x| *x == "-l").count(), 1);
    assert_eq!(a.iter().filter(|x| *x == "-p").count(), 1);
}

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = core::str::from_utf8(data) else {
        return;
    };
    let Ok(f) = parse_server_spec(spec) else {
        return;
    };
    // make_server's pure checks.
    let user = f.user.unwrap_or("root");
    let ok_target = check_target(f.host, user).is_ok();
    assert_eq!(
        ok_target,
        parse::is_safe_host(f.host)
            && parse::is_safe_name(user)
            && host_with_port(f.host).is_none()
    );
    if !ok_target {
        return;
    }
    let Some(hk) = f.host_key else { return };
    let Ok(host_key) = PublicKey::parse(hk) else {
        return;
    };
    assert!(!f.host.starts_with('-') && !user.starts_with('-'));
    if let Some(p) = f.port {
        assert!(p >= 1);
    }
    for agent in [false, true] {
        let s = Server {
            host: f.host.into(),
            port: f.port.unwrap_or(22),
            user: user.into(),
            // check_key_file only stats the path; the path itself is one
            // argv element after -i whatever it holds.
            key: f.key.map(String::from),
            host_key: host_key.clone(),
            agent,
        };
        assert!(s.label().ends_with(&format!(":{}", s.port)));
        for flavor in [Flavor::Dropbear, Flavor::OpenSsh] {
            let p = Program {
                path: "/usr/bin/ssh".into(),
                flavor,
            };
            check_argv(&p, &s);
        }
    }
});
