//! The `herald` command: parses the command line and hands over to [`herald::cli::run`].

use clap::Parser;
use herald::config::{Cli, Command};

/// mimalloc rather than the system allocator: the engine allocates and frees many small
/// buffers per delivery on every thread, where glibc's malloc spent over a tenth of the CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed memory before giving it back to the system, in ms, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. Its own default (a second) kept a burst's garbage
/// resident: 200,000 events published and drained peaked at 106 MiB with it, 89 MiB with this.
const PURGE_DELAY_MS: &str = "10";

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, None | Some(Command::Serve)) {
        start_again_with_allocator_settings();
    }
    serve_or_run(cli)
}

/// mimalloc reads its settings from the environment once, before `main`, and changing them
/// afterwards takes `unsafe` calls into C. So a server started without them starts itself
/// again, once, with them set (`exec`: the same process id, nothing else has run yet). Should
/// that fail (the binary was replaced meanwhile), it runs on with mimalloc's defaults.
fn start_again_with_allocator_settings() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MIMALLOC_PURGE_DELAY", PURGE_DELAY_MS)
        .exec();
    eprintln!("note: running with mimalloc's default purge delay ({error})");
}

#[tokio::main]
async fn serve_or_run(cli: Cli) -> std::process::ExitCode {
    herald::cli::init_tracing(&cli.config);
    match herald::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
