//! Command-line structures (argh). No logic here beyond parsing helpers.

use argh::FromArgs;

/// Moves real randomness over SSH into the kernel's random pool.
#[derive(FromArgs, Debug)]
pub struct Top {
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub cmd: Option<Cmd>,
}

// Parsed once at start-up: boxing the client's options would save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
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
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "server")]
pub struct Server {
    /// random source: auto (hwrng XOR getrandom, or getrandom alone), getrandom, or a file path
    #[argh(option, default = "String::from(\"auto\")")]
    pub source: String,
    /// bytes per second for this session, 0 for unlimited (default 0)
    #[argh(option, default = "0")]
    pub rate: u64,
    /// token-bucket burst in bytes (default: a quarter second of rate, at least 32)
    #[argh(option)]
    pub burst: Option<u64>,
    /// most bytes one session may send, stream or get (default 16777216)
    #[argh(option, default = "16 << 20")]
    pub max_bytes: u64,
    /// longest session, e.g. 30s, 10m (default 1h)
    #[argh(option, default = "String::from(\"1h\")")]
    pub max_time: String,
    /// end a session whose client takes no byte for this long (default 10m)
    #[argh(option, default = "String::from(\"10m\")")]
    pub write_timeout: String,
    /// client name used for session caps and the audit log (default "default")
    #[argh(option, default = "String::from(\"default\")")]
    pub client: String,
    /// concurrent sessions allowed for this client, 0 for no cap (default 0)
    #[argh(option, default = "0")]
    pub max_sessions: u32,
    /// concurrent sessions allowed across all clients, 0 for no cap (default 0)
    #[argh(option, default = "0")]
    pub max_total_sessions: u32,
    /// bytes per second shared fairly by all live sessions, 0 for no budget (default 0)
    #[argh(option, default = "0")]
    pub total_rate: u64,
    /// comma-separated CIDRs the peer (SSH_CONNECTION) must be in
    #[argh(option)]
    pub allow_from: Option<String>,
    /// directory for session slot lock files (default /run/entropyservice; when not root $XDG_RUNTIME_DIR/entropyservice or /tmp/entropyservice-UID)
    #[argh(option)]
    pub lock_dir: Option<String>,
    /// on kernels whose entropy_avail still moves, pause while it is below this (default 0)
    #[argh(option, default = "0")]
    pub reserve_bits: u32,
    /// also append the audit lines to this file (they always go to syslog)
    #[argh(option)]
    pub audit_file: Option<String>,
}

/// Fetch randomness from a server over SSH, health-test it and feed the kernel.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "client")]
pub struct Client {
    /// server's SSH port (default 22)
    #[argh(option, short = 'p')]
    pub port: Option<u16>,
    /// private key file for the SSH client
    #[argh(option, short = 'i')]
    pub identity: Option<String>,
    /// remote user name (default: the part before @, or root)
    #[argh(option, short = 'l')]
    pub login: Option<String>,
    /// pinned host key of the server, "TYPE BASE64" (e.g. "ssh-ed25519 AAAA...")
    #[argh(option)]
    pub host_key: Option<String>,
    /// use the SSH agent in SSH_AUTH_SOCK instead of a key file
    #[argh(switch)]
    pub agent: bool,
    /// further servers for failover, tried in order:
    /// "host=H,port=P,user=U,key=FILE,host-key=TYPE BASE64"
    #[argh(option)]
    pub server: Vec<String>,
    /// SSH client program: dbclient or ssh, or a path (default: dbclient, then ssh)
    #[argh(option)]
    pub ssh: Option<String>,
    /// bits credited per byte that passed the health tests, 0 to 8 (default 2)
    #[argh(option, default = "2")]
    pub credit_bits_per_byte: u32,
    /// auto, topup or stream (default auto: from the kernel)
    #[argh(option, default = "String::from(\"auto\")")]
    pub mode: String,
    /// time between top-ups, e.g. 10m (default 10m, with jitter)
    #[argh(option, default = "String::from(\"10m\")")]
    pub interval: String,
    /// bytes fetched per top-up, 1 to 4096 (default 64)
    #[argh(option, default = "64")]
    pub get_bytes: u32,
    /// seconds allowed to connect and receive the first byte (default 30s)
    #[argh(option, default = "String::from(\"30s\")")]
    pub connect_timeout: String,
    /// longest silence inside a session before the child is killed (default 60s)
    #[argh(option, default = "String::from(\"60s\")")]
    pub stall_timeout: String,
    /// longest whole `get N` session, and longest wait for each 512-byte chunk in stream mode (default 2m)
    #[argh(option, default = "String::from(\"2m\")")]
    pub session_timeout: String,
    /// least time between forced reseeds of a ready CRNG (default 60s)
    #[argh(option, default = "String::from(\"60s\")")]
    pub reseed_interval: String,
    /// longest reconnect back-off (default 10m)
    #[argh(option, default = "String::from(\"10m\")")]
    pub max_backoff: String,
    /// stream mode: write when entropy_avail falls below this many bits (default 2048)
    #[argh(option, default = "2048")]
    pub low_water: u32,
    /// seed directory (default /etc/entropyservice/seed)
    #[argh(option)]
    pub seed_dir: Option<String>,
    /// least time between seed-file refreshes (default 1d)
    #[argh(option, default = "String::from(\"1d\")")]
    pub seed_interval: String,
    /// status file, kept on tmpfs (default /run/entropyservice/status or /var/run/...)
    #[argh(option)]
    pub status_file: Option<String>,
    /// private directory on tmpfs for the SSH child's pinned known_hosts and
    /// the per-boot marker (default: the status file's directory)
    #[argh(option)]
    pub runtime_dir: Option<String>,
    /// fetch N bytes (1 to 4096) once with `get N`, credit them and exit
    #[argh(option)]
    pub once: Option<u32>,
    /// check the options, key file, host key and SSH program, then exit
    /// without connecting (status 0, or the error a start would give)
    #[argh(switch)]
    pub check: bool,
    /// [USER@]HOST of the first server
    #[argh(positional)]
    pub host: Option<String>,
}

/// Read random bytes on stdin (pushed over SSH), health-test, credit, reseed.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "sink")]
pub struct Sink {
    /// fewest bytes accepted (default 32)
    #[argh(option, default = "32")]
    pub min_bytes: u32,
    /// most bytes accepted; more is an error (default 4096)
    #[argh(option, default = "4096")]
    pub max_bytes: u32,
    /// bits credited per byte, 0 to 8 (default 2)
    #[argh(option, default = "2")]
    pub credit_bits_per_byte: u32,
}

/// Load the saved seed into the kernel at boot, or save a new one.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "seed",
    note = "seed load: at boot, feed the saved seeds to the kernel (seed.credit, written while the CRNG was ready, is credited; seed.no-credit only mixed), then save a new seed at once, so no seed is used twice.\nseed save: write a new seed from the kernel (at shutdown, or from cron).",
    example = "{command_name} load --seed-dir /etc/entropyservice/seed"
)]
pub struct Seed {
    /// load (at boot) or save (at shutdown); see the notes below
    #[argh(positional)]
    pub action: String,
    /// seed directory (default /etc/entropyservice/seed)
    #[argh(option)]
    pub seed_dir: Option<String>,
    /// the directory an unprivileged (jailed) client keeps its seeds in:
    /// they are mixed without credit and removed
    #[argh(option)]
    pub client_seed_dir: Option<String>,
}

/// Show the client's state and the kernel's random pool.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status")]
pub struct Status {
    /// print JSON for scripts
    #[argh(switch)]
    pub json: bool,
    /// status file (default /run/entropyservice/status)
    #[argh(option)]
    pub status_file: Option<String>,
}

/// Generate the client's SSH key and print the line to paste on the server.
#[cfg(feature = "admin")]
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "keygen")]
pub struct Keygen {
    /// private key file to create, never overwritten; the public line also goes to FILE.pub (default /etc/entropyservice/id_client)
    #[argh(option)]
    pub out: Option<String>,
    /// key type, ed25519 or rsa (default: ed25519, or RSA 2048 when the tool cannot make ed25519 keys)
    #[argh(option, long = "type")]
    pub kind: Option<String>,
    /// key tool: dropbearkey (Dropbear format, for dbclient) or ssh-keygen (OpenSSH format), or a path to one (default: dropbearkey if present, else ssh-keygen)
    #[argh(option)]
    pub tool: Option<String>,
    /// client name for the printed authorize command (default: this host's name)
    #[argh(option)]
    pub client: Option<String>,
}

/// Add a client's key to authorized_keys behind the forced command.
#[cfg(feature = "admin")]
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "authorize")]
pub struct Authorize {
    /// client name, for the forced command's --client and the key comment
    #[argh(option)]
    pub client: String,
    /// bytes per second for this client's sessions (server --rate)
    #[argh(option)]
    pub rate: Option<u64>,
    /// concurrent sessions allowed for this client (server --max-sessions)
    #[argh(option)]
    pub max_sessions: Option<u32>,
    /// comma-separated CIDRs the client must connect from (server --allow-from)
    #[argh(option)]
    pub allow_from: Option<String>,
    /// most bytes one session may send (server --max-bytes)
    #[argh(option)]
    pub max_bytes: Option<u64>,
    /// longest session, e.g. 10m (server --max-time)
    #[argh(option)]
    pub max_time: Option<String>,
    /// authorized_keys file to change (default ~/.ssh/authorized_keys; /etc/dropbear/authorized_keys for root on OpenWrt)
    #[argh(option)]
    pub authorized_keys: Option<String>,
    /// absolute path of entropyservice on this server (default /usr/bin/entropyservice)
    #[argh(option)]
    pub binary: Option<String>,
    /// SSH server that reads the file: dropbear, openssh or auto (default auto); decides whether `restrict` is safe to use
    #[argh(option, default = "String::from(\"auto\")")]
    pub flavor: String,
    /// write the explicit no-pty,no-port-forwarding,... list even where `restrict` would work
    #[argh(switch)]
    pub compat: bool,
    /// print the line and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// rewrite the line that already holds this key (e.g. to change --binary or limits) instead of refusing
    #[argh(switch)]
    pub replace: bool,
    /// the client's public key: a "TYPE BASE64 [comment]" line or a .pub file holding one
    #[argh(positional)]
    pub key: String,
}

/// Print this server's host keys for the client's pinned --host-key.
#[cfg(feature = "admin")]
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "hostkey")]
pub struct Hostkey {
    /// directory of Dropbear host keys, dropbear_*_host_key (default /etc/dropbear when no directory is given)
    #[argh(option)]
    pub dropbear_dir: Option<String>,
    /// directory of OpenSSH host keys, ssh_host_*_key.pub (default /etc/ssh when no directory is given)
    #[argh(option)]
    pub openssh_dir: Option<String>,
}
