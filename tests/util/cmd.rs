//! Running the built `fixres` binary: `fixres_ok` and `fixres_err` check its exit status and,
//! when it is not the one expected, panic with the command line, stderr and stdout.

use std::ffi::OsStr;
use std::process::{Command, ExitStatus};

/// What a run printed, as text.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout as one JSON value (what `--json` prints).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{}", self.stdout))
    }
}

/// `fixres` with `args`, to run with `ok` or `err` (after setting, say, an environment variable).
pub fn command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fixres"));
    cmd.args(args);
    cmd
}

/// Runs `cmd`; panics unless it exits successfully.
pub fn ok(cmd: &mut Command) -> Output {
    run(cmd, true)
}

/// Runs `cmd`; panics if it exits successfully.
pub fn err(cmd: &mut Command) -> Output {
    run(cmd, false)
}

/// `fixres args`, which must succeed.
pub fn fixres_ok<S: AsRef<OsStr>>(args: &[S]) -> Output {
    ok(&mut command(args))
}

/// `fixres args`, which must fail.
pub fn fixres_err<S: AsRef<OsStr>>(args: &[S]) -> Output {
    err(&mut command(args))
}

fn run(cmd: &mut Command, success: bool) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let out = Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if out.status.success() != success {
        let expected = if success { "success" } else { "a failure" };
        panic!(
            "{cmd:?}\nexited with {}, expected {expected}\n--- stderr\n{}\n--- stdout\n{}",
            out.status, out.stderr, out.stdout
        );
    }
    out
}
