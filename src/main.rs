//! Entry point: parse the command line, start logging, run.

use clap::Parser;
use nephoran_kafka_consumer::{cli, telemetry};

// Every message allocates its copies, events and futures on one thread and frees some on
// another (librdkafka's delivery reports); glibc's malloc spent a quarter of the worker's
// time on that in the throughput benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    telemetry::init();
    match cli::main(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
