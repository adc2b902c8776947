use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_vulkan_device_select();
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

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` asks Wayland for the session's GPU
/// whenever Vulkan lists devices; without `XDG_RUNTIME_DIR` (a server, CI, a container) that can
/// only fail, and libwayland prints "error: XDG_RUNTIME_DIR is invalid or not set" on every run.
/// There the layer has nothing to select by, so it is switched off the way Mesa documents
/// (`NODEVICE_SELECT=1`); a user's own setting is left alone.
fn quiet_vulkan_device_select() {
    let unset = |key| std::env::var_os(key).is_none_or(|v| v.is_empty());
    if unset("XDG_RUNTIME_DIR") && unset("WAYLAND_DISPLAY") && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: first thing in `main`, before any other thread exists.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}
