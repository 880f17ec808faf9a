//! `kafkit topics list|create|delete|describe`.

use anyhow::Context;
use clap::{Args, Subcommand};

/// Options of `kafkit topics`.
#[derive(Args, Debug)]
pub struct TopicsArgs {
    #[command(subcommand)]
    pub action: Action,
}

/// What to do with topics.
#[derive(Subcommand, Debug)]
pub enum Action {
    /// Topic names, one per line.
    List,
    /// Create a topic.
    Create {
        /// Topic name.
        topic: String,
        /// Partitions.
        #[arg(short, long, default_value_t = 3)]
        partitions: i32,
        /// Replication factor (-1: the broker's default).
        #[arg(short, long, default_value_t = -1, allow_hyphen_values = true)]
        replication_factor: i16,
    },
    /// Grow a topic to more partitions.
    AddPartitions {
        /// Topic name.
        topic: String,
        /// The new partition count.
        #[arg(short, long)]
        count: i32,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        topic: String,
    },
    /// Partitions with leader, replicas, ISR, log start and high watermark.
    Describe {
        /// Topic name.
        topic: String,
    },
}

pub async fn run(a: TopicsArgs) -> anyhow::Result<()> {
    let admin = super::admin()?;
    match a.action {
        Action::List => {
            for t in admin.list_topics().await.context("listing topics")? {
                println!("{t}");
            }
        }
        Action::Create {
            topic,
            partitions,
            replication_factor,
        } => {
            admin
                .create_topic(&topic, partitions, replication_factor)
                .await
                .with_context(|| format!("creating {topic}"))?;
            println!("created {topic}");
        }
        Action::AddPartitions { topic, count } => {
            admin
                .create_partitions(&topic, count)
                .await
                .with_context(|| format!("adding partitions to {topic}"))?;
            println!("{topic} now has {count} partitions");
        }
        Action::Delete { topic } => {
            admin
                .delete_topic(&topic)
                .await
                .with_context(|| format!("deleting {topic}"))?;
            println!("deleted {topic}");
        }
        Action::Describe { topic } => {
            let parts = admin
                .describe_topic(&topic)
                .await
                .with_context(|| format!("describing {topic}"))?;
            println!(
                "{:<10} {:>6} {:<12} {:<12} {:>10} {:>14}",
                "PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK"
            );
            let list = |v: &[i32]| {
                v.iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            for p in parts {
                println!(
                    "{:<10} {:>6} {:<12} {:<12} {:>10} {:>14}",
                    p.partition,
                    p.leader,
                    list(&p.replicas),
                    list(&p.isr),
                    p.log_start,
                    p.high_watermark
                );
            }
        }
    }
    Ok(())
}
