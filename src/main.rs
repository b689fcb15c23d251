//! certorch: build the runtime, run the command line, turn the outcome into an exit code.

mod acme;
mod cli;
mod deploy;
mod dns;
mod fd_limit;
mod host;
mod inventory;
mod limits;
mod notify;
mod plan;
mod problem;
mod process;
mod report;
mod run;
mod secret;
mod small_file;
mod state;
mod tls;
mod transport;
mod x509;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = if cli.verbose {
        "certorch=debug"
    } else {
        "certorch=warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CERTORCH_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match fd_limit::raise() {
        Ok(n) => tracing::debug!("open files limit: {n}"),
        Err(e) => tracing::warn!(
            "cannot raise the open files limit ({e}): a run over many hosts may fail some for want of file descriptors; raise `ulimit -n` for certorch"
        ),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::exit::USAGE);
        }
    };
    ExitCode::from(runtime.block_on(cli::main(cli)))
}
