//! The `portcullis` binary: parse the command line, run the chosen command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = portcullis_server::cli::Cli::parse();
    match portcullis_server::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
