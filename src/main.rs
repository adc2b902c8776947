use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match fixres::cli::run(fixres::cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
