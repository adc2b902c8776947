use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // SAFETY: first thing in `main`, before any other thread exists.
    unsafe {
        fixres::backend::quiet_vulkan_device_select();
        fixres::backend::tune_allocator();
    }
    match fixres::cli::run(fixres::cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            // The error and its causes, each said once: our errors often name their cause in
            // their own text already ("cannot read: No such file or directory").
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message = format!("{message}: {cause}");
                }
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
