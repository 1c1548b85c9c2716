//! SSH_CONNECTION / SSH_CLIENT -> parse::peer_address, and --allow-from
//! -> parse::Cidr::parse / parse::cidr_list / Cidr::contains, checked
//! against an independent bit-mask implementation.
//!
//! Input: `PEER_VAR\nCIDR_LIST` (everything after the first newline is the
//! CIDR list; each comma-separated entry is also parsed on its own).
#![no_main]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use entropyservice::parse::{cidr_list, decimal, peer_address, Cidr};
use libfuzzer_sys::fuzz_target;

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The oracle's view of a CIDR: what the text says, parsed by std.
fn oracle_cidr(s: &str) -> Option<(IpAddr, u32)> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr = canonical(a.parse().ok()?);
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        None => max,
        Some(p) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if p.len() > 20 {
                return None; // decimal() refuses more than 20 digits
            }
            let n: u128 = p.parse().ok()?;
            u32::try_from(n).ok()?
        }
    };
    (prefix <= max).then_some((addr, prefix))
}

fn oracle_contains(net: (IpAddr, u32), ip: IpAddr) -> bool {
    let (addr, prefix) = net;
    match (addr, canonical(ip)) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The network address, every single-bit neighbour, and the other family.
fn probes(addr: IpAddr, extra: Option<IpAddr>) -> Vec<IpAddr> {
    let mut v = vec![addr];
    match addr {
        IpAddr::V4(a) => {
            let x = u32::from(a);
            v.extend((0..32).map(|k| IpAddr::V4(Ipv4Addr::from(x ^ (1 << k)))));
            v.push(IpAddr::V6(a.to_ipv6_mapped())); // folds back to `a`
            v.push(IpAddr::V6(Ipv6Addr::from(x as u128)));
        }
        IpAddr::V6(a) => {
            let x = u128::from(a);
            v.extend((0..128).map(|k| IpAddr::V6(Ipv6Addr::from(x ^ (1 << k)))));
            v.push(IpAddr::V4(Ipv4Addr::from(x as u32)));
        }
    }
    v.extend(extra);
    v
}

fn check_cidr(s: &str, peer: Option<IpAddr>, deep: bool) -> Option<Cidr> {
    let c = Cidr::parse(s);
    let o = oracle_cidr(s);
    assert_eq!(
        c.is_some(),
        o.is_some(),
        "Cidr::parse({s:?}) = {c:?}, oracle {o:?}"
    );
    let (c, o) = (c?, o?);
    // All probes for the first few entries; the network and the peer for
    // the rest (keeps long lists fast).
    let ips = if deep {
        probes(o.0, peer)
    } else {
        [o.0].into_iter().chain(peer).collect()
    };
    for ip in ips {
        assert_eq!(
            c.contains(ip),
            oracle_contains(o, ip),
            "{s:?} contains {ip}"
        );
    }
    // Same network written canonically parses to the same value.
    let text = format!("{}/{}", o.0, o.1);
    assert_eq!(Cidr::parse(&text), Some(c), "{s:?} vs {text:?}");
    Some(c)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let (var, list) = text.split_once('\n').unwrap_or((text, ""));

    let peer = peer_address(var);
    let mut words = var.split_ascii_whitespace();
    let expect = match (words.next(), words.next()) {
        (Some(a), Some(p)) if decimal(p).is_some_and(|p| p <= 65535) => {
            a.parse::<IpAddr>().ok().map(canonical)
        }
        _ => None,
    };
    assert_eq!(peer, expect, "peer_address({var:?})");
    if let Some(ip) = peer {
        if let IpAddr::V6(v6) = ip {
            assert!(v6.to_ipv4_mapped().is_none(), "{ip} not folded");
        }
        assert_eq!(peer_address(&format!("{ip} 22 10.0.0.1 22")), Some(ip));
        // A peer always matches its own host route and the catch-alls.
        let host = Cidr::parse(&ip.to_string()).expect("own address");
        assert!(host.contains(ip));
        let any = if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        assert!(Cidr::parse(any).unwrap().contains(ip));
    }

    let single = check_cidr(var.trim(), peer, true);
    if let Some(c) = single {
        assert_eq!(cidr_list(var.trim()).map(|v| v.to_vec()), Some(vec![c]));
    }

    let parts: Vec<&str> = list.split(',').collect();
    let each: Vec<Option<Cidr>> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| check_cidr(p.trim(), peer, i < 4))
        .collect();
    let got = cidr_list(list);
    if parts.len() <= 32 && each.iter().all(Option::is_some) {
        let want: Vec<Cidr> = each.into_iter().map(Option::unwrap).collect();
        assert_eq!(got.as_deref(), Some(&want[..]), "cidr_list({list:?})");
    } else {
        assert!(got.is_none(), "cidr_list({list:?}) = {got:?}");
    }
});
