//! The `strata` binary.

use std::process::ExitCode;

use clap::Parser;
use strata_server::{Cli, Command, Config};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not in a log file or the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let Cli {
        command: Command::Serve(args),
    } = Cli::parse();
    let config = match Config::resolve(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strata: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strata: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match strata_server::start(config).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("strata: {e}");
                return ExitCode::FAILURE;
            }
        };
        match server.local_addr() {
            // The one line on stdout: scripts and tests read the address from it.
            Ok(addr) => println!("strata: ready to accept connections on {addr}"),
            Err(e) => tracing::warn!(error = %e, "no local address"),
        }
        server.run(strata_server::signals()).await;
        ExitCode::SUCCESS
    })
}
