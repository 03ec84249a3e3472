//! `memshim`: the command line. It parses the arguments and calls the library's `cmd` (the CLI's
//! core is `lib.rs`).
//!
//! Each subcommand lives in its own file under `cmd/` and owns its clap arguments; adding one
//! (e.g. `run`) is a new file, a variant of [`Command`] and a match arm.

use clap::{Parser, Subcommand};
use memshim_cli::cmd;

/// Sampling memory profiler for Python services and their native extensions.
///
/// `memshim run -- COMMAND` runs a program under libmemshim.so; it writes `memshim.<pid>.msh`.
/// The other commands read such captures offline (the process need not be alive).
#[derive(Parser)]
#[command(name = "memshim", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A directory of symbols by build-id (`memshim bundle`'s output, a debuginfod cache, or a
    /// tree like /usr/lib/debug), searched before the modules' own paths; may be repeated.
    #[arg(long, global = true, value_name = "DIR")]
    symbols: Vec<std::path::PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    Stats(cmd::stats::Args),
    Report(cmd::report::Args),
    Flamegraph(cmd::flamegraph::Args),
    Timeline(cmd::timeline::Args),
    Pprof(cmd::pprof::Args),
    Html(cmd::html::Args),
    Run(cmd::run::Args),
    Diff(cmd::diff::Args),
    Bundle(cmd::bundle::Args),
    Serve(cmd::serve::Args),
    Ctl(cmd::ctl::Args),
    Check(cmd::check::Args),
}

fn main() {
    std::panic::set_hook(Box::new(|info| {
        // A bug in memshim, not in the user's input: still one line and exit code 2.
        eprintln!("memshim: error: internal error (please report): {info}");
        std::process::exit(2);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => exit_on_clap_error(e),
    };
    memshim_cli::symbols::configure(cli.symbols);
    let result = match cli.command {
        Command::Stats(a) => cmd::stats::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Flamegraph(a) => cmd::flamegraph::run(a),
        Command::Timeline(a) => cmd::timeline::run(a),
        Command::Pprof(a) => cmd::pprof::run(a),
        Command::Html(a) => cmd::html::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Bundle(a) => cmd::bundle::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Ctl(a) => cmd::ctl::run(a),
        Command::Check(a) => cmd::check::run(a),
    };
    match result {
        Ok(()) => {}
        Err(e) => {
            eprintln!("memshim: error: {e}");
            std::process::exit(2);
        }
    }
}

/// `--help`/`--version` print as clap does; usage errors become one `memshim: error:` line.
fn exit_on_clap_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {
            eprintln!("memshim: error: {} (see memshim --help)", clap_one_line(&e));
            std::process::exit(2);
        }
    }
}

/// clap's message on one line. It names what it is about on the lines after a first line
/// ending in a colon (`the following required arguments were not provided:` then
/// `  --output <OUTPUT>`); those are joined onto it, the usage and tips after them are not.
fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("bad arguments");
    let mut out = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if out.ends_with(':') {
        let named: Vec<&str> = lines
            .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
            .map(str::trim)
            .collect();
        if !named.is_empty() {
            out.push(' ');
            out.push_str(&named.join(", "));
        }
    }
    out
}
