//! Entry point: parse the command line, run, map errors to exit statuses.

use argh::FromArgs;
use entropyservice::{cli, error::Status, log};
use std::process::ExitCode;

mod usage;

#[global_allocator]
static ALLOC: entropyservice::sys::SmallAlloc = entropyservice::sys::SmallAlloc;

/// The subcommands, for usage errors (argh does not list them for us).
const COMMANDS: &[&str] = &[
    "server",
    "client",
    "sink",
    "seed",
    "status",
    #[cfg(feature = "admin")]
    "keygen",
    #[cfg(feature = "admin")]
    "authorize",
    #[cfg(feature = "admin")]
    "hostkey",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .map(|s| s.rsplit('/').next().unwrap_or(s))
        .unwrap_or("entropyservice");
    let mut strs: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    short_flags(&mut strs);
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
    let top = match cli::Top::from_args(&[name], &strs) {
        Ok(t) => t,
        Err(early) => {
            return if early.status.is_ok() {
                // --help: argh is built without its generated help texts.
                let sub = strs.first().copied().filter(|a| COMMANDS.contains(a));
                log::stdout(usage::text(sub).unwrap_or_default().as_bytes());
                ExitCode::SUCCESS
            } else {
                // Through the logger, so the journal files it as an error.
                log::error(&usage_error(name, &strs, &early.output));
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

/// `-V` first means `--version`; `-h` means `--help` where it cannot be the
/// value of an option (first, or after a word that is not an option).
fn short_flags(args: &mut [&str]) {
    if args.first() == Some(&"-V") {
        args[0] = "--version";
    }
    for i in 0..args.len() {
        if args[i] == "-h" && (i == 0 || !takes_value(args[i - 1])) {
            args[i] = "--help";
        }
    }
}

/// Whether `arg` is an option that takes the next word as its value (every
/// option but the switches, which are listed here: the usage test in
/// `usage.rs` keeps this list in step with `cli.rs`).
fn takes_value(arg: &str) -> bool {
    arg.starts_with('-') && !SWITCHES.contains(&arg)
}

/// Every switch of every command.
pub const SWITCHES: [&str; 8] = [
    "--help",
    "--version",
    "--agent",
    "--check",
    "--json",
    "--compat",
    "--dry-run",
    "--replace",
];

/// argh's usage error on one line, with the closest option or command for a
/// typo, and where to read more.
fn usage_error(name: &str, args: &[&str], output: &str) -> String {
    // "Required options not provided:\n    --client\n" -> "...: --client"
    let mut line = String::new();
    for l in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.is_empty() {
        } else if line.ends_with(':') {
            line.push(' ');
        } else if l.ends_with(':') {
            line.push_str("; ");
        } else {
            line.push_str(", ");
        }
        line.push_str(l);
    }
    let sub = args.iter().find(|a| COMMANDS.contains(a)).copied();
    if let Some(bad) = line.strip_prefix("Unrecognized argument: ") {
        let bad = bad.trim();
        let mut known: Vec<String> = Vec::new();
        match sub {
            Some(s) => {
                let help = usage::text(Some(s)).unwrap_or_default();
                known.extend(usage::options(help).map(String::from));
            }
            None => {
                known.extend(COMMANDS.iter().map(|c| c.to_string()));
                known.push("--version".into());
                known.push("--help".into());
            }
        }
        if let Some(best) = closest(bad, &known) {
            line.push_str(" (did you mean ");
            line.push_str(best);
            line.push_str("?)");
        }
    }
    if line.ends_with('.') {
        line.pop();
    }
    line.push_str("; see: ");
    line.push_str(name);
    if let Some(s) = sub {
        line.push(' ');
        line.push_str(s);
    }
    line.push_str(" --help");
    line
}

/// The candidate within a small edit distance of `word`, if any.
fn closest<'a>(word: &str, candidates: &'a [String]) -> Option<&'a str> {
    let limit = if word.len() > 6 { 2 } else { 1 };
    candidates
        .iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.as_str())
}

/// Levenshtein distance, counting a swap of two neighbours as one edit.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let sub = d[(i - 1) * w + j - 1] + usize::from(a[i - 1] != b[j - 1]);
                let mut v = sub.min(d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                v
            };
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SWITCHES is every option that the help texts list without a value.
    #[test]
    fn switches_match_the_help_texts() {
        let mut found = vec!["--help", "--version"];
        for sub in COMMANDS {
            for l in usage::text(Some(sub)).unwrap_or_default().lines() {
                // "  --identity, -i FILE  text": skip the short alias.
                let mut w = l.split_whitespace().map(|w| w.trim_end_matches(','));
                let o = w.next();
                if let (Some(o), Some(next)) = (o, w.find(|w| !w.starts_with('-'))) {
                    let value = next
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || "-_[]<>.".contains(c));
                    if o.starts_with("--") && !value && !found.contains(&o) {
                        found.push(o);
                    }
                }
            }
        }
        found.sort_unstable();
        let mut want = SWITCHES.to_vec();
        want.sort_unstable();
        assert_eq!(found, want);
    }

    #[test]
    fn h_is_help_after_a_switch_but_not_as_a_value() {
        let mut a = ["status", "--json", "-h"];
        short_flags(&mut a);
        assert_eq!(a[2], "--help");
        let mut a = ["client", "--seed-dir", "-h"];
        short_flags(&mut a);
        assert_eq!(a[2], "-h");
        let mut a = ["-V"];
        short_flags(&mut a);
        assert_eq!(a[0], "--version");
    }
}
