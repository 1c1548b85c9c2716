//! Entry point: parse the command line, run, map errors to exit statuses.

use argh::FromArgs;
use entropyservice::{cli, error::Status, log};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let name = strs
        .first()
        .map(|s| s.rsplit('/').next().unwrap_or(s))
        .unwrap_or("entropyservice");
    let top = match cli::Top::from_args(&[name], strs.get(1..).unwrap_or(&[])) {
        Ok(t) => t,
        Err(early) => {
            return if early.status.is_ok() {
                print!("{}", early.output);
                ExitCode::SUCCESS
            } else {
                // Through the logger, so the journal files it as an error.
                log::error(early.output.trim_end());
                ExitCode::from(Status::Usage as u8)
            };
        }
    };
    match entropyservice::run(top) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(&e.msg);
            ExitCode::from(e.exit_code())
        }
    }
}
