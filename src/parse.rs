//! Parsers for everything that comes from outside: the client's request
//! (SSH_ORIGINAL_COMMAND), the peer address (SSH_CONNECTION / SSH_CLIENT),
//! CIDR lists, durations, `[USER@]HOST`, names and the client's `--server`
//! specs. Pure functions, no I/O.

use core::net::{IpAddr, Ipv6Addr};

/// Longest request accepted from a client.
pub const MAX_REQUEST: usize = 64;

/// What a connecting client asked the server for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Stream until the client hangs up (empty command, or the v2 client's
    /// `cat /dev/random`).
    Stream,
    /// Send exactly this many bytes, then exit.
    Get(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    TooLong,
    UnknownVerb,
    MissingCount,
    BadCount,
    TooLarge,
    TrailingJunk,
}

impl RequestError {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestError::TooLong => "request longer than 64 bytes",
            RequestError::UnknownVerb => "unknown request; send `get N` or nothing",
            RequestError::MissingCount => "`get` needs a byte count, e.g. `get 64`",
            RequestError::BadCount => "byte count must be a positive decimal number",
            RequestError::TooLarge => "byte count is larger than this server's --max-bytes",
            RequestError::TrailingJunk => "unexpected text after the byte count",
        }
    }
}

/// Parses SSH_ORIGINAL_COMMAND. `max` bounds `get N`.
pub fn request(cmd: &str, max: u64) -> Result<Request, RequestError> {
    if cmd.len() > MAX_REQUEST {
        return Err(RequestError::TooLong);
    }
    let mut words = cmd.split_ascii_whitespace();
    let verb = match words.next() {
        None => return Ok(Request::Stream),
        Some(v) => v,
    };
    match verb {
        "cat" => match (words.next(), words.next()) {
            (Some("/dev/random" | "/dev/urandom"), None) => Ok(Request::Stream),
            _ => Err(RequestError::UnknownVerb),
        },
        "get" => {
            let n = words.next().ok_or(RequestError::MissingCount)?;
            let n = decimal(n).ok_or(RequestError::BadCount)?;
            if words.next().is_some() {
                return Err(RequestError::TrailingJunk);
            }
            if n == 0 {
                return Err(RequestError::BadCount);
            }
            if n > max {
                return Err(RequestError::TooLarge);
            }
            Ok(Request::Get(n))
        }
        _ => Err(RequestError::UnknownVerb),
    }
}

/// Plain unsigned decimal: digits only, no sign, no overflow.
pub fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A duration in seconds: `90`, `90s`, `10m`, `2h`, `1d`, or `500ms`
/// (returned in nanoseconds). Bounded to 100 years.
pub fn duration_ns(s: &str) -> Option<u64> {
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1_000_000u64)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1_000_000_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000_000_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000_000_000)
    } else if let Some(n) = s.strip_suffix('d') {
        (n, 86_400_000_000_000)
    } else {
        (s, 1_000_000_000)
    };
    let v = decimal(num)?.checked_mul(mul)?;
    (v <= 100 * 365 * 86_400_000_000_000).then_some(v)
}

/// Longest zone: an interface name (IFNAMSIZ - 1) or index.
pub const MAX_ZONE: usize = 15;

/// The zone of a scoped IPv6 address (RFC 4007 `ADDR%ZONE`), as sshd and
/// dropbear print a link-local peer: 1 to 15 of letters, digits, '.', '_',
/// '-' (an interface name or index; never '/', ':', '%' or a space).
pub fn is_zone(s: &str) -> bool {
    (1..=MAX_ZONE).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub type Zone = heapless::String<MAX_ZONE>;

/// `ADDR` or `IPV6%ZONE`. A zone only follows a plain IPv6 address (not an
/// IPv4-mapped one, which folds to IPv4 and has no scope).
fn scoped_address(s: &str) -> Option<(IpAddr, Option<Zone>)> {
    match s.split_once('%') {
        None => Some((canonical(s.parse().ok()?), None)),
        Some((a, z)) => {
            let v6: Ipv6Addr = a.parse().ok()?;
            if v6.to_ipv4_mapped().is_some() || !is_zone(z) {
                return None;
            }
            Some((IpAddr::V6(v6), Some(Zone::try_from(z).ok()?)))
        }
    }
}

/// The connecting peer: its address and, for a scoped IPv6 address
/// (link-local `fe80::1%eth0`), the zone it came in on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub ip: IpAddr,
    pub zone: Option<Zone>,
}

impl core::fmt::Display for Peer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut s = String::with_capacity(48);
        push_ip(&mut s, self.ip);
        if let Some(z) = &self.zone {
            s.push('%');
            s.push_str(z);
        }
        f.write_str(&s)
    }
}

/// `ip` as std's Display writes it (RFC 5952 for IPv6: lower-case hex, the
/// first longest run of two or more zero groups as `::`), without std's
/// address formatting, about 2.5 KB on MIPS.
fn push_ip(s: &mut String, ip: IpAddr) {
    let v6 = match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                s.push_str(crate::text::Num::new(u64::from(*o)).as_str());
            }
            return;
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => {
                s.push_str("::ffff:");
                return push_ip(s, IpAddr::V4(v4));
            }
            None => v6.segments(),
        },
    };
    let (mut run, mut run_len, mut i) = (8, 0, 0);
    while i < 8 {
        let start = i;
        while i < 8 && v6[i] == 0 {
            i += 1;
        }
        if i - start > run_len.max(1) {
            (run, run_len) = (start, i - start);
        }
        i += 1;
    }
    let push_groups = |s: &mut String, groups: &[u16]| {
        for (i, g) in groups.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            let digits = 4 - (g.leading_zeros() as usize / 4).min(3);
            for k in (0..digits).rev() {
                s.push(char::from(
                    b"0123456789abcdef"[usize::from(g >> (4 * k)) & 15],
                ));
            }
        }
    };
    if run_len == 0 {
        push_groups(s, &v6);
    } else {
        push_groups(s, &v6[..run]);
        s.push_str("::");
        push_groups(s, &v6[run + run_len..]);
    }
}

/// The peer: first word of SSH_CONNECTION or SSH_CLIENT (`ADDR PORT ...`).
/// IPv4-mapped IPv6 addresses are folded to IPv4; a link-local peer keeps
/// its zone (`fe80::1%eth0`).
pub fn peer(var: &str) -> Option<Peer> {
    let mut words = var.split_ascii_whitespace();
    let addr = words.next()?;
    let port = words.next()?;
    decimal(port).filter(|p| *p <= 65535)?;
    let (ip, zone) = scoped_address(addr)?;
    Some(Peer { ip, zone })
}

/// The peer's address alone (see [`peer`]).
pub fn peer_address(var: &str) -> Option<IpAddr> {
    peer(var).map(|p| p.ip)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// One network: address, prefix length and, for a scoped IPv6 network
/// (`fe80::%eth0/64`), the one zone it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
    zone: Option<Zone>,
}

impl Cidr {
    /// `ADDR[/PREFIX]` or, RFC 4007 style, `IPV6%ZONE[/PREFIX]`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let (addr, zone) = scoped_address(a)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => u8::try_from(decimal(p)?).ok()?,
            None => max,
        };
        (prefix <= max).then_some(Cidr { addr, prefix, zone })
    }

    /// The peer's address is in this network and, if the network names a
    /// zone, the peer came in on that zone. A network without a zone
    /// matches its addresses on every zone.
    pub fn admits(&self, peer: &Peer) -> bool {
        self.contains(peer.ip) && (self.zone.is_none() || self.zone == peer.zone)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = bits as usize / 8;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    rest == 0 || (a[full] ^ b[full]) >> (8 - rest) == 0
}

/// Parses a comma-separated CIDR list; `None` if any entry is malformed.
pub fn cidr_list(s: &str) -> Option<heapless::Vec<Cidr, 32>> {
    let mut v = heapless::Vec::new();
    for part in s.split(',') {
        v.push(Cidr::parse(part.trim())?).ok()?;
    }
    Some(v)
}

/// A name that may appear in a file name and a log line: 1 to 64 of
/// `[A-Za-z0-9._-]`, not starting with `.` or `-`.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A host name or address that can be passed to an SSH client as one argument
/// without being taken for an option: no leading `-`, no spaces, no `@`. A
/// link-local IPv6 address may carry its zone (`fe80::1%eth0`).
pub fn is_safe_host(s: &str) -> bool {
    if let Some((a, z)) = s.split_once('%') {
        return a.parse::<Ipv6Addr>().is_ok() && is_zone(z);
    }
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
}

/// Splits `[USER@]HOST`. Both parts must be safe.
pub fn user_host(s: &str) -> Option<(Option<&str>, &str)> {
    match s.split_once('@') {
        Some((u, h)) => (is_safe_name(u) && is_safe_host(h)).then_some((Some(u), h)),
        None => is_safe_host(s).then_some((None, s)),
    }
}

/// The fields of one `--server` spec, before any file is looked at.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec<'a> {
    pub host: &'a str,
    pub port: Option<u16>,
    pub user: Option<&'a str>,
    pub key: Option<&'a str>,
    pub host_key: Option<&'a str>,
}

/// Parses `--server "host=H,port=P,user=U,key=FILE,host-key=TYPE BASE64"`
/// (pure; the client's `make_server` then checks names, the key file and the host key).
pub fn parse_server_spec(spec: &str) -> core::result::Result<Spec<'_>, &'static str> {
    let (mut host, mut port, mut user, mut key, mut hk) = (None, None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or("expected key=value fields separated by commas")?;
        match k.trim() {
            "host" => host = Some(v.trim()),
            "port" => {
                port = Some(
                    decimal(v.trim())
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0)
                        .ok_or("port must be 1-65535")?,
                )
            }
            "user" => user = Some(v.trim()),
            "key" => key = Some(v.trim()),
            "host-key" => hk = Some(v.trim()),
            _ => return Err("unknown field; use host, port, user, key, host-key"),
        }
    }
    Ok(Spec {
        host: host.ok_or("host= is missing")?,
        port,
        user,
        key,
        host_key: hk,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_print_as_std_prints_them() {
        use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let mut cases: Vec<IpAddr> = [
            "0.0.0.0",
            "127.0.0.1",
            "192.168.1.10",
            "255.255.255.255",
            "::",
            "::1",
            "1::",
            "fe80::1",
            "2001:db8::ff00:42:8329",
            "1:0:0:2::3",
            "1:0:0:1:0:0:1:1",
            "1:0:1:1:1:1:1:1",
            "0:0:1::",
            "::2:0:0:3",
            "abcd:ef01:2345:6789:abcd:ef01:2345:6789",
            "1:2:3:4:5:6:7:0",
            "0:1:2:3:4:5:6:7",
            "::ffff:0:1",
            "64:ff9b::c000:201",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        // Every pattern of zero and non-zero groups, and every octet.
        for bits in 0u16..256 {
            let g: Vec<u16> = (0..8)
                .map(|i| {
                    if bits >> i & 1 == 1 {
                        0x0a0 << (i % 3)
                    } else {
                        0
                    }
                })
                .collect();
            cases.push(IpAddr::V6(Ipv6Addr::new(
                g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
            )));
            cases.push(IpAddr::V4(Ipv4Addr::new(bits as u8, 0, 9, 10)));
        }
        for ip in cases {
            let mut s = String::new();
            super::push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string(), "{ip:?}");
        }
        let p = super::peer("fe80::1%eth0 22 ::1 22").unwrap();
        assert_eq!(p.to_string(), "fe80::1%eth0");
    }

    use super::*;

    #[test]
    fn requests() {
        assert_eq!(request("", 100), Ok(Request::Stream));
        assert_eq!(request("cat /dev/random", 100), Ok(Request::Stream));
        assert_eq!(request("get 64", 100), Ok(Request::Get(64)));
        assert_eq!(request("  get   100 ", 100), Ok(Request::Get(100)));
        assert_eq!(request("get 101", 100), Err(RequestError::TooLarge));
        assert_eq!(
            request("get 99999999999", 1 << 20),
            Err(RequestError::TooLarge)
        );
        assert_eq!(
            request("get 999999999999999999999", 100),
            Err(RequestError::BadCount)
        );
        assert_eq!(request("get -1", 100), Err(RequestError::BadCount));
        assert_eq!(request("get +1", 100), Err(RequestError::BadCount));
        assert_eq!(request("get 0", 100), Err(RequestError::BadCount));
        assert_eq!(request("get", 100), Err(RequestError::MissingCount));
        assert_eq!(
            request("get 10; rm -rf /", 100),
            Err(RequestError::BadCount)
        );
        assert_eq!(
            request("get 10 ; rm -rf /", 100),
            Err(RequestError::TrailingJunk)
        );
        assert_eq!(request("sh", 100), Err(RequestError::UnknownVerb));
        assert_eq!(
            request("cat /etc/shadow", 100),
            Err(RequestError::UnknownVerb)
        );
        assert_eq!(
            request(&"get 1".repeat(20), 100),
            Err(RequestError::TooLong)
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ns("1s"), Some(1_000_000_000));
        assert_eq!(duration_ns("10m"), Some(600_000_000_000));
        assert_eq!(duration_ns("250ms"), Some(250_000_000));
        assert_eq!(duration_ns("3"), Some(3_000_000_000));
        assert_eq!(duration_ns("1d"), Some(86_400_000_000_000));
        assert_eq!(duration_ns("-1s"), None);
        assert_eq!(duration_ns("s"), None);
        assert_eq!(duration_ns("99999999999999d"), None);
    }

    #[test]
    fn peers_and_cidrs() {
        let p = peer_address("127.0.0.2 50000 127.0.0.1 22").unwrap();
        assert!(Cidr::parse("127.0.0.0/8").unwrap().contains(p));
        assert!(!Cidr::parse("127.0.0.1/32").unwrap().contains(p));
        assert!(Cidr::parse("127.0.0.2").unwrap().contains(p));
        let v6 = peer_address("::1 40000 ::1 22").unwrap();
        assert!(Cidr::parse("::1/128").unwrap().contains(v6));
        assert!(!Cidr::parse("127.0.0.0/8").unwrap().contains(v6));
        let mapped = peer_address("::ffff:10.1.2.3 1 2 3").unwrap();
        assert!(Cidr::parse("10.0.0.0/8").unwrap().contains(mapped));
        assert!(Cidr::parse("fe80::/10")
            .unwrap()
            .contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(p));
        assert_eq!(peer_address(""), None);
        assert_eq!(peer_address("127.0.0.1"), None);
        assert_eq!(peer_address("300.1.1.1 22"), None);
        assert_eq!(peer_address("1.2.3.4 99999"), None);
        assert_eq!(Cidr::parse("1.2.3.4/33"), None);
        assert_eq!(Cidr::parse("::/129"), None);
        assert!(cidr_list("127.0.0.1/32, ::1").is_some());
        assert!(cidr_list("127.0.0.1/32,").is_none());
    }

    #[test]
    fn link_local_peers_keep_their_zone() {
        let p = peer("fe80::1%eth0 40000 fe80::2%eth0 22").unwrap();
        assert_eq!(p.ip, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(p.zone.as_deref(), Some("eth0"));
        assert_eq!(p.to_string(), "fe80::1%eth0");
        // SSH_CLIENT form, a numeric zone, a VLAN interface name.
        assert!(peer("fe80::1%3 40000 22").is_some());
        assert!(peer("fe80::a:b%br-lan.10 1 2 3").is_some());
        let any = Cidr::parse("fe80::/10").unwrap();
        assert!(any.admits(&p));
        let on_eth0 = Cidr::parse("fe80::%eth0/64").unwrap();
        let on_lan = Cidr::parse("fe80::%br-lan/64").unwrap();
        assert!(on_eth0.admits(&p));
        assert!(!on_lan.admits(&p));
        assert!(!on_eth0.admits(&peer("fe80::1 40000 x 22").unwrap()));
        assert!(Cidr::parse("fe80::1%eth0").unwrap().admits(&p));
        assert!(cidr_list("fe80::%eth0/64, 10.0.0.0/8").is_some());
        // Malformed zones and zones where none belongs.
        for bad in [
            "fe80::1% 1 2 3",
            "fe80::1%%eth0 1 2 3",
            "fe80::1%eth0%1 1 2 3",
            "fe80::1%eth0/1 1 2 3",
            "fe80::1%0123456789abcdef 1 2 3",
            "10.0.0.1%eth0 1 2 3",
            "::ffff:10.0.0.1%eth0 1 2 3",
            "fe80::1%eth:0 1 2 3",
        ] {
            assert_eq!(peer(bad), None, "{bad}");
        }
        assert_eq!(Cidr::parse("fe80::/64%eth0"), None);
        assert_eq!(Cidr::parse("10.0.0.0%eth0/8"), None);
    }

    #[test]
    fn names_and_hosts() {
        assert!(is_safe_name("router1"));
        assert!(!is_safe_name("../etc"));
        assert!(!is_safe_name("-oProxyCommand"));
        assert_eq!(user_host("root@10.0.0.1"), Some((Some("root"), "10.0.0.1")));
        assert_eq!(user_host("::1"), Some((None, "::1")));
        assert_eq!(user_host("-oProxyCommand=x"), None);
        assert_eq!(user_host("a b"), None);
        assert_eq!(
            user_host("root@fe80::1%eth0"),
            Some((Some("root"), "fe80::1%eth0"))
        );
        assert!(is_safe_host("fe80::1%br-lan"));
        assert!(!is_safe_host("host%eth0"));
        assert!(!is_safe_host("fe80::1%-oProxyCommand=x"));
        assert!(!is_safe_host("fe80::1%eth0 x"));
        assert!(!is_safe_host("%eth0"));
    }

    #[test]
    fn server_specs() {
        let s = parse_server_spec("host=h, port=2222 ,user=u,key=/k,host-key=ssh-ed25519 AAAA");
        assert_eq!(
            s,
            Ok(Spec {
                host: "h",
                port: Some(2222),
                user: Some("u"),
                key: Some("/k"),
                host_key: Some("ssh-ed25519 AAAA"),
            })
        );
        assert_eq!(parse_server_spec("host=h").map(|s| s.port), Ok(None));
        assert_eq!(parse_server_spec("port=22"), Err("host= is missing"));
        assert_eq!(
            parse_server_spec("host=h,port=0"),
            Err("port must be 1-65535")
        );
        assert_eq!(
            parse_server_spec("host=h,port=65536"),
            Err("port must be 1-65535")
        );
        assert!(parse_server_spec("host=h,bogus=1").is_err());
        assert!(parse_server_spec("h").is_err());
    }
}
