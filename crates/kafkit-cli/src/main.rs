//! `kafkit`: the tutorial's program and the embedded cluster from the command line.

mod cmd;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "kafkit",
    version,
    about = "A Kafka toolkit: embedded cluster, producer, consumer"
)]
struct Cli {
    /// More logs: -v shows the client's logger lines (group joins, assignments, commits,
    /// writes), -vv adds debug details. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(flatten)]
    global: cmd::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the tutorial's producer and consumer (on an embedded 3-broker cluster unless
    /// --brokers is given).
    Demo(cmd::demo::DemoArgs),
    /// Run only the embedded cluster until Ctrl-C/SIGTERM.
    Cluster(cmd::cluster::ClusterArgs),
    /// List, create, delete and describe topics.
    Topics(cmd::topics::TopicsArgs),
    /// Write records from stdin or a file, one per line (kcat -P).
    Produce(cmd::produce::ProduceArgs),
    /// Print records of a topic (kcat -C), alone or in a group.
    Consume(cmd::consume::ConsumeArgs),
    /// List, describe (members, lag), delete consumer groups and reset their offsets.
    Groups(cmd::groups::GroupsArgs),
    /// Load tests: produce, consume, end-to-end latency, and a comparison with librdkafka.
    Perf(cmd::perf::PerfArgs),
    /// Crash-and-fault harness: producers and a consumer group against a cluster process
    /// that is killed, partitioned and given failing disks; checks nothing acknowledged is lost.
    Chaos(cmd::chaos::ChaosArgs),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,kafkit=info,kafkit_broker=info",
        _ => "info,kafkit=debug,kafkit_broker=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Err(e) = cmd::init_global(&cli.global) {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Demo(a) => cmd::demo::run(a).await,
        Command::Cluster(a) => cmd::cluster::run(a).await,
        Command::Topics(a) => cmd::topics::run(a).await,
        Command::Produce(a) => cmd::produce::run(a).await,
        Command::Consume(a) => cmd::consume::run(a).await,
        Command::Groups(a) => cmd::groups::run(a).await,
        Command::Chaos(a) => cmd::chaos::run(a).await,
        // perf runs as a task on the runtime's workers, as an application's code would, not on
        // the main thread (block_on), where each timer and each woken task needs a thread
        // wake-up.
        Command::Perf(a) => match tokio::spawn(cmd::perf::run(a)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(anyhow::anyhow!("perf task: {e}")),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
