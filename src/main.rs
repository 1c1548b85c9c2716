//! Entry point: parse the command line, run, map errors to exit statuses.

use entropyservice::cli::{self, Early};
use entropyservice::{error::Status, log};
use std::process::ExitCode;

mod usage;

#[global_allocator]
static ALLOC: entropyservice::sys::SmallAlloc = entropyservice::sys::SmallAlloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .map(|s| s.rsplit('/').next().unwrap_or(s))
        .unwrap_or("entropyservice");
    let strs: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    #[cfg(not(feature = "admin"))]
    if let Some(c) = strs
        .first()
        .filter(|c| ["keygen", "authorize", "hostkey"].contains(c))
    {
        log::error(&[
            "`",
            c,
            "` is not in this build (built without the admin commands, as the router package is); run it where the full entropyservice is installed",
        ]
        .concat());
        return ExitCode::from(Status::Usage as u8);
    }
    let top = match cli::parse(&strs) {
        Ok(t) => t,
        Err(Early::Help) => {
            let sub = strs.first().and_then(|a| command(a));
            log::stdout(
                usage::text(sub.map(|c| c.name))
                    .unwrap_or_default()
                    .as_bytes(),
            );
            return ExitCode::SUCCESS;
        }
        Err(Early::Usage(line)) => {
            // Through the logger, so the journal files it as an error.
            log::error(&usage_error(name, &strs, line));
            return ExitCode::from(Status::Usage as u8);
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

/// The command called `word`, if any.
fn command(word: &str) -> Option<&'static cli::Command> {
    cli::COMMANDS.iter().find(|c| c.name == word)
}

/// A usage error with the closest option or command for a typo, and where
/// to read more.
fn usage_error(name: &str, args: &[&str], mut line: String) -> String {
    let sub = args.iter().find_map(|a| command(a));
    if let Some(bad) = line.strip_prefix("Unrecognized argument: ") {
        let mut best = Closest::new(bad);
        match sub {
            Some(c) => c.opts.iter().for_each(|o| best.consider(o.long)),
            None => {
                cli::COMMANDS.iter().for_each(|c| best.consider(c.name));
                best.consider("--version");
            }
        }
        best.consider("--help");
        if let Some(b) = best.found {
            line = [&line, " (did you mean ", b, "?)"].concat();
        }
    }
    line.push_str("; see: ");
    line.push_str(name);
    if let Some(c) = sub {
        line.push(' ');
        line.push_str(c.name);
    }
    line.push_str(" --help");
    line
}

/// The first candidate at the smallest edit distance from `word`, within
/// 1 edit (2 for words longer than 6 bytes).
struct Closest<'w> {
    word: &'w str,
    limit: usize,
    found: Option<&'static str>,
}

impl<'w> Closest<'w> {
    fn new(word: &'w str) -> Self {
        let limit = if word.len() > 6 { 2 } else { 1 };
        Closest {
            word,
            limit,
            found: None,
        }
    }

    fn consider(&mut self, candidate: &'static str) {
        let d = distance(self.word, candidate);
        if d <= self.limit {
            // A later candidate wins only when strictly closer.
            self.limit = d.saturating_sub(1);
            self.found = Some(candidate);
        }
    }
}

/// Levenshtein distance in bytes, counting a swap of two neighbours as one
/// edit; words of 40 bytes or more are not compared.
fn distance(a: &str, b: &str) -> usize {
    const N: usize = 40;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() >= N || b.len() >= N {
        return usize::MAX;
    }
    let mut d = [[0u8; N]; N];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i][j] = if i == 0 || j == 0 {
                (i + j) as u8
            } else {
                let sub = d[i - 1][j - 1] + u8::from(a[i - 1] != b[j - 1]);
                let mut v = sub.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[i - 2][j - 2] + 1);
                }
                v
            };
        }
    }
    usize::from(d[a.len()][b.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(args: &[&str], line: &str) -> String {
        usage_error("entropyservice", args, line.to_string())
    }

    #[test]
    fn usage_errors_name_the_closest_option_or_command() {
        assert_eq!(
            err(&["status", "--jsno"], "Unrecognized argument: --jsno"),
            "Unrecognized argument: --jsno (did you mean --json?); see: entropyservice status --help"
        );
        assert_eq!(
            err(&["clinet"], "Unrecognized argument: clinet"),
            "Unrecognized argument: clinet (did you mean client?); see: entropyservice --help"
        );
        assert_eq!(
            err(&["--verison"], "Unrecognized argument: --verison"),
            "Unrecognized argument: --verison (did you mean --version?); see: entropyservice --help"
        );
        assert_eq!(
            err(
                &["client", "--frobnicate"],
                "Unrecognized argument: --frobnicate"
            ),
            "Unrecognized argument: --frobnicate; see: entropyservice client --help"
        );
        // --max-bytes is 1 edit away, --min-bytes 2.
        assert_eq!(
            err(&["sink", "--mox-bytes"], "Unrecognized argument: --mox-bytes"),
            "Unrecognized argument: --mox-bytes (did you mean --max-bytes?); see: entropyservice sink --help"
        );
        assert_eq!(
            err(
                &["seed"],
                "Required positional arguments not provided: action"
            ),
            "Required positional arguments not provided: action; see: entropyservice seed --help"
        );
    }

    #[test]
    fn distance_counts_edits_and_swaps() {
        assert_eq!(distance("--json", "--json"), 0);
        assert_eq!(distance("--jsno", "--json"), 1);
        assert_eq!(distance("--jon", "--json"), 1);
        assert_eq!(distance("--jsonn", "--json"), 1);
        assert_eq!(distance("--clinet", "--client"), 1);
        assert_eq!(distance("", "ab"), 2);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance(&"x".repeat(40), "x"), usize::MAX);
    }
}
