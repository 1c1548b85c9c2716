//! Failover: servers in order, each skipped for a while after a host-key
//! or health failure.

use super::world::World;
use crate::error::{Error, Result, Status};
use crate::log;
use crate::rate::NS;
use crate::ssh::Server;
use crate::status::State;
use crate::text::{msg, Num};

/// Servers in failover order, each with the time until which it is skipped.
pub(super) struct Peers {
    pub(super) list: Vec<(Server, u64)>,
    /// Penalty for a server that failed a host-key check or health test.
    pub(super) penalty: u64,
    pub(super) last_failed: bool,
    /// The caller prints the final error itself: do not log it too.
    pub(super) quiet_last: bool,
    /// Every server in the last round refused the request itself (a
    /// configuration error, 78: e.g. `get N` over its --max-bytes).
    pub(super) all_refused: bool,
}

impl Peers {
    pub(super) fn new(servers: &[Server], penalty: u64) -> Peers {
        Peers {
            list: servers.iter().cloned().map(|s| (s, 0)).collect(),
            penalty,
            last_failed: false,
            quiet_last: false,
            all_refused: false,
        }
    }

    /// Runs `f` on each server not in its penalty period, in order, until one
    /// succeeds. Host-key and health failures put a server in the penalty box.
    pub(super) fn try_each<W: World, T>(
        &mut self,
        w: &mut W,
        st: &mut State,
        mut f: impl FnMut(&mut W, &Server, &mut State) -> Result<T>,
    ) -> Result<T> {
        let now = w.now();
        let mut last = Error::new(
            Status::Unavailable,
            "every server is skipped after recent host-key or health failures",
        );
        // A failure is logged when the next server is tried, or at the end
        // unless the caller reports the returned error itself (`--once`),
        // so that one failure makes one line.
        let mut unlogged: Option<String> = None;
        self.all_refused = true;
        for (s, until) in self.list.iter_mut() {
            if *until > now {
                self.all_refused = false;
                continue;
            }
            if let Some(line) = unlogged.take() {
                log::warn(&line);
            }
            if self.last_failed {
                st.reconnects += 1;
            }
            st.server = s.label();
            match f(w, s, st) {
                Ok(v) => {
                    self.last_failed = false;
                    st.last_error.clear();
                    return Ok(v);
                }
                Err(e) => {
                    self.last_failed = true;
                    self.all_refused &= e.status == Status::Config;
                    if w.signalled() {
                        return Err(e);
                    }
                    unlogged = Some(
                        if matches!(e.status, Status::HostKey | Status::Data | Status::Config) {
                            *until = now.saturating_add(self.penalty);
                            msg(&[
                                &e.msg,
                                "; skipping this server for ",
                                Num::new(self.penalty / NS).as_str(),
                                " s",
                            ])
                        } else {
                            e.msg.clone()
                        },
                    );
                    st.last_error = e.msg.clone();
                    last = e;
                }
            }
        }
        if let Some(line) = unlogged.filter(|_| !self.quiet_last) {
            log::warn(&line);
        }
        Err(last)
    }
}
