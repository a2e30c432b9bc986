//! The `portcullis` binary: parse the command line, run the chosen command.

use clap::Parser;

/// mimalloc: a decision call allocates a few hundred small strings when decoded (a
/// CheckResources of 100 items) and the audit writer frees what request threads allocated;
/// glibc's malloc showed as a tenth of the server's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
