//! entropyservice: moves real randomness over SSH into the kernel's pool.
//!
//! Layout follows the data flow. Server: `source` -> `health` -> `rate` ->
//! stdout (`server`, with `limits`). Client: `ssh` child -> `health` ->
//! `kernel` credit policy (`client`, `seed`, `sink`, `status`). All unsafe
//! code lives in `sys`.
#![deny(unsafe_code)]

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
pub mod setup;
pub mod sink;
pub mod source;
pub mod ssh;
pub mod status;
pub mod sys;

use error::{Error, Result, Status};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn seed_cmd(a: &cli::Seed) -> Result<()> {
    let dir = a.seed_dir.as_deref().unwrap_or(seed::DEFAULT_DIR);
    seed::check_dir_mode(dir)?;
    let d = seed::SeedDir::open(dir)?;
    match a.action.as_str() {
        "load" => {
            let mut pool = kernel::Pool::open(0)?;
            let l = d.load(&mut pool)?;
            // Like seedrng: replace the used seed at once, so a crash later
            // in boot still leaves one for the next boot.
            let creditable = d.save()?;
            let runtime = status::runtime_dir();
            if limits::ensure_private_dir(&runtime).is_ok() {
                let _ = std::fs::write(error::msg(&[&runtime, "/seed-loaded"]), b"");
            }
            log::info_parts(&[
                "seed load: ",
                log::Num::new(l.bytes as u64).as_str(),
                " bytes mixed, ",
                log::Num::new(l.bits_credited).as_str(),
                " bits credited; new seed saved",
                if creditable {
                    " (creditable)"
                } else {
                    " (not creditable)"
                },
            ]);
            Ok(())
        }
        "save" => {
            let creditable = d.save()?;
            log::info(if creditable {
                "seed save: creditable seed written"
            } else {
                "seed save: seed written, not creditable (CRNG not ready)"
            });
            Ok(())
        }
        _ => Err(Error::new(Status::Usage, "seed takes `load` or `save`")),
    }
}

/// Runs a parsed command line.
pub fn run(top: cli::Top) -> Result<()> {
    if top.version {
        println!("entropyservice {VERSION}");
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
        Some(cli::Cmd::Seed(a)) => seed_cmd(&a),
        Some(cli::Cmd::Status(a)) => status::run(&a),
        Some(cli::Cmd::Keygen(a)) => setup::keygen(&a),
        Some(cli::Cmd::Authorize(a)) => setup::authorize(&a),
        Some(cli::Cmd::Hostkey(a)) => setup::hostkey(&a),
    }
}
