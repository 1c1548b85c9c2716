//! What /proc says about processes (parents, states, CPU time, command
//! lines, environments), signals, and the checks that a test left no SSH
//! client or child process behind.

use super::{bin, poll};
use rustix::process::{Pid, Signal};
use std::time::Duration;

/// The fields of `/proc/PID/stat` the tests look at.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    /// R, S, D, Z, ...
    pub state: char,
    pub ppid: u32,
    /// utime + stime of the process itself, in clock ticks.
    pub cpu: u64,
    /// cutime + cstime: the children it reaped.
    pub reaped_cpu: u64,
}

/// `/proc/PID/stat` of `pid`, or None once it is gone (a zombie still has one).
pub fn stat(pid: u32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces and ')': the fields
    // after its last ')' are state(0) ppid(1) ... utime(11) stime(12)
    // cutime(13) cstime(14).
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        cpu: n(11) + n(12),
        reaped_cpu: n(13) + n(14),
    })
}

pub fn ppid(pid: u32) -> Option<u32> {
    stat(pid).map(|s| s.ppid)
}

/// Is `pid` a zombie?
pub fn is_zombie(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.state == 'Z')
}

/// Has `pid` exited (gone or a zombie)? Its files, and so its locks, are
/// released by then.
pub fn exited(pid: u32) -> bool {
    stat(pid).map_or(true, |s| s.state == 'Z')
}

/// utime + stime of a live `pid`, in clock ticks.
#[track_caller]
pub fn cpu_ticks(pid: u32) -> u64 {
    stat(pid)
        .unwrap_or_else(|| panic!("process {pid} is gone"))
        .cpu
}

pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect()
}

/// Pids of live processes whose parent is `ppid`.
pub fn children_of(ppid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| stat(*p).is_some_and(|s| s.ppid == ppid))
        .collect()
}

pub fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// CPU ticks used by `pid`, its live descendants and every child it reaped.
pub fn tree_cpu(pid: u32) -> u64 {
    let s = stat(pid).unwrap_or_default();
    s.cpu
        + s.reaped_cpu
        + descendants(pid)
            .into_iter()
            .filter_map(stat)
            .map(|s| s.cpu)
            .sum::<u64>()
}

pub fn exe_name(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// The NUL-separated strings of `/proc/PID/FILE` (cmdline, environ).
fn strings(pid: u32, file: &str) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

pub fn environ(pid: u32) -> Vec<String> {
    strings(pid, "environ")
}

pub fn cmdline(pid: u32) -> Vec<String> {
    strings(pid, "cmdline")
}

/// Sends `sig` to `pid`; a process already gone is not an error.
pub fn send(pid: u32, sig: Signal) {
    let _ = rustix::process::kill_process(Pid::from_raw(pid as i32).unwrap(), sig);
}

/// The `entropyservice server` processes serving connections to `port`
/// (found by SSH_CONNECTION, whose last field is the server's port).
pub fn forced_commands(port: u16) -> Vec<u32> {
    let me = std::fs::canonicalize(bin()).unwrap();
    let suffix = format!(" {port}");
    all_pids()
        .into_iter()
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok().as_ref() == Some(&me))
        .filter(|p| {
            environ(*p)
                .iter()
                .any(|v| v.starts_with("SSH_CONNECTION=") && v.ends_with(&suffix))
        })
        .collect()
}

/// The per-connection server processes above the forced command `pid`
/// (Dropbear's session child; sshd's privileged monitor and session
/// process), up to but not including the listener.
pub fn session_processes(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut p = pid;
    while let Some(parent) = ppid(p) {
        if !matches!(exe_name(parent).as_str(), "dropbear" | "sshd") {
            break; // p is the listener
        }
        if p != pid {
            out.push(p);
        }
        p = parent;
    }
    out
}

/// SSH client processes (dbclient or ssh) with `port` on their command line.
pub fn ssh_clients_for(port: u16) -> Vec<u32> {
    let p = port.to_string();
    all_pids()
        .into_iter()
        .filter(|pid| {
            let args = cmdline(*pid);
            args.first()
                .is_some_and(|a| a.ends_with("dbclient") || a.ends_with("/ssh"))
                && args.contains(&p)
        })
        .collect()
}

/// No SSH client for `port` may outlive the entropyservice process that ran
/// it: waits up to 10 s for them to go (a client killed with its parent
/// ends as soon as its connection does; a leaked one lives on).
#[track_caller]
pub fn assert_no_ssh_client_for(port: u16) {
    let mut left = Vec::new();
    let gone = poll(Duration::from_secs(10), || {
        left = ssh_clients_for(port);
        left.is_empty()
    });
    assert!(
        gone,
        "SSH client processes left behind for port {port}: {left:?}"
    );
}

/// No SSH child of `pid` is a zombie, at most one is alive, and none of the
/// earlier children in `seen` is still around.
#[track_caller]
pub fn assert_children_clean(pid: u32, seen: &[u32]) {
    let kids = children_of(pid);
    assert!(kids.len() <= 1, "more than one SSH child: {kids:?}");
    for k in &kids {
        assert!(!is_zombie(*k), "zombie child {k}");
    }
    for old in seen {
        if kids.contains(old) {
            continue;
        }
        if let Some(s) = stat(*old) {
            assert!(
                s.ppid != pid,
                "old SSH child {old} still a child of the client (state {})",
                s.state
            );
        }
    }
}
