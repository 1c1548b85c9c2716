//! One integration-test binary. Modules by what they need:
//! `offline` needs no SSH server (also runs under qemu-user for foreign
//! architectures); `e2e` runs the real Dropbear and OpenSSH on loopback;
//! `jail` also needs root, util-linux's `unshare` and `setpriv`, and `ldd`.
//! `util/` holds the fixtures: SSH servers and clients (`servers`), the
//! client daemon under test (`daemon`) and /proc checks (`procfs`);
//! `each_flavor!` makes one test per SSH flavour from one body.
// Tests time real processes; clippy.toml keeps clock reads out of the program.
#![allow(clippy::disallowed_methods)]

#[macro_use]
mod util;

mod e2e;
mod faults;
mod jail;
mod limits;
mod modes;
mod offline;
mod seeding;
mod setup;
