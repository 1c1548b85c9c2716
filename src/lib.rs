//! entropyservice: moves real randomness over SSH into the kernel's pool.
//!
//! Layout follows the data flow. Server: `source` -> `health` -> `rate` ->
//! stdout (`server`, with `limits`). Client: `ssh` child -> `health` ->
//! `kernel` credit policy (`client`, `seed`, `sink`, `status`). All unsafe
//! code lives in `sys`.
#![deny(unsafe_code)]

pub mod child;
pub mod cli;
pub mod client;
pub mod clock;
pub mod error;
pub mod health;
pub mod hostkey;
pub mod kernel;
pub mod limits;
pub mod log;
pub mod parse;
pub mod rate;
pub mod seed;
pub mod server;
#[cfg(feature = "admin")]
pub mod setup;
pub mod sink;
pub mod source;
pub mod ssh;
pub mod status;
pub mod sys;

use error::{Error, Result, Status};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs a parsed command line.
pub fn run(top: cli::Top) -> Result<()> {
    if top.version {
        log::stdout(error::msg(&["entropyservice ", VERSION, "\n"]).as_bytes());
        return Ok(());
    }
    match top.cmd {
        None => Err(Error::new(
            Status::Usage,
            "no command given; run `entropyservice --help`",
        )),
        Some(cli::Cmd::Server(a)) => server::run(&a),
        Some(cli::Cmd::Client(a)) => client::run(&a),
        Some(cli::Cmd::Sink(a)) => sink::run(&a),
        Some(cli::Cmd::Seed(a)) => seed::run(&a),
        Some(cli::Cmd::Status(a)) => status::run(&a),
        #[cfg(feature = "admin")]
        Some(cli::Cmd::Keygen(a)) => setup::keygen(&a),
        #[cfg(feature = "admin")]
        Some(cli::Cmd::Authorize(a)) => setup::authorize(&a),
        #[cfg(feature = "admin")]
        Some(cli::Cmd::Hostkey(a)) => setup::hostkey(&a),
    }
}
