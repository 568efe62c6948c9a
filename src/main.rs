//! The `herald` command: parses the command line and hands over to [`herald::cli::run`].

use clap::Parser;

/// mimalloc rather than the system allocator: the engine allocates and frees many small
/// buffers per delivery on every thread, where glibc's malloc spent over a tenth of the CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = herald::config::Cli::parse();
    herald::cli::init_tracing(&cli.config);
    match herald::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
