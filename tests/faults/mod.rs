//! Issue 7: the fault matrix, signals and keys, with real processes, in
//! the order of the fault matrix:
//! `network` (1-4: the server unreachable, dying or stalling mid-stream,
//! a network partition), `streams` (5-6: wrong and unknown host keys,
//! constant, short and repeated streams), `storage` (7-8: kill -9 of the
//! client, a full disk), `signals` (10), `missing` (11: missing programs,
//! keys and sources), `clock` (12: clock jumps), `keys` (agent keys, no
//! shell, what a forced command refuses) and `deadlines` (session deadlines
//! against an SSH child that chatters or trickles, the status file).
//!
//! Each test says what it breaks and what it expects. They need root (mount
//! and network namespaces, RNDADDENTROPY, setpriv), dropbear, dbclient, sshd,
//! ssh, ssh-agent, ssh-add, strace, ip, unshare with time namespaces, and a
//! kernel with veth and tmpfs. A missing tool fails the test loudly.
//!
//! Timeouts are short on purpose (stall 1-2 s, back-off capped at 1-4 s) so
//! the whole module runs in well under two minutes on two shared cores.

mod clock;
mod deadlines;
mod keys;
mod missing;
mod network;
mod signals;
mod storage;
mod streams;

use crate::util::*;

/// The client daemon in stream mode against `srv` (pinned, status file in
/// `dir`), with `--stall-timeout STALL` and back-off capped at 1 s.
fn stream_daemon(srv: &SshServer, key: &Keypair, dir: &TempDir, stall: &str) -> Daemon {
    // A stream lasts past CRNG readiness only on a kernel before 5.18.
    Daemon::spawn(
        &mut on_old_kernel(
            client_cmd_opts(srv, key, dir, &[("--stall-timeout", stall)]).args([
                "--mode",
                "stream",
                "--max-backoff",
                "1s",
                "127.0.0.1",
            ]),
            dir,
        ),
        dir,
    )
}
