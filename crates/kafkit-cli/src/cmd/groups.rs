//! `kafkit groups list|describe|delete|reset-offsets` (kafka-consumer-groups).

use std::collections::BTreeMap;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use super::consume::OffsetSpec;

/// Options of `kafkit groups`.
#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(subcommand)]
    pub action: Action,
}

/// What to do with groups.
#[derive(Subcommand, Debug)]
pub enum Action {
    /// Groups with their state.
    List,
    /// Members and assignments, committed offsets, lag per partition and in total.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete a group that has no members (its committed offsets go with it).
    Delete {
        /// Group id.
        group: String,
    },
    /// Set a group's committed offsets for a topic (the group must have no members).
    ResetOffsets {
        /// Group id.
        group: String,
        /// Topic.
        #[arg(short, long)]
        topic: String,
        /// beginning, end, <offset>, -<N> (N before the end) or @<timestamp ms>.
        #[arg(long = "to", allow_hyphen_values = true)]
        to: String,
        /// Only this partition (default: all).
        #[arg(short, long)]
        partition: Option<i32>,
    },
}

pub async fn run(a: GroupsArgs) -> anyhow::Result<()> {
    let admin = super::admin()?;
    match a.action {
        Action::List => {
            let groups = admin.list_groups().await.context("listing groups")?;
            println!("{:<32} {:<20} PROTOCOL", "GROUP", "STATE");
            for g in groups {
                println!("{:<32} {:<20} {}", g.group_id, g.state, g.protocol_type);
            }
        }
        Action::Describe { group } => {
            let d = admin
                .describe_group(&group)
                .await
                .with_context(|| format!("describing group {group}"))?;
            let offsets = admin
                .group_offsets(&group, None)
                .await
                .with_context(|| format!("offsets of group {group}"))?;
            if d.state == "Dead" && offsets.is_empty() {
                bail!("group {group} does not exist");
            }
            println!(
                "group {} state {} protocol {} members {}",
                d.group_id,
                d.state,
                if d.protocol.is_empty() {
                    "-"
                } else {
                    &d.protocol
                },
                d.members.len()
            );
            let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
            for m in &d.members {
                println!(
                    "  member {} client {} host {}{}",
                    m.member_id,
                    m.client_id,
                    m.client_host,
                    m.group_instance_id
                        .as_ref()
                        .map(|i| format!(" instance {i}"))
                        .unwrap_or_default()
                );
                for (t, ps) in &m.assignment {
                    println!("    {t}: {ps:?}");
                    for p in ps {
                        owner.insert((t.clone(), *p), m.member_id.clone());
                    }
                }
            }
            println!(
                "{:<24} {:>9} {:>16} {:>16} {:>10}  OWNER",
                "TOPIC", "PARTITION", "COMMITTED", "HIGH-WATERMARK", "LAG"
            );
            let mut total = 0;
            for o in &offsets {
                total += o.lag;
                println!(
                    "{:<24} {:>9} {:>16} {:>16} {:>10}  {}",
                    o.topic,
                    o.partition,
                    if o.committed < 0 {
                        "-".to_string()
                    } else {
                        o.committed.to_string()
                    },
                    o.high_watermark,
                    o.lag,
                    owner
                        .get(&(o.topic.clone(), o.partition))
                        .map_or("-", |s| s.as_str())
                );
            }
            println!("total lag {total}");
        }
        Action::Delete { group } => {
            admin
                .delete_group(&group)
                .await
                .with_context(|| format!("deleting group {group}"))?;
            println!("deleted group {group}");
        }
        Action::ResetOffsets {
            group,
            topic,
            to,
            partition,
        } => {
            let spec: OffsetSpec = to.parse().map_err(anyhow::Error::msg)?;
            let firsts = admin
                .list_offsets(&topic, -2)
                .await
                .with_context(|| format!("topic {topic}"))?;
            let ends = admin.list_offsets(&topic, -1).await?;
            let mut offsets = BTreeMap::new();
            let times = match spec {
                OffsetSpec::Time(ms) => Some(admin.list_offsets(&topic, ms).await?),
                _ => None,
            };
            for (&p, &end) in &ends {
                if partition.is_some_and(|want| want != p) {
                    continue;
                }
                let first = firsts[&p];
                let o = match spec {
                    OffsetSpec::Beginning => first,
                    OffsetSpec::End => end,
                    OffsetSpec::At(o) => o.clamp(first, end),
                    OffsetSpec::FromEnd(n) => (end - n).max(first),
                    OffsetSpec::Time(_) => times.as_ref().map_or(end, |t| t[&p]),
                };
                offsets.insert(p, o);
            }
            if offsets.is_empty() {
                bail!("partition {partition:?} does not exist in {topic}");
            }
            admin
                .commit_group_offsets(&group, &topic, &offsets)
                .await
                .with_context(|| {
                    format!("resetting offsets of group {group} (it must have no active members)")
                })?;
            for (p, o) in offsets {
                println!("{group} {topic} {p} {o}");
            }
        }
    }
    Ok(())
}
