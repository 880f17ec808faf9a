//! Offsets: commits of what the application processed, where partitions start (the group's
//! committed offsets, else `start_offset`), ListOffsets.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use kafkit_protocol::codes;
use kafkit_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafkit_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafkit_protocol::messages::*;
use kafkit_protocol::{str_bytes, topic_name};

use super::{Shared, Tp};
use crate::cluster::ClusterClient;
use crate::config::StartOffset;
use crate::conn::Connection;
use crate::error::{Error, Result};

/// Commits `processed` with the current group session.
pub(super) async fn commit_processed(shared: &Shared) -> Result<()> {
    let Some(group) = shared.config.group_id.clone() else {
        return Ok(());
    };
    let offsets: BTreeMap<Tp, i64> =
        std::mem::take(&mut *shared.processed.lock().expect("processed lock"));
    if offsets.is_empty() {
        return Ok(());
    }
    let (conn, generation, member_id) = {
        let s = shared.session.lock().expect("session lock");
        (s.conn.clone(), s.generation, s.member_id.clone())
    };
    let restore = |shared: &Shared, offsets: &BTreeMap<Tp, i64>| {
        let mut p = shared.processed.lock().expect("processed lock");
        for (k, v) in offsets {
            let e = p.entry(*k).or_insert(*v);
            *e = (*e).max(*v);
        }
    };
    let Some(conn) = conn else {
        restore(shared, &offsets);
        return Err(Error::kafka(
            27,
            format!("commit for group {group}: not a member right now"),
        ));
    };
    let current = shared
        .session
        .lock()
        .expect("session lock")
        .commit_conn
        .clone();
    let conn = match current.filter(|c| c.is_alive() && c.addr() == conn.addr()) {
        Some(c) => c,
        None => match shared.client.dedicated(conn.addr()).await {
            Ok(c) => {
                let c = Arc::new(c);
                shared.session.lock().expect("session lock").commit_conn = Some(c.clone());
                c
            }
            Err(e) => {
                restore(shared, &offsets);
                return Err(e);
            }
        },
    };
    let mut by_topic: BTreeMap<usize, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in &offsets {
        by_topic.entry(*t).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_metadata(Some(str_bytes(""))),
        );
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(&group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str_bytes(&member_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(&shared.topics[t]))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let resp = match conn.send(&req).await {
        Ok((_, r)) => r,
        Err(e) => {
            restore(shared, &offsets);
            return Err(e);
        }
    };
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != codes::NONE {
                let e = Error::kafka(
                    p.error_code,
                    format!(
                        "commit {}/{} for group {group}",
                        t.name.as_str(),
                        p.partition_index
                    ),
                );
                if e.is_retriable() {
                    restore(shared, &offsets);
                }
                return Err(e);
            }
        }
    }
    let list: Vec<String> = offsets
        .iter()
        .map(|((t, p), o)| format!("topic: {} partition {p}: {o}", shared.topics[*t]))
        .collect();
    shared.counters.commits.fetch_add(1, Ordering::Relaxed);
    tracing::info!(target: "kafkit::reader", "committed offsets for group {group}: {}", list.join(", "));
    Ok(())
}

pub(super) async fn list_offset(
    client: &ClusterClient,
    topic: &str,
    partition: i32,
    start: StartOffset,
) -> Result<i64> {
    let ts = match start {
        StartOffset::First => -2,
        StartOffset::Last => -1,
        StartOffset::Timestamp(t) => t
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    };
    let addr = client.leader_addr(topic, partition).await?;
    let conn = client.conn(&addr).await?;
    let offset = match crate::admin::list_one(&conn, topic, partition, ts).await {
        Ok(o) => o,
        Err(e) => {
            client.invalidate(topic);
            return Err(e);
        }
    };
    if offset < 0 && matches!(start, StartOffset::Timestamp(_)) {
        // Every message is older than the timestamp: start at the end.
        return Box::pin(list_offset(client, topic, partition, StartOffset::Last)).await;
    }
    Ok(offset)
}

/// Where each partition starts: the group's committed offset, else `start_offset`.
pub(super) async fn start_offsets(
    shared: &Shared,
    conn: &Connection,
    group: &str,
    partitions: &[Tp],
) -> Result<BTreeMap<Tp, i64>> {
    let cfg = &shared.config;
    let mut starts = BTreeMap::new();
    if partitions.is_empty() {
        return Ok(starts);
    }
    let mut by_topic: BTreeMap<usize, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(*t).or_default().push(*p);
    }
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_topics(Some(
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(&shared.topics[*t]))
                        .with_partition_indexes(ps.clone())
                })
                .collect(),
        ));
    let (_, resp) = conn.send(&req).await?;
    if resp.error_code != codes::NONE {
        return Err(Error::kafka(
            resp.error_code,
            format!("OffsetFetch {group}"),
        ));
    }
    for t in &resp.topics {
        let Some(ti) = shared.topic_index(t.name.as_str()) else {
            continue;
        };
        for p in &t.partitions {
            if p.error_code != codes::NONE {
                return Err(Error::kafka(
                    p.error_code,
                    format!(
                        "OffsetFetch {group} {}/{}",
                        t.name.as_str(),
                        p.partition_index
                    ),
                ));
            }
            let tp = (ti, p.partition_index);
            if p.committed_offset >= 0 && partitions.contains(&tp) {
                starts.insert(tp, p.committed_offset);
            }
        }
    }
    for &tp in partitions {
        if let std::collections::btree_map::Entry::Vacant(e) = starts.entry(tp) {
            e.insert(
                list_offset(&shared.client, &shared.topics[tp.0], tp.1, cfg.start_offset).await?,
            );
        }
    }
    Ok(starts)
}
