//! entropyservice: moves real randomness over SSH into the kernel's pool.
//!
//! Layout follows the data flow. Server: `source` -> `health` -> `rate` ->
//! stdout (`server`, with session slots in `limits`). Client: `ssh` child ->
//! `health` -> `kernel` credit policy (`client`: `config`, `session`,
//! `peers`, `seeds`, `world` and the daemon loop; with `seed`, `sink`,
//! `status`).
//! `admin` (feature `admin`) holds keygen, authorize and hostkey; `cli`
//! every command's options. Shared: `parse` (all outside input), `files`
//! (atomic replace, private directories), `runtime` (the runtime directory),
//! `child` (running programs, the PATH search), `text` (messages without
//! `format!`), `clock` (the only clock reads). All unsafe code lives in
//! `sys`.
//!
//! The streaming stages (the server's output, the source's device, the
//! sink's input, the client's SSH session) are `embedded_io` streams with a
//! readiness wait (`fd`), and take their time from a `clock::Clock` (the
//! client's from its `World`): the program runs them on descriptors and the
//! monotonic clock, the unit tests on fakes and a fake clock, so their
//! timing is tested in milliseconds.
#![deny(unsafe_code)]

#[cfg(feature = "admin")]
pub mod admin;
pub mod child;
pub mod cli;
pub mod client;
pub mod clock;
pub mod error;
pub mod fd;
pub mod files;
pub mod health;
pub mod hostkey;
pub mod kernel;
pub mod limits;
pub mod log;
pub mod parse;
pub mod rate;
pub mod runtime;
pub mod seed;
pub mod server;
pub mod sink;
pub mod source;
pub mod ssh;
pub mod status;
pub mod sys;
pub mod text;

use error::{Error, Result, Status};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs a parsed command line.
pub fn run(top: cli::Top) -> Result<()> {
    if top.version {
        log::stdout(text::msg(&["entropyservice ", VERSION, "\n"]).as_bytes());
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
        Some(cli::Cmd::Keygen(a)) => admin::keygen(&a),
        #[cfg(feature = "admin")]
        Some(cli::Cmd::Authorize(a)) => admin::authorize(&a),
        #[cfg(feature = "admin")]
        Some(cli::Cmd::Hostkey(a)) => admin::hostkey(&a),
    }
}
