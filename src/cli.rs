//! The command line: one plain struct per command, and a small parser driven
//! by one table per command ([`COMMANDS`]: each option's name, short alias
//! and kind). The help texts in `src/usage.rs` are checked against these
//! tables (`tests/offline.rs`), so help and parser cannot drift apart.
//!
//! The rules: `--name VALUE` (the next word, whatever it looks like, is the
//! value), switches without a value, an option given twice is refused unless
//! it may repeat (`--server`), numbers are plain decimal (an optional `+`,
//! no `0x`), `--` ends the options, `--help`, `-h` or `help` where no value is
//! expected asks for the help, and `-V` as the first word is `--version`.

/// What an option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No value; giving it again changes nothing.
    Switch,
    /// One value.
    Text,
    /// One value that must be given.
    Required,
    /// A value that may be given many times, kept in order (one such
    /// option per command at most).
    Many,
    /// A decimal number from 0 to this maximum.
    Num(u64),
}

const U16: Kind = Kind::Num(u16::MAX as u64);
const U32: Kind = Kind::Num(u32::MAX as u64);
const U64: Kind = Kind::Num(u64::MAX);

/// One option of a command.
pub struct Opt {
    /// `--name`
    pub long: &'static str,
    /// `-x`, or "" for none
    pub short: &'static str,
    pub kind: Kind,
}

const fn opt(long: &'static str, kind: Kind) -> Opt {
    Opt {
        long,
        short: "",
        kind,
    }
}

/// One command: its options, its positional argument (name, whether it
/// must be given) and how the parsed words become its struct.
pub struct Command {
    pub name: &'static str,
    pub opts: &'static [Opt],
    pub positional: Option<(&'static str, bool)>,
    build: fn(&Given) -> Cmd,
}

/// Every command of this build, in help order.
pub const COMMANDS: &[Command] = &[
    Command {
        name: "server",
        opts: SERVER,
        positional: None,
        build: server,
    },
    Command {
        name: "client",
        opts: CLIENT,
        positional: Some(("host", false)),
        build: client,
    },
    Command {
        name: "sink",
        opts: SINK,
        positional: None,
        build: sink,
    },
    Command {
        name: "seed",
        opts: SEED,
        positional: Some(("action", true)),
        build: seed,
    },
    Command {
        name: "status",
        opts: STATUS,
        positional: None,
        build: status,
    },
    #[cfg(feature = "admin")]
    Command {
        name: "keygen",
        opts: KEYGEN,
        positional: None,
        build: keygen,
    },
    #[cfg(feature = "admin")]
    Command {
        name: "authorize",
        opts: AUTHORIZE,
        positional: Some(("key", true)),
        build: authorize,
    },
    #[cfg(feature = "admin")]
    Command {
        name: "hostkey",
        opts: HOSTKEY,
        positional: None,
        build: hostkey,
    },
];

/// Why parsing stopped before a command to run.
#[derive(Debug, PartialEq, Eq)]
pub enum Early {
    /// Help was asked for.
    Help,
    /// A usage error, one line (without where to read more).
    Usage(String),
}

fn usage(parts: &[&str]) -> Early {
    Early::Usage(parts.concat())
}

fn unrecognized(arg: &str) -> Early {
    usage(&["Unrecognized argument: ", arg])
}

fn is_help(arg: &str) -> bool {
    arg == "--help" || arg == "-h" || arg == "help"
}

const TRAILING: &str = "Trailing arguments are not allowed after `help`";

/// Parses the words after the program name.
pub fn parse(args: &[&str]) -> Result<Top, Early> {
    let mut top = Top {
        version: false,
        cmd: None,
    };
    let (mut help, mut ended) = (false, false);
    for (i, &a) in args.iter().enumerate() {
        if !ended && is_help(a) {
            help = true;
        } else if !ended && a.starts_with('-') {
            if a == "--" {
                ended = true;
            } else if help {
                return Err(usage(&[TRAILING]));
            } else if a == "--version" || (i == 0 && a == "-V") {
                top.version = true;
            } else {
                return Err(unrecognized(a));
            }
        } else if let Some(c) = COMMANDS.iter().find(|c| c.name == a) {
            let given = parse_command(c, &args[i + 1..], help)?;
            top.cmd = Some((c.build)(&given));
            return Ok(top);
        } else {
            return Err(unrecognized(a));
        }
    }
    if help {
        Err(Early::Help)
    } else {
        Ok(top)
    }
}

/// The most options one command may have (the `options_reach_their_fields`
/// test checks the tables).
const MAX_OPTS: usize = 32;

/// The words given to one command: by option index, the value (`""` for a
/// switch) and its number; the values of the repeatable option in order;
/// the positional argument.
pub struct Given<'a> {
    vals: [Option<(&'a str, u64)>; MAX_OPTS],
    many: Vec<&'a str>,
    pos: Option<&'a str>,
}

fn parse_command<'a>(c: &Command, args: &[&'a str], mut help: bool) -> Result<Given<'a>, Early> {
    let mut g = Given {
        vals: [None; MAX_OPTS],
        many: Vec::new(),
        pos: None,
    };
    let mut ended = false;
    let mut words = args.iter();
    while let Some(&a) = words.next() {
        if !ended && is_help(a) {
            help = true;
        } else if !ended && a.starts_with('-') {
            if a == "--" {
                ended = true;
                continue;
            }
            if help {
                return Err(usage(&[TRAILING]));
            }
            let Some(i) = c.opts.iter().position(|o| o.long == a || o.short == a) else {
                return Err(unrecognized(a));
            };
            let kind = c.opts[i].kind;
            if kind == Kind::Switch {
                g.vals[i] = Some(("", 0));
                continue;
            }
            let Some(&v) = words.next() else {
                return Err(usage(&["No value provided for option '", a, "'"]));
            };
            let bad =
                |why: &str| usage(&["Error parsing option '", a, "' with value '", v, "': ", why]);
            if kind == Kind::Many {
                g.many.push(v);
                continue;
            }
            if g.vals[i].is_some() {
                return Err(bad("duplicate values provided"));
            }
            let mut n = 0;
            if let Kind::Num(max) = kind {
                n = number(v, max).map_err(bad)?;
            }
            g.vals[i] = Some((v, n));
        } else if c.positional.is_some() && g.pos.is_none() {
            g.pos = Some(a);
        } else {
            return Err(unrecognized(a));
        }
    }
    if help {
        return Err(Early::Help);
    }
    let mut missing = String::new();
    if let (Some((name, true)), None) = (c.positional, g.pos) {
        missing.push_str("Required positional arguments not provided: ");
        missing.push_str(name);
    }
    let mut first = true;
    for (i, o) in c.opts.iter().enumerate() {
        if o.kind == Kind::Required && g.get(i).is_none() {
            missing.push_str(match (first, missing.is_empty()) {
                (false, _) => ", ",
                (true, true) => "Required options not provided: ",
                (true, false) => "; Required options not provided: ",
            });
            missing.push_str(o.long);
            first = false;
        }
    }
    if missing.is_empty() {
        Ok(g)
    } else {
        Err(Early::Usage(missing))
    }
}

/// A decimal number up to `max`, in the forms Rust's `FromStr` for unsigned
/// integers takes, with its error wording.
fn number(v: &str, max: u64) -> Result<u64, &'static str> {
    use std::num::IntErrorKind;
    const TOO_LARGE: &str = "number too large to fit in target type";
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(TOO_LARGE),
        Err(e) => Err(match e.kind() {
            IntErrorKind::Empty => "cannot parse integer from empty string",
            IntErrorKind::PosOverflow => TOO_LARGE,
            _ => "invalid digit found in string",
        }),
    }
}

impl Given<'_> {
    fn get(&self, i: usize) -> Option<(&str, u64)> {
        self.vals[i]
    }
    fn on(&self, i: usize) -> bool {
        self.get(i).is_some()
    }
    fn text(&self, i: usize) -> Option<String> {
        self.get(i).map(|v| v.0.to_owned())
    }
    fn text_or(&self, i: usize, default: &str) -> String {
        self.get(i).map_or(default, |v| v.0).to_owned()
    }
    /// The values of the one repeatable option.
    fn many(&self) -> Vec<String> {
        self.many.iter().map(|v| (*v).to_owned()).collect()
    }
    fn num(&self, i: usize) -> Option<u64> {
        self.get(i).map(|v| v.1)
    }
    // The casts below are of numbers checked against the option's Kind.
    fn u64_or(&self, i: usize, default: u64) -> u64 {
        self.num(i).unwrap_or(default)
    }
    fn u32_or(&self, i: usize, default: u32) -> u32 {
        self.num(i).map_or(default, |n| n as u32)
    }
    fn u32(&self, i: usize) -> Option<u32> {
        self.num(i).map(|n| n as u32)
    }
    fn positional(&self) -> Option<String> {
        self.pos.map(str::to_owned)
    }
}

/// Moves real randomness over SSH into the kernel's random pool.
#[derive(Debug)]
pub struct Top {
    /// print the version and exit
    pub version: bool,
    pub cmd: Option<Cmd>,
}

// Parsed once at start-up: boxing the client's options would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Cmd {
    Server(Server),
    Client(Client),
    Sink(Sink),
    Seed(Seed),
    Status(Status),
    #[cfg(feature = "admin")]
    Keygen(Keygen),
    #[cfg(feature = "admin")]
    Authorize(Authorize),
    #[cfg(feature = "admin")]
    Hostkey(Hostkey),
}

/// Stream random bytes to stdout: the forced command in authorized_keys.
/// The request comes from SSH_ORIGINAL_COMMAND: empty or `cat /dev/random`
/// streams until the client hangs up; `get N` sends exactly N bytes.
#[derive(Debug)]
pub struct Server {
    /// random source: auto (hwrng XOR getrandom, or getrandom alone), getrandom, or a file path
    pub source: String,
    /// bytes per second for this session, 0 for unlimited (default 0)
    pub rate: u64,
    /// token-bucket burst in bytes (default: a quarter second of rate, at least 32)
    pub burst: Option<u64>,
    /// most bytes one session may send, stream or get (default 16777216)
    pub max_bytes: u64,
    /// longest session, e.g. 30s, 10m (default 1h)
    pub max_time: String,
    /// end a session whose client takes no byte for this long (default 10m)
    pub write_timeout: String,
    /// client name used for session caps and the audit log (default "default")
    pub client: String,
    /// concurrent sessions allowed for this client, 0 for no cap (default 0)
    pub max_sessions: u32,
    /// concurrent sessions allowed across all clients, 0 for no cap (default 0)
    pub max_total_sessions: u32,
    /// bytes per second shared fairly by all live sessions, 0 for no budget (default 0)
    pub total_rate: u64,
    /// comma-separated CIDRs the peer (SSH_CONNECTION) must be in
    pub allow_from: Option<String>,
    /// directory for session slot lock files (default /run/entropyservice; when not root $XDG_RUNTIME_DIR/entropyservice or /tmp/entropyservice-UID)
    pub lock_dir: Option<String>,
    /// on kernels whose entropy_avail still moves, pause while it is below this (default 0)
    pub reserve_bits: u32,
    /// also append the audit lines to this file (they always go to syslog)
    pub audit_file: Option<String>,
}

/// Fetch randomness from a server over SSH, health-test it and feed the kernel.
#[derive(Debug)]
pub struct Client {
    /// server's SSH port (default 22)
    pub port: Option<u16>,
    /// private key file for the SSH client
    pub identity: Option<String>,
    /// remote user name (default: the part before @, or root)
    pub login: Option<String>,
    /// pinned host key of the server, "TYPE BASE64" (e.g. "ssh-ed25519 AAAA...")
    pub host_key: Option<String>,
    /// use the SSH agent in SSH_AUTH_SOCK instead of a key file
    pub agent: bool,
    /// further servers for failover, tried in order:
    /// "host=H,port=P,user=U,key=FILE,host-key=TYPE BASE64"
    pub server: Vec<String>,
    /// SSH client program: dbclient or ssh, or a path (default: dbclient, then ssh)
    pub ssh: Option<String>,
    /// bits credited per byte that passed the health tests, 0 to 8 (default 2)
    pub credit_bits_per_byte: u32,
    /// auto, topup or stream (default auto: from the kernel)
    pub mode: String,
    /// time between top-ups, e.g. 10m (default 10m, with jitter)
    pub interval: String,
    /// bytes fetched per top-up, 1 to 4096 (default 64)
    pub get_bytes: u32,
    /// seconds allowed to connect and receive the first byte (default 30s)
    pub connect_timeout: String,
    /// longest silence inside a session before the child is killed (default 60s)
    pub stall_timeout: String,
    /// longest whole `get N` session, and longest wait for each 512-byte chunk in stream mode (default 2m)
    pub session_timeout: String,
    /// least time between forced reseeds of a ready CRNG (default 60s)
    pub reseed_interval: String,
    /// longest reconnect back-off (default 10m)
    pub max_backoff: String,
    /// stream mode: write when entropy_avail falls below this many bits (default 2048)
    pub low_water: u32,
    /// seed directory (default /etc/entropyservice/seed)
    pub seed_dir: Option<String>,
    /// least time between seed-file refreshes (default 1d)
    pub seed_interval: String,
    /// status file, kept on tmpfs (default /run/entropyservice/status or /var/run/...)
    pub status_file: Option<String>,
    /// private directory on tmpfs for the SSH child's pinned known_hosts and
    /// the per-boot marker (default: the status file's directory)
    pub runtime_dir: Option<String>,
    /// fetch N bytes (1 to 4096) once with `get N`, credit them and exit
    pub once: Option<u32>,
    /// check the options, key file, host key and SSH program, then exit
    /// without connecting (status 0, or the error a start would give)
    pub check: bool,
    /// [USER@]HOST of the first server
    pub host: Option<String>,
}

/// Read random bytes on stdin (pushed over SSH), health-test, credit, reseed.
#[derive(Debug)]
pub struct Sink {
    /// fewest bytes accepted (default 32)
    pub min_bytes: u32,
    /// most bytes accepted; more is an error (default 4096)
    pub max_bytes: u32,
    /// bits credited per byte, 0 to 8 (default 2)
    pub credit_bits_per_byte: u32,
}

/// Load the saved seed into the kernel at boot, or save a new one.
#[derive(Debug)]
pub struct Seed {
    /// load (at boot) or save (at shutdown); see the notes below
    pub action: String,
    /// seed directory (default /etc/entropyservice/seed)
    pub seed_dir: Option<String>,
    /// the directory an unprivileged (jailed) client keeps its seeds in:
    /// they are mixed without credit and removed
    pub client_seed_dir: Option<String>,
}

/// Show the client's state and the kernel's random pool.
#[derive(Debug)]
pub struct Status {
    /// print JSON for scripts
    pub json: bool,
    /// status file (default /run/entropyservice/status; without it, the
    /// one client instance's /run/entropyservice/NAME/status)
    pub status_file: Option<String>,
}

/// Generate the client's SSH key and print the line to paste on the server.
#[cfg(feature = "admin")]
#[derive(Debug)]
pub struct Keygen {
    /// private key file to create, never overwritten; the public line also goes to FILE.pub (default /etc/entropyservice/id_client)
    pub out: Option<String>,
    /// key type, ed25519 or rsa (default: ed25519, or RSA 2048 when the tool cannot make ed25519 keys)
    pub kind: Option<String>,
    /// key tool: dropbearkey (Dropbear format, for dbclient) or ssh-keygen (OpenSSH format), or a path to one (default: dropbearkey if present, else ssh-keygen)
    pub tool: Option<String>,
    /// client name for the printed authorize command (default: this host's name)
    pub client: Option<String>,
}

/// Add a client's key to authorized_keys behind the forced command.
#[cfg(feature = "admin")]
#[derive(Debug)]
pub struct Authorize {
    /// client name, for the forced command's --client and the key comment
    pub client: String,
    /// bytes per second for this client's sessions (server --rate)
    pub rate: Option<u64>,
    /// concurrent sessions allowed for this client (server --max-sessions)
    pub max_sessions: Option<u32>,
    /// comma-separated CIDRs the client must connect from (server --allow-from)
    pub allow_from: Option<String>,
    /// most bytes one session may send (server --max-bytes)
    pub max_bytes: Option<u64>,
    /// longest session, e.g. 10m (server --max-time)
    pub max_time: Option<String>,
    /// authorized_keys file to change (default ~/.ssh/authorized_keys; /etc/dropbear/authorized_keys for root on OpenWrt)
    pub authorized_keys: Option<String>,
    /// absolute path of entropyservice on this server (default /usr/bin/entropyservice)
    pub binary: Option<String>,
    /// SSH server that reads the file: dropbear, openssh or auto (default auto); decides whether `restrict` is safe to use
    pub flavor: String,
    /// write the explicit no-pty,no-port-forwarding,... list even where `restrict` would work
    pub compat: bool,
    /// print the line and change nothing
    pub dry_run: bool,
    /// rewrite the line that already holds this key (e.g. to change --binary or limits) instead of refusing
    pub replace: bool,
    /// the client's public key: a "TYPE BASE64 [comment]" line or a .pub file holding one
    pub key: String,
}

/// Print this server's host keys for the client's pinned --host-key.
#[cfg(feature = "admin")]
#[derive(Debug)]
pub struct Hostkey {
    /// directory of Dropbear host keys, dropbear_*_host_key (default /etc/dropbear when no directory is given)
    pub dropbear_dir: Option<String>,
    /// directory of OpenSSH host keys, ssh_host_*_key.pub (default /etc/ssh when no directory is given)
    pub openssh_dir: Option<String>,
}

// The tables, and each command's struct from its parsed words: the numbers
// in the `build` functions are indices into the table above them (the
// `options_reach_their_fields` test checks every one).

const SERVER: &[Opt] = &[
    opt("--source", Kind::Text),
    opt("--rate", U64),
    opt("--burst", U64),
    opt("--max-bytes", U64),
    opt("--max-time", Kind::Text),
    opt("--write-timeout", Kind::Text),
    opt("--client", Kind::Text),
    opt("--max-sessions", U32),
    opt("--max-total-sessions", U32),
    opt("--total-rate", U64),
    opt("--allow-from", Kind::Text),
    opt("--lock-dir", Kind::Text),
    opt("--reserve-bits", U32),
    opt("--audit-file", Kind::Text),
];

fn server(g: &Given) -> Cmd {
    Cmd::Server(Server {
        source: g.text_or(0, "auto"),
        rate: g.u64_or(1, 0),
        burst: g.num(2),
        max_bytes: g.u64_or(3, 16 << 20),
        max_time: g.text_or(4, "1h"),
        write_timeout: g.text_or(5, "10m"),
        client: g.text_or(6, "default"),
        max_sessions: g.u32_or(7, 0),
        max_total_sessions: g.u32_or(8, 0),
        total_rate: g.u64_or(9, 0),
        allow_from: g.text(10),
        lock_dir: g.text(11),
        reserve_bits: g.u32_or(12, 0),
        audit_file: g.text(13),
    })
}

const CLIENT: &[Opt] = &[
    Opt {
        long: "--port",
        short: "-p",
        kind: U16,
    },
    Opt {
        long: "--identity",
        short: "-i",
        kind: Kind::Text,
    },
    Opt {
        long: "--login",
        short: "-l",
        kind: Kind::Text,
    },
    opt("--host-key", Kind::Text),
    opt("--agent", Kind::Switch),
    opt("--server", Kind::Many),
    opt("--ssh", Kind::Text),
    opt("--credit-bits-per-byte", U32),
    opt("--mode", Kind::Text),
    opt("--interval", Kind::Text),
    opt("--get-bytes", U32),
    opt("--connect-timeout", Kind::Text),
    opt("--stall-timeout", Kind::Text),
    opt("--session-timeout", Kind::Text),
    opt("--reseed-interval", Kind::Text),
    opt("--max-backoff", Kind::Text),
    opt("--low-water", U32),
    opt("--seed-dir", Kind::Text),
    opt("--seed-interval", Kind::Text),
    opt("--status-file", Kind::Text),
    opt("--runtime-dir", Kind::Text),
    opt("--once", U32),
    opt("--check", Kind::Switch),
];

fn client(g: &Given) -> Cmd {
    Cmd::Client(Client {
        port: g.num(0).map(|n| n as u16),
        identity: g.text(1),
        login: g.text(2),
        host_key: g.text(3),
        agent: g.on(4),
        server: g.many(),
        ssh: g.text(6),
        credit_bits_per_byte: g.u32_or(7, 2),
        mode: g.text_or(8, "auto"),
        interval: g.text_or(9, "10m"),
        get_bytes: g.u32_or(10, 64),
        connect_timeout: g.text_or(11, "30s"),
        stall_timeout: g.text_or(12, "60s"),
        session_timeout: g.text_or(13, "2m"),
        reseed_interval: g.text_or(14, "60s"),
        max_backoff: g.text_or(15, "10m"),
        low_water: g.u32_or(16, 2048),
        seed_dir: g.text(17),
        seed_interval: g.text_or(18, "1d"),
        status_file: g.text(19),
        runtime_dir: g.text(20),
        once: g.u32(21),
        check: g.on(22),
        host: g.positional(),
    })
}

const SINK: &[Opt] = &[
    opt("--min-bytes", U32),
    opt("--max-bytes", U32),
    opt("--credit-bits-per-byte", U32),
];

fn sink(g: &Given) -> Cmd {
    Cmd::Sink(Sink {
        min_bytes: g.u32_or(0, 32),
        max_bytes: g.u32_or(1, 4096),
        credit_bits_per_byte: g.u32_or(2, 2),
    })
}

const SEED: &[Opt] = &[
    opt("--seed-dir", Kind::Text),
    opt("--client-seed-dir", Kind::Text),
];

fn seed(g: &Given) -> Cmd {
    Cmd::Seed(Seed {
        // Required: parse_command refuses its absence.
        action: g.positional().unwrap_or_default(),
        seed_dir: g.text(0),
        client_seed_dir: g.text(1),
    })
}

const STATUS: &[Opt] = &[
    opt("--json", Kind::Switch),
    opt("--status-file", Kind::Text),
];

fn status(g: &Given) -> Cmd {
    Cmd::Status(Status {
        json: g.on(0),
        status_file: g.text(1),
    })
}

#[cfg(feature = "admin")]
const KEYGEN: &[Opt] = &[
    opt("--out", Kind::Text),
    opt("--type", Kind::Text),
    opt("--tool", Kind::Text),
    opt("--client", Kind::Text),
];

#[cfg(feature = "admin")]
fn keygen(g: &Given) -> Cmd {
    Cmd::Keygen(Keygen {
        out: g.text(0),
        kind: g.text(1),
        tool: g.text(2),
        client: g.text(3),
    })
}

#[cfg(feature = "admin")]
const AUTHORIZE: &[Opt] = &[
    opt("--client", Kind::Required),
    opt("--rate", U64),
    opt("--max-sessions", U32),
    opt("--allow-from", Kind::Text),
    opt("--max-bytes", U64),
    opt("--max-time", Kind::Text),
    opt("--authorized-keys", Kind::Text),
    opt("--binary", Kind::Text),
    opt("--flavor", Kind::Text),
    opt("--compat", Kind::Switch),
    opt("--dry-run", Kind::Switch),
    opt("--replace", Kind::Switch),
];

#[cfg(feature = "admin")]
fn authorize(g: &Given) -> Cmd {
    Cmd::Authorize(Authorize {
        // Required, like the key: parse_command refuses their absence.
        client: g.text(0).unwrap_or_default(),
        rate: g.num(1),
        max_sessions: g.u32(2),
        allow_from: g.text(3),
        max_bytes: g.num(4),
        max_time: g.text(5),
        authorized_keys: g.text(6),
        binary: g.text(7),
        flavor: g.text_or(8, "auto"),
        compat: g.on(9),
        dry_run: g.on(10),
        replace: g.on(11),
        key: g.positional().unwrap_or_default(),
    })
}

#[cfg(feature = "admin")]
const HOSTKEY: &[Opt] = &[
    opt("--dropbear-dir", Kind::Text),
    opt("--openssh-dir", Kind::Text),
];

#[cfg(feature = "admin")]
fn hostkey(g: &Given) -> Cmd {
    Cmd::Hostkey(Hostkey {
        dropbear_dir: g.text(0),
        openssh_dir: g.text(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_of(args: &[&str]) -> String {
        match parse(args) {
            Err(Early::Usage(l)) => l,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn cmd(args: &[&str]) -> String {
        match parse(args) {
            Ok(t) => format!("{:?}", t.cmd),
            Err(e) => panic!("{args:?}: {e:?}"),
        }
    }

    /// Every option of every table lands in the field of its name (`--type`
    /// in `kind`), and in no other field.
    #[test]
    fn options_reach_their_fields() {
        let mut n = 0;
        for c in COMMANDS {
            let mut need: Vec<&str> = match c.positional {
                Some((_, true)) => vec!["p0s"],
                _ => vec![],
            };
            if c.name == "authorize" {
                need.extend(["--client", "c1"]);
            }
            for o in c.opts {
                let field = match o.long {
                    "--type" => "kind".to_string(),
                    l => l[2..].replace('-', "_"),
                };
                let (value, want) = match o.kind {
                    Kind::Switch => ("", vec![format!(" {field}: true")]),
                    Kind::Num(_) => (
                        "4242",
                        vec![format!(" {field}: 4242"), format!(" {field}: Some(4242)")],
                    ),
                    Kind::Many => ("zq9", vec![format!(" {field}: [\"zq9\"]")]),
                    Kind::Text | Kind::Required => (
                        "zq9",
                        vec![
                            format!(" {field}: \"zq9\""),
                            format!(" {field}: Some(\"zq9\")"),
                        ],
                    ),
                };
                let mut args = vec![c.name];
                if o.long != "--client" || c.name != "authorize" {
                    args.extend(&need);
                } else {
                    args.push("p0s");
                }
                args.push(o.long);
                if !value.is_empty() {
                    args.push(value);
                }
                let got = cmd(&args);
                assert!(want.iter().any(|w| got.contains(w)), "{args:?}: {got}");
                assert!(got.matches("zq9").count() <= 1, "{args:?}: {got}");
                n += 1;
            }
            if let Some((name, _)) = c.positional {
                let mut args = vec![c.name];
                if c.name == "authorize" {
                    args.extend(["--client", "c1"]);
                }
                args.extend(["--", "-x"]);
                let got = cmd(&args);
                let ok = got.contains(&format!(" {name}: \"-x\""))
                    || got.contains(&format!(" {name}: Some(\"-x\")"));
                assert!(ok, "{got}");
            }
        }
        assert!(n > 40, "{n}");
        for c in COMMANDS {
            assert!(c.opts.len() <= MAX_OPTS, "{}", c.name);
            let many = c.opts.iter().filter(|o| o.kind == Kind::Many).count();
            assert!(many <= 1, "{}: Given keeps one repeatable option", c.name);
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = cmd(&["server"]);
        for w in [
            "source: \"auto\"",
            "rate: 0",
            "burst: None",
            "max_bytes: 16777216",
            "max_time: \"1h\"",
            "write_timeout: \"10m\"",
            "client: \"default\"",
            "max_sessions: 0",
            "reserve_bits: 0",
        ] {
            assert!(s.contains(w), "{w}: {s}");
        }
        let c = cmd(&["client"]);
        for w in [
            "port: None",
            "agent: false",
            "server: []",
            "credit_bits_per_byte: 2",
            "mode: \"auto\"",
            "interval: \"10m\"",
            "get_bytes: 64",
            "connect_timeout: \"30s\"",
            "stall_timeout: \"60s\"",
            "session_timeout: \"2m\"",
            "reseed_interval: \"60s\"",
            "max_backoff: \"10m\"",
            "low_water: 2048",
            "seed_interval: \"1d\"",
            "once: None",
            "host: None",
        ] {
            assert!(c.contains(w), "{w}: {c}");
        }
        let k = cmd(&["sink"]);
        assert!(k.contains("min_bytes: 32, max_bytes: 4096, credit_bits_per_byte: 2"));
        #[cfg(feature = "admin")]
        assert!(cmd(&["authorize", "--client", "c", "k"]).contains("flavor: \"auto\""));
    }

    #[test]
    fn repeats_shorts_and_positionals() {
        let c = cmd(&[
            "client", "--server", "a", "-p", "2222", "h", "--server", "b",
        ]);
        assert!(c.contains("server: [\"a\", \"b\"]"), "{c}");
        assert!(c.contains("port: Some(2222)") && c.contains("host: Some(\"h\")"));
        assert_eq!(
            usage_of(&["client", "--port", "1", "-p", "2"]),
            "Error parsing option '-p' with value '2': duplicate values provided"
        );
        assert_eq!(usage_of(&["client", "a", "b"]), "Unrecognized argument: b");
        assert_eq!(usage_of(&["status", "x"]), "Unrecognized argument: x");
        assert!(cmd(&["status", "--json", "--json"]).contains("json: true"));
        // A value is the next word, whatever it looks like.
        assert!(cmd(&["client", "--login", "--agent"]).contains("login: Some(\"--agent\")"));
        assert!(cmd(&["seed", "--", "--x"]).contains("action: \"--x\""));
    }

    #[test]
    fn numbers_take_what_from_str_takes() {
        let port = |v: &str| cmd(&["client", "--port", v]);
        assert!(port("+22").contains("port: Some(22)"));
        assert!(port("0065535").contains("port: Some(65535)"));
        let bad = |opt: &str, v: &str, why: &str| {
            let cmd = if opt == "--port" { "client" } else { "sink" };
            assert_eq!(
                usage_of(&[cmd, opt, v]),
                [
                    "Error parsing option '",
                    opt,
                    "' with value '",
                    v,
                    "': ",
                    why
                ]
                .concat()
            );
        };
        bad("--port", "65536", "number too large to fit in target type");
        bad(
            "--min-bytes",
            "4294967296",
            "number too large to fit in target type",
        );
        bad("--min-bytes", "0x4", "invalid digit found in string");
        bad("--min-bytes", "-1", "invalid digit found in string");
        bad("--min-bytes", "+", "invalid digit found in string");
        bad("--min-bytes", " 1", "invalid digit found in string");
        bad("--min-bytes", "", "cannot parse integer from empty string");
        assert!(cmd(&["sink", "--min-bytes", "4294967295"]).contains("min_bytes: 4294967295"));
        let s = cmd(&["server", "--rate", "18446744073709551615"]);
        assert!(s.contains("rate: 18446744073709551615"), "{s}");
        bad_u64();
    }

    fn bad_u64() {
        assert_eq!(
            usage_of(&["server", "--rate", "18446744073709551616"]),
            "Error parsing option '--rate' with value '18446744073709551616': number too large to fit in target type"
        );
    }

    #[test]
    fn help_version_and_their_short_forms() {
        assert_eq!(parse(&[]).map(|t| t.version).ok(), Some(false));
        assert!(parse(&["-V"]).is_ok_and(|t| t.version && t.cmd.is_none()));
        assert!(parse(&["--version"]).is_ok_and(|t| t.version));
        assert_eq!(usage_of(&["--version", "-V"]), "Unrecognized argument: -V");
        for h in [
            &["-h"][..],
            &["help"],
            &["--help"],
            &["status", "--json", "-h"],
            &["help", "client", "x"],
            &["seed", "help"],
            &["sink", "-h"],
            &["--version", "--help"],
        ] {
            assert_eq!(parse(h).err(), Some(Early::Help), "{h:?}");
        }
        // -h as an option's value stays a value.
        assert!(cmd(&["client", "--seed-dir", "-h"]).contains("seed_dir: Some(\"-h\")"));
        assert_eq!(
            usage_of(&["status", "-h", "--json"]),
            "Trailing arguments are not allowed after `help`"
        );
        assert_eq!(
            usage_of(&["--help", "--version"]),
            "Trailing arguments are not allowed after `help`"
        );
    }

    #[test]
    fn missing_and_unknown() {
        assert_eq!(usage_of(&["clinet"]), "Unrecognized argument: clinet");
        assert_eq!(usage_of(&["--frob"]), "Unrecognized argument: --frob");
        assert_eq!(
            usage_of(&["client", "--port=1"]),
            "Unrecognized argument: --port=1"
        );
        assert_eq!(
            usage_of(&["client", "--once"]),
            "No value provided for option '--once'"
        );
        assert_eq!(
            usage_of(&["seed"]),
            "Required positional arguments not provided: action"
        );
        #[cfg(feature = "admin")]
        {
            assert_eq!(
                usage_of(&["authorize"]),
                "Required positional arguments not provided: key; Required options not provided: --client"
            );
            assert_eq!(
                usage_of(&["authorize", "k"]),
                "Required options not provided: --client"
            );
        }
    }
}
