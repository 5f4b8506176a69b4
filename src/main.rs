//! Entry point: parse the command line, start logging, run.

use clap::Parser;
use nephoran_kafka_consumer::{cli, telemetry};

// Every message allocates its copies, events and futures on one thread and frees some on
// another (librdkafka's delivery reports); glibc's malloc spent a quarter of the worker's
// time on that in the throughput benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The exit status after a panic anywhere in the process (Rust's own for a panicking
/// main thread).
const PANIC_EXIT_CODE: i32 = 101;

/// How long the end of the process waits for blocking tasks still running when the
/// command is done: a lag read can still hold the Kafka consumer, which then leaves its
/// group from that task and blocks while the brokers do not answer. The shutdown deadline
/// is already spent by then; leaving the group is the session timeout's job.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        telemetry::init();
        exit_on_panic();
        match cli::main(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::FAILURE
            }
        }
    });
    runtime.shutdown_timeout(EXIT_GRACE);
    code
}

/// A panic on any thread (the Kafka poll thread, the worker's loop, a task) ends the
/// process at once with a non-zero status. Left alone, a panicking thread or task dies
/// by itself while the rest of the process, `/healthz` included, carries on as if all
/// were well: a partition or the whole group would stop with nothing to restart it.
/// Exiting lets the orchestrator restart the worker and its liveness probe tell the
/// truth; uncommitted messages are processed again by the next owner.
fn exit_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("(unnamed)");
        tracing::error!(
            panic = message, location = %location, thread,
            exit_code = PANIC_EXIT_CODE,
            "panic: the process exits so that it is restarted"
        );
        // Also plainly on stderr, in case the panic was in the logger itself.
        eprintln!("panic in thread {thread} at {location}: {message}; exiting");
        std::process::exit(PANIC_EXIT_CODE);
    }));
}
