//! One integration-test binary. Modules by what they need:
//! `offline` needs no SSH server (also runs under qemu-user for foreign
//! architectures); `e2e` runs the real Dropbear and OpenSSH on loopback;
//! `jail` also needs root, util-linux's `unshare` and `setpriv`, and `ldd`.
// Tests time real processes; clippy.toml keeps clock reads out of the program.
#![allow(clippy::disallowed_methods)]

mod util;

mod e2e;
mod faults;
mod jail;
mod limits;
mod offline;
mod seeding;
mod setup;
