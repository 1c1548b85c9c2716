//! SSH_CONNECTION / SSH_CLIENT -> parse::peer / parse::peer_address, and
//! --allow-from -> parse::Cidr::parse / parse::cidr_list / Cidr::contains /
//! Cidr::admits, checked against an independent oracle: its own address
//! text parser (RFC 4291 section 2.2 forms as std accepts them, written
//! here without std's parser, which the code under test uses), its own
//! zone rules (RFC 4007 `%ZONE`) and a `contains` that masks the address
//! bytes one by one (the code under test compares whole bytes, then shifts).
//!
//! Input: `PEER_VAR\nCIDR_LIST` (everything after the first newline is the
//! CIDR list; each comma-separated entry is also parsed on its own).
#![no_main]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use entropyservice::parse::{cidr_list, peer, peer_address, Cidr, Peer};
use libfuzzer_sys::fuzz_target;

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`: ten zero bytes, two
/// 0xff bytes, the IPv4 address) stands for that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    if let IpAddr::V6(v6) = ip {
        let b = v6.octets();
        if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff {
            return IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]));
        }
    }
    ip
}

fn digits(s: &str, radix: u32, max_len: usize) -> Option<u128> {
    if s.is_empty() || s.len() > max_len || !s.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some(s.chars().fold(0, |v, c| {
        v * u128::from(radix) + u128::from(c.to_digit(radix).unwrap())
    }))
}

/// Dotted quad: four decimal octets, no leading zeros (std's rule).
fn oracle_v4(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for p in parts {
        if p.len() > 1 && p.starts_with('0') {
            return None;
        }
        let n = digits(p, 10, 3)?;
        if n > 255 {
            return None;
        }
        v = v << 8 | n as u32;
    }
    Some(v)
}

/// Colon-separated groups of 1-4 hex digits; the last may be a dotted quad
/// (two groups) when `v4_tail`.
fn groups(s: &str, v4_tail: bool) -> Option<Vec<u16>> {
    if s.is_empty() {
        return Some(vec![]);
    }
    let parts: Vec<&str> = s.split(':').collect();
    let mut g = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if v4_tail && i + 1 == parts.len() && p.contains('.') {
            let v = oracle_v4(p)?;
            g.push((v >> 16) as u16);
            g.push(v as u16);
        } else {
            g.push(digits(p, 16, 4)? as u16);
        }
    }
    Some(g)
}

/// Eight groups, or fewer with one `::` standing for one or more zero groups.
fn oracle_v6(s: &str) -> Option<u128> {
    let g = match s.find("::") {
        None => {
            let g = groups(s, true)?;
            (g.len() == 8).then_some(g)?
        }
        Some(i) => {
            let (h, t) = (&s[..i], &s[i + 2..]);
            if t.contains("::") {
                return None;
            }
            let (h, t) = (groups(h, false)?, groups(t, true)?);
            if h.len() + t.len() > 7 {
                return None;
            }
            let mut g = h;
            g.resize(8 - t.len(), 0);
            g.extend(t);
            g
        }
    };
    Some(g.iter().fold(0u128, |v, &x| v << 16 | u128::from(x)))
}

fn oracle_ip(s: &str) -> Option<IpAddr> {
    if let Some(v) = oracle_v4(s) {
        return Some(IpAddr::V4(Ipv4Addr::from(v)));
    }
    oracle_v6(s).map(|v| IpAddr::V6(Ipv6Addr::from(v)))
}

/// `ADDR` or `IPV6%ZONE`: a zone is 1-15 of letters, digits, '.', '_', '-'
/// and only follows an IPv6 address that is not IPv4-mapped.
fn oracle_scoped(s: &str) -> Option<(IpAddr, Option<String>)> {
    match s.find('%') {
        None => Some((canonical(oracle_ip(s)?), None)),
        Some(i) => {
            let (a, z) = (&s[..i], &s[i + 1..]);
            let v6 = oracle_v6(a)?;
            let zone_ok = (1..=15).contains(&z.len())
                && z.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
            (zone_ok && v6 >> 32 != 0xffff)
                .then(|| (IpAddr::V6(Ipv6Addr::from(v6)), Some(z.to_string())))
        }
    }
}

type Net = (IpAddr, u32, Option<String>);

/// The oracle's view of a CIDR: `ADDR[%ZONE][/PREFIX]`.
fn oracle_cidr(s: &str) -> Option<Net> {
    let (a, p) = match s.find('/') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (addr, zone) = oracle_scoped(a)?;
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
    (prefix <= max).then_some((addr, prefix, zone))
}

/// The mask of byte `i` of an address for a `prefix`-bit network: its
/// leading bits that fall inside the prefix set, the rest clear.
fn mask_byte(prefix: u32, i: usize) -> u8 {
    let bits = prefix.saturating_sub(8 * i as u32).min(8);
    (0xff00u16 >> bits) as u8
}

/// Byte by byte: the address and the network agree on every bit the
/// prefix covers. Addresses of the other family are never contained.
fn oracle_contains(net: &Net, ip: IpAddr) -> bool {
    let (n, a): (Vec<u8>, Vec<u8>) = match (net.0, canonical(ip)) {
        (IpAddr::V4(n), IpAddr::V4(a)) => (n.octets().into(), a.octets().into()),
        (IpAddr::V6(n), IpAddr::V6(a)) => (n.octets().into(), a.octets().into()),
        _ => return false,
    };
    n.iter()
        .zip(&a)
        .enumerate()
        .all(|(i, (x, y))| (x ^ y) & mask_byte(net.1, i) == 0)
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

fn oracle_admits(net: &Net, p: &Peer) -> bool {
    oracle_contains(net, p.ip) && (net.2.is_none() || net.2.as_deref() == p.zone.as_deref())
}

fn check_cidr(s: &str, peer: Option<&Peer>, deep: bool) -> Option<Cidr> {
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
        probes(o.0, peer.map(|p| p.ip))
    } else {
        [o.0].into_iter().chain(peer.map(|p| p.ip)).collect()
    };
    for ip in ips {
        assert_eq!(
            c.contains(ip),
            oracle_contains(&o, ip),
            "{s:?} contains {ip}"
        );
        // The same address with no zone, with the network's zone, another.
        for zone in [None, o.2.clone(), Some("zz9".to_string())] {
            let p = Peer {
                ip,
                zone: zone.as_deref().map(|z| z.try_into().unwrap()),
            };
            assert_eq!(c.admits(&p), oracle_admits(&o, &p), "{s:?} admits {p}");
        }
    }
    if let Some(p) = peer {
        assert_eq!(c.admits(p), oracle_admits(&o, p), "{s:?} admits {p}");
    }
    // Same network written canonically parses to the same value.
    let text = match &o.2 {
        Some(z) => format!("{}%{z}/{}", o.0, o.1),
        None => format!("{}/{}", o.0, o.1),
    };
    assert_eq!(Cidr::parse(&text).as_ref(), Some(&c), "{s:?} vs {text:?}");
    Some(c)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let (var, list) = text.split_once('\n').unwrap_or((text, ""));

    let got = peer(var);
    let mut words = var.split_ascii_whitespace();
    let expect = match (words.next(), words.next()) {
        (Some(a), Some(p)) if digits(p, 10, 20).is_some_and(|p| p <= 65535) => oracle_scoped(a),
        _ => None,
    };
    assert_eq!(
        got.as_ref()
            .map(|p| (p.ip, p.zone.as_deref().map(String::from))),
        expect,
        "peer({var:?})"
    );
    assert_eq!(peer_address(var), got.as_ref().map(|p| p.ip));
    if let Some(p) = &got {
        if let IpAddr::V6(v6) = p.ip {
            assert!(u128::from(v6) >> 32 != 0xffff, "{p} not folded");
        }
        assert!(p.zone.is_none() || p.ip.is_ipv6());
        // Its printed form (the audit log's) parses back to the same peer.
        assert_eq!(peer(&format!("{p} 22 10.0.0.1 22")).as_ref(), Some(p));
        // A peer always matches its own host route and the catch-alls.
        let host = Cidr::parse(&p.to_string()).expect("own address");
        assert!(host.contains(p.ip) && host.admits(p));
        let any = if p.ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
        assert!(Cidr::parse(any).unwrap().admits(p));
    }

    let single = check_cidr(var.trim(), got.as_ref(), true);
    if let Some(c) = single {
        assert_eq!(cidr_list(var.trim()).map(|v| v.to_vec()), Some(vec![c]));
    }

    let parts: Vec<&str> = list.split(',').collect();
    let each: Vec<Option<Cidr>> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| check_cidr(p.trim(), got.as_ref(), i < 4))
        .collect();
    let all = cidr_list(list);
    if parts.len() <= 32 && each.iter().all(Option::is_some) {
        let want: Vec<Cidr> = each.into_iter().map(Option::unwrap).collect();
        assert_eq!(all.as_deref(), Some(&want[..]), "cidr_list({list:?})");
    } else {
        assert!(all.is_none(), "cidr_list({list:?}) = {all:?}");
    }
});
