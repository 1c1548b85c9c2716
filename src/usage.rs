//! The help texts, written by hand. Keep each text in step with its
//! command's table in `cli.rs`; `tests/offline.rs` checks every command's
//! options (names, short aliases, whether they take a value) against its text.

/// The help for `sub` (None: the top level), or None for an unknown command.
pub fn text(sub: Option<&str>) -> Option<&'static str> {
    Some(match sub {
        None => TOP,
        Some("server") => SERVER,
        Some("client") => CLIENT,
        Some("sink") => SINK,
        Some("seed") => SEED,
        Some("status") => STATUS,
        #[cfg(feature = "admin")]
        Some("keygen") => KEYGEN,
        #[cfg(feature = "admin")]
        Some("authorize") => AUTHORIZE,
        #[cfg(feature = "admin")]
        Some("hostkey") => HOSTKEY,
        Some(_) => return None,
    })
}

macro_rules! top {
    ($admin:expr) => {
        concat!(
            "\
Usage: entropyservice [--version] <command> [<args>]

Moves real randomness over SSH into the kernel's random pool.

Commands:
  server     stream random bytes to stdout (the forced command in authorized_keys)
  client     fetch randomness from a server over SSH, test it, feed the kernel
  sink       read random bytes on stdin, health-test, credit, reseed
  seed       load the saved seed at boot, or save a new one
  status     show the client's state and the kernel's random pool
",
            $admin,
            "
Options:
  --version, -V  print the version and exit
  --help, -h     this text; `entropyservice <command> --help` for a command's
"
        )
    };
}

#[cfg(feature = "admin")]
const TOP: &str = top!(
    "  keygen     generate the client's SSH key
  authorize  add a client's key to authorized_keys behind the forced command
  hostkey    print this server's host keys for the client's --host-key
"
);
#[cfg(not(feature = "admin"))]
const TOP: &str = top!("");

const SERVER: &str = "\
Usage: entropyservice server [options]

Stream random bytes to stdout: the forced command in authorized_keys.
The request comes from SSH_ORIGINAL_COMMAND: empty or `cat /dev/random`
streams until the client hangs up; `get N` sends exactly N bytes.

Options:
  --source SRC              auto (hwrng XOR getrandom, or getrandom alone),
                            getrandom, or a file path (default auto)
  --rate N                  bytes per second for this session, 0 unlimited (default 0)
  --burst N                 token-bucket burst in bytes (default: a quarter
                            second of rate, at least 32)
  --max-bytes N             most bytes one session may send (default 16777216)
  --max-time T              longest session, e.g. 30s, 10m (default 1h)
  --write-timeout T         end a session whose client takes no byte for this long (default 10m)
  --client NAME             client name for session caps and the audit log (default \"default\")
  --max-sessions N          concurrent sessions for this client, 0 no cap (default 0)
  --max-total-sessions N    concurrent sessions across all clients, 0 no cap (default 0)
  --total-rate N            bytes per second shared fairly by all sessions, 0 none (default 0)
  --allow-from CIDRS        comma-separated CIDRs the peer (SSH_CONNECTION) must be in
  --lock-dir DIR            session slot lock files (default /run/entropyservice; when not
                            root $XDG_RUNTIME_DIR/entropyservice or /tmp/entropyservice-UID)
  --reserve-bits N          where entropy_avail still moves, pause while below this (default 0)
  --audit-file FILE         also append the audit lines here (they always go to syslog)
  --help, -h                this text
";

const CLIENT: &str = "\
Usage: entropyservice client [options] [USER@]HOST

Fetch randomness from a server over SSH, health-test it and feed the kernel.

Options:
  --port, -p PORT           server's SSH port (default 22)
  --identity, -i FILE       private key file for the SSH client
  --login, -l USER          remote user name (default: the part before @, or root)
  --host-key KEY            pinned host key of the server, \"TYPE BASE64\"
  --agent                   use the SSH agent in SSH_AUTH_SOCK instead of a key file
  --server SPEC             further servers for failover, tried in order:
                            \"host=H,port=P,user=U,key=FILE,host-key=TYPE BASE64\"
  --ssh PROG                dbclient or ssh, or a path (default: dbclient, then ssh)
  --credit-bits-per-byte N  bits credited per byte that passed the tests, 0 to 8 (default 2)
  --mode MODE               auto, topup or stream (default auto: from the kernel)
  --interval T              time between top-ups (default 10m, with jitter)
  --get-bytes N             bytes fetched per top-up, 1 to 4096 (default 64)
  --connect-timeout T       time to connect and receive the first byte (default 30s)
  --stall-timeout T         longest silence in a session before the child is killed (default 60s)
  --session-timeout T       longest whole get N session, and longest wait for each
                            512-byte chunk in stream mode (default 2m)
  --reseed-interval T       least time between forced reseeds of a ready CRNG (default 60s)
  --max-backoff T           longest reconnect back-off (default 10m)
  --low-water N             stream mode: write when entropy_avail is below this (default 2048)
  --seed-dir DIR            seed directory (default /etc/entropyservice/seed)
  --seed-interval T         least time between seed-file refreshes (default 1d)
  --status-file FILE        status file, on tmpfs (default /run/entropyservice/status)
  --runtime-dir DIR         private tmpfs directory for the pinned known_hosts and the
                            per-boot marker (default: the status file's directory)
  --once N                  fetch N bytes (1 to 4096) once with `get N`, credit them, exit
  --check                   check options, key file, host key and SSH program, then exit
                            without connecting (status 0, or the error a start would give)
  --help, -h                this text
";

const SINK: &str = "\
Usage: entropyservice sink [options]

Read random bytes on stdin (pushed over SSH), health-test, credit, reseed.

Options:
  --min-bytes N             fewest bytes accepted (default 32)
  --max-bytes N             most bytes accepted; more is an error (default 4096)
  --credit-bits-per-byte N  bits credited per byte, 0 to 8 (default 2)
  --help, -h                this text
";

const SEED: &str = "\
Usage: entropyservice seed load|save [options]

seed load: at boot, feed the saved seeds to the kernel (seed.credit, written
while the CRNG was ready, is credited; seed.no-credit only mixed), then save a
new seed at once, so no seed is used twice.
seed save: write a new seed from the kernel (at shutdown, or from cron).

Options:
  --seed-dir DIR            seed directory (default /etc/entropyservice/seed)
  --client-seed-dir DIR     the directory an unprivileged (jailed) client keeps its
                            seeds in: they are mixed without credit and removed
  --help, -h                this text

Example: entropyservice seed load --seed-dir /etc/entropyservice/seed
";

#[cfg(feature = "systemd")]
const STATUS: &str = "\
Usage: entropyservice status [options]

Show the client's state and the kernel's random pool.

Options:
  --json                    print JSON for scripts
  --status-file FILE        status file (default /run/entropyservice/status; without
                            it, the one client instance's /run/entropyservice/NAME/status)
  --help, -h                this text
";

#[cfg(not(feature = "systemd"))]
const STATUS: &str = "\
Usage: entropyservice status [options]

Show the client's state and the kernel's random pool.

Options:
  --json                    print JSON for scripts
  --status-file FILE        status file (default /run/entropyservice/status)
  --help, -h                this text
";

#[cfg(feature = "admin")]
const KEYGEN: &str = "\
Usage: entropyservice keygen [options]

Generate the client's SSH key and print the line to paste on the server.

Options:
  --out FILE                private key to create, never overwritten; the public line
                            also goes to FILE.pub (default /etc/entropyservice/id_client)
  --type TYPE               ed25519 or rsa (default: ed25519, or RSA 2048 when the
                            tool cannot make ed25519 keys)
  --tool TOOL               dropbearkey (for dbclient) or ssh-keygen (OpenSSH), or a
                            path to one (default: dropbearkey if present, else ssh-keygen)
  --client NAME             client name for the printed authorize command
                            (default: this host's name)
  --help, -h                this text
";

#[cfg(feature = "admin")]
const AUTHORIZE: &str = "\
Usage: entropyservice authorize --client NAME [options] KEY

Add a client's key to authorized_keys behind the forced command. KEY is a
\"TYPE BASE64 [comment]\" line or a .pub file holding one.

Options:
  --client NAME             client name, for the forced command's --client and the key comment
  --rate N                  bytes per second for this client's sessions (server --rate)
  --max-sessions N          concurrent sessions for this client (server --max-sessions)
  --allow-from CIDRS        CIDRs the client must connect from (server --allow-from)
  --max-bytes N             most bytes one session may send (server --max-bytes)
  --max-time T              longest session, e.g. 10m (server --max-time)
  --authorized-keys FILE    file to change (default ~/.ssh/authorized_keys;
                            /etc/dropbear/authorized_keys for root on OpenWrt)
  --binary PATH             absolute path of entropyservice here (default /usr/bin/entropyservice)
  --flavor F                dropbear, openssh or auto (default auto): the SSH server
                            that reads the file; decides whether `restrict` is safe
  --compat                  write the explicit no-pty,no-port-forwarding,... list
  --dry-run                 print the line and change nothing
  --replace                 rewrite the line that already holds this key instead of refusing
  --help, -h                this text
";

#[cfg(feature = "admin")]
const HOSTKEY: &str = "\
Usage: entropyservice hostkey [options]

Print this server's host keys for the client's pinned --host-key.

Options:
  --dropbear-dir DIR        Dropbear host keys, dropbear_*_host_key
                            (default /etc/dropbear when no directory is given)
  --openssh-dir DIR         OpenSSH host keys, ssh_host_*_key.pub
                            (default /etc/ssh when no directory is given)
  --help, -h                this text
";
