//! The client daemon (or any long-running command) under test: its output
//! in a log file, its `key: value` status file, polling for a state, signals
//! and the exit status. Killed and reaped on drop, also when a test fails.

use super::procfs::send;
use super::{poll, TempDir};
use rustix::process::Signal;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A client status file (`key: value` lines) as a map; empty if absent.
pub fn read_status(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A numeric field of a status map; 0 if absent or not a number.
pub fn status_num(st: &HashMap<String, String>, key: &str) -> u64 {
    st.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub struct Daemon {
    child: Child,
    log: PathBuf,
    status: PathBuf,
}

impl Daemon {
    /// `dir` holds the log (`daemon.log`); the status file is `dir/status`
    /// (as `client_cmd` sets it).
    pub fn spawn(cmd: &mut Command, dir: &TempDir) -> Daemon {
        Self::spawn_at(cmd, dir.join("daemon.log"), dir.join("status"))
    }

    /// Output to `log`, status file at `status`.
    pub fn spawn_at(cmd: &mut Command, log: PathBuf, status: PathBuf) -> Daemon {
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Daemon { child, log, status }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn status(&self) -> HashMap<String, String> {
        read_status(&self.status)
    }

    pub fn num(&self, key: &str) -> u64 {
        status_num(&self.status(), key)
    }

    /// Polls until `cond(status, log)` holds; panics with the log on a
    /// timeout or if the process exits first. Returns how long it took.
    #[track_caller]
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&HashMap<String, String>, &str) -> bool,
    ) -> Duration {
        let start = Instant::now();
        let mut st = HashMap::new();
        let met = poll(limit, || {
            st = self.status();
            if cond(&st, &self.log()) {
                return true;
            }
            if let Some(code) = self.child.try_wait().unwrap() {
                panic!("exited ({code}) before {what}: {st:?}\n{}", self.log());
            }
            false
        });
        assert!(met, "no {what} within {limit:?}: {st:?}\n{}", self.log());
        start.elapsed()
    }

    /// Waits (up to 60 s) until the status file says `state` with at least
    /// `sessions` sessions.
    #[track_caller]
    pub fn wait_state(&mut self, state: &str, sessions: u64) {
        let what = format!("state {state} after {sessions} sessions");
        self.wait_for(&what, Duration::from_secs(60), |st, _| {
            st.get("state").map(String::as_str) == Some(state)
                && status_num(st, "sessions") >= sessions
        });
    }

    pub fn signal(&self, sig: Signal) {
        send(self.pid(), sig);
    }

    #[track_caller]
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let mut exit = None;
        poll(limit, || {
            exit = self.child.try_wait().unwrap();
            exit.is_some()
        });
        exit.unwrap_or_else(|| panic!("still running after {limit:?}\n{}", self.log()))
    }

    /// SIGTERM, then the exit status (ended by a signal, or still running
    /// after 15 s, fails the test, with the log). The bound only catches a
    /// client that does not stop: at once on a quiet machine, it allows for
    /// a loaded one.
    #[track_caller]
    pub fn stop(&mut self) -> i32 {
        self.stop_within(Duration::from_secs(15))
    }

    /// `stop` with the exit due within `limit`.
    #[track_caller]
    pub fn stop_within(&mut self, limit: Duration) -> i32 {
        self.signal(Signal::TERM);
        let st = self.wait_exit(limit);
        st.code()
            .unwrap_or_else(|| panic!("ended by {st}, not by its SIGTERM handler\n{}", self.log()))
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Panics with the log if the process has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("exited with {st}\n{}", self.log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
