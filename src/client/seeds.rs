//! The seed file: refreshed after the first successful pull of each boot,
//! then at most every --seed-interval, and at shutdown.

use super::config::Config;
use crate::clock;
use crate::kernel;
use crate::log;
use crate::seed::{self, SeedDir};
use crate::status::State;
use crate::text::msg;

/// When to refresh the seed file: after the first successful pull of each
/// boot, then at most every `interval` (plus at shutdown), so a top-up never
/// costs a flash write.
#[derive(Debug)]
pub(super) struct SeedSchedule {
    pub(super) interval: u64,
    /// A seed was already refreshed this boot (by an earlier client run).
    pub(super) saved_this_boot: bool,
    pub(super) last: Option<u64>,
}

impl SeedSchedule {
    /// Whether a successful pull at `now` should refresh the seed file.
    fn due(&mut self, now: u64) -> bool {
        let due = match self.last {
            None => !self.saved_this_boot,
            Some(t) => now.saturating_sub(t) >= self.interval,
        };
        if due || self.last.is_none() {
            self.last = Some(now);
        }
        due
    }
}

pub(super) fn save_seed(cfg: &Config, st: &mut State) {
    let r = seed::check_dir_mode(&cfg.seed_dir)
        .and_then(|()| SeedDir::open(&cfg.seed_dir))
        .and_then(|d| d.save());
    match r {
        Ok(creditable) => {
            #[allow(clippy::disallowed_methods)] // the wall clock, for a status time only
            let wall = clock::wall_secs();
            st.seed_saved_at = wall;
            log::info_parts(&[
                if creditable {
                    "saved a creditable seed in "
                } else {
                    "saved a seed (not creditable: the CRNG is not ready) in "
                },
                &cfg.seed_dir,
            ]);
        }
        Err(e) => log::warn(&e.msg),
    }
}

/// The per-boot marker: the boot id of the last boot in which a seed was
/// refreshed after a successful pull.
fn boot_marker(cfg: &Config) -> String {
    msg(&[&cfg.runtime, "/seed-saved"])
}

pub(super) fn saved_this_boot(cfg: &Config) -> bool {
    match (
        kernel::boot_id(),
        crate::sys::read_to_string(&boot_marker(cfg)),
    ) {
        (Some(id), Ok(text)) => text.trim() == id.as_str(),
        _ => false,
    }
}

fn mark_saved_this_boot(cfg: &Config) {
    if let Some(id) = kernel::boot_id() {
        let _ = std::fs::write(boot_marker(cfg), id.as_bytes());
    }
}

/// Runs the schedule after a successful pull at `now`; saves a seed when due.
pub(super) fn after_pull(cfg: &Config, seeds: &mut SeedSchedule, st: &mut State, now: u64) {
    if seeds.due(now) {
        save_seed(cfg, st);
        if !seeds.saved_this_boot {
            seeds.saved_this_boot = true;
            mark_saved_this_boot(cfg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_schedule_first_pull_then_interval() {
        let mut s = SeedSchedule {
            interval: 100,
            saved_this_boot: false,
            last: None,
        };
        assert!(s.due(5), "first pull of the boot");
        assert!(!s.due(50) && !s.due(104));
        assert!(s.due(105));
        assert!(!s.due(106));
        // A restarted client in the same boot waits a full interval.
        let mut s = SeedSchedule {
            interval: 100,
            saved_this_boot: true,
            last: None,
        };
        assert!(!s.due(5) && !s.due(104));
        assert!(s.due(105));
    }
}
