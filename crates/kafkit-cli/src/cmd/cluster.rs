//! `kafkit cluster`: run the embedded cluster.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Options of `kafkit cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// Number of brokers.
    #[arg(long, default_value_t = 3)]
    pub brokers_count: usize,
    /// Port of the first broker; broker i listens on port-base + i.
    #[arg(long, default_value_t = 9093)]
    pub port_base: u16,
    /// Where the cluster keeps its data (default: <user data dir>/kafkit/cluster).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Partitions of auto-created topics.
    #[arg(long, default_value_t = 3)]
    pub partitions: i32,
}

pub async fn run(a: ClusterArgs) -> anyhow::Result<()> {
    let dir = a
        .data_dir
        .unwrap_or_else(|| super::default_data_dir("cluster"));
    let cluster = kafkit_broker::Cluster::builder()
        .brokers(a.brokers_count)
        .port_base(a.port_base)
        .data_dir(&dir)
        .default_partitions(a.partitions)
        .start()
        .await
        .context("starting the embedded cluster")?;
    println!(
        "kafkit cluster: {} brokers, data in {}",
        a.brokers_count,
        dir.display()
    );
    println!("bootstrap: {}", cluster.bootstrap());
    super::shutdown_signal().await;
    eprintln!("stopping...");
    cluster.shutdown().await;
    Ok(())
}
