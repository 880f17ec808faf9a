//! Group membership: join, sync, assign (as leader), heartbeat, and giving partitions up in
//! rebalances (eager or cooperative), with the rebalance listener's calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafkit_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafkit_protocol::messages::leave_group_request::MemberIdentity;
use kafkit_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafkit_protocol::messages::*;
use kafkit_protocol::str_bytes;
use tokio::sync::watch;

use super::offsets::{commit_processed, start_offsets};
use super::{assign, listener, Shared, Tp};
use crate::config::GroupBalancer;
use crate::conn::Connection;
use crate::error::{Error, Result};

/// Group membership that outlives one generation.
struct Membership {
    member_id: String,
    generation: i32,
    /// The protocol the group chose at the last join.
    protocol: Option<GroupBalancer>,
    /// The partitions this member owns (and fetches).
    fetchers: BTreeSet<Tp>,
}

impl Membership {
    /// Stops fetching `partitions` and drops what was prefetched from them.
    fn revoke(&mut self, shared: &Shared, partitions: &[Tp]) {
        let mut session = shared.session.lock().expect("session lock");
        for p in partitions {
            shared.retire(*p);
            if self.fetchers.remove(p) {
                shared.fetch.unassign(*p);
            }
            session.assignment.remove(p);
        }
    }

    /// The coordinator no longer knows this member's generation (ILLEGAL_GENERATION, 22) or the
    /// member itself (UNKNOWN_MEMBER_ID, 25): its partitions are lost (the listener's
    /// `on_lost`).
    async fn lost(&mut self, shared: &Arc<Shared>, code: i16) {
        if code == 25 {
            self.member_id.clear();
        }
        let all: Vec<Tp> = self.fetchers.iter().copied().collect();
        if !all.is_empty() {
            tracing::info!(target: "kafkit::reader", "partitions lost: {}", describe(shared, &all));
        }
        self.revoke(shared, &all);
        let named = names(shared, &all);
        listener::notify(shared, named, |l, g, p| l.on_lost(g, p)).await;
    }

    /// Gives `partitions` up: delivery stops, then the listener's `on_revoked` runs (and may
    /// commit). The caller commits what was marked afterwards.
    async fn give_up(&mut self, shared: &Arc<Shared>, partitions: &[Tp]) {
        if partitions.is_empty() {
            return;
        }
        tracing::info!(target: "kafkit::reader", "revoking partitions {}", describe(shared, partitions));
        self.revoke(shared, partitions);
        let named = names(shared, partitions);
        listener::notify(shared, named, |l, g, p| l.on_revoked(g, p)).await;
    }

    async fn give_up_all(&mut self, shared: &Arc<Shared>) {
        let all: Vec<Tp> = self.fetchers.iter().copied().collect();
        self.give_up(shared, &all).await;
    }
}

enum Outcome {
    Rejoin,
    Closed,
}

/// `(topic, partition)` pairs for the listener.
fn names(shared: &Shared, tps: &[Tp]) -> Vec<(String, i32)> {
    tps.iter()
        .map(|(t, p)| (shared.topics[*t].clone(), *p))
        .collect()
}

/// "topic [partitions], ..." for logs.
fn describe<'a>(shared: &Shared, tps: impl IntoIterator<Item = &'a Tp>) -> String {
    let mut by: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        by.entry(&shared.topics[*t]).or_default().push(*p);
    }
    by.iter()
        .map(|(t, ps)| format!("{t} {ps:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn group_loop(shared: Arc<Shared>, mut close: watch::Receiver<bool>) {
    let group = shared.config.group_id.clone().expect("group");
    let mut m = Membership {
        member_id: String::new(),
        generation: -1,
        protocol: None,
        fetchers: BTreeSet::new(),
    };
    let mut backoff = Duration::from_millis(100);
    tracing::info!(target: "kafkit::reader", "entering loop for consumer group, {group}");
    loop {
        if *close.borrow() {
            break;
        }
        match generation(&shared, &group, &mut m, &mut close).await {
            Ok(Outcome::Closed) => break,
            Ok(Outcome::Rejoin) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "group membership failed; retrying");
                // Ownership is unknown now: stop delivering, commit what was processed.
                m.give_up_all(&shared).await;
                let _ = commit_processed(&shared).await;
                shared.session.lock().expect("session lock").conn = None;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = close.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    // Closing: stop delivering, commit what was processed, then leave so the group rebalances
    // at once (static members stay: their partitions wait for them for session_timeout).
    m.give_up_all(&shared).await;
    if let Err(e) = commit_processed(&shared).await {
        tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "final commit failed");
    }
    let conn = shared.session.lock().expect("session lock").conn.take();
    let is_static = shared.config.group_instance_id.is_some();
    if let (Some(conn), false, false) = (conn, m.member_id.is_empty(), is_static) {
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(&group)));
        match conn.version_for::<LeaveGroupRequest>() {
            Ok(v) if v >= 3 => {
                req.members =
                    vec![MemberIdentity::default().with_member_id(str_bytes(&m.member_id))]
            }
            _ => req.member_id = str_bytes(&m.member_id),
        }
        match tokio::time::timeout(Duration::from_secs(5), conn.send(&req)).await {
            Ok(Ok(_)) => {
                tracing::info!(target: "kafkit::reader", "left group {group} as member {}", m.member_id)
            }
            other => {
                tracing::warn!(target: "kafkit::reader", group = %group, "leaving group failed: {:?}", other.map(|r| r.err()))
            }
        }
    }
}

/// Waits for `fut` unless the reader is closed first.
async fn unless_closed<T>(
    close: &mut watch::Receiver<bool>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    if *close.borrow() {
        return None;
    }
    tokio::select! {
        r = fut => Some(r),
        _ = close.changed() => None,
    }
}

/// The coordinator connection of the session, or a new one.
async fn coordinator_conn(shared: &Shared, group: &str) -> Result<Arc<Connection>> {
    let current = shared.session.lock().expect("session lock").conn.clone();
    if let Some(c) = current.filter(|c| c.is_alive()) {
        return Ok(c);
    }
    let addr = shared.client.coordinator(group).await?;
    let c = Arc::new(shared.client.dedicated(&addr).await?);
    shared.session.lock().expect("session lock").conn = Some(c.clone());
    Ok(c)
}

/// The leader's assignment for the chosen protocol.
async fn leader_assign(
    shared: &Shared,
    group: &str,
    protocol: GroupBalancer,
    join: &JoinGroupResponse,
) -> Result<Vec<SyncGroupRequestAssignment>> {
    tracing::info!(target: "kafkit::reader", "selected as leader for group, {group}");
    let mut subs = Vec::new();
    let mut all_topics = Vec::new();
    for m in &join.members {
        let sub = assign::decode_subscription_full(m.metadata.clone()).unwrap_or_default();
        tracing::info!(target: "kafkit::reader", "found member: {} subscribed to {:?}", m.member_id, sub.topics);
        all_topics.extend(sub.topics.iter().cloned());
        subs.push((m.member_id.to_string(), sub));
    }
    all_topics.sort();
    all_topics.dedup();
    shared.client.refresh(&all_topics).await?;
    let mut partitions = BTreeMap::new();
    for t in &all_topics {
        partitions.insert(
            t.clone(),
            shared.client.topic(t).await?.leaders.len() as i32,
        );
    }
    tracing::info!(target: "kafkit::reader", "using '{}' balancer to assign group, {group}", protocol.name());
    let plain: Vec<(String, Vec<String>)> = subs
        .iter()
        .map(|(m, s)| (m.clone(), s.topics.clone()))
        .collect();
    let result = match protocol {
        GroupBalancer::Range => assign::range_assign(&plain, &partitions),
        GroupBalancer::RoundRobin => assign::roundrobin_assign(&plain, &partitions),
        GroupBalancer::CooperativeSticky => assign::cooperative_sticky_assign(&subs, &partitions),
    };
    Ok(result
        .into_iter()
        .map(|(m, a)| {
            tracing::info!(target: "kafkit::reader", "assigned member/topic/partitions {m}/{a:?}");
            SyncGroupRequestAssignment::default()
                .with_member_id(str_bytes(&m))
                .with_assignment(assign::encode_assignment(&a))
        })
        .collect())
}

/// One generation: join, sync, apply the assignment, heartbeat until a rebalance or close.
async fn generation(
    shared: &Arc<Shared>,
    group: &str,
    m: &mut Membership,
    close: &mut watch::Receiver<bool>,
) -> Result<Outcome> {
    let cfg = &shared.config;
    let Some(conn) = unless_closed(close, coordinator_conn(shared, group)).await else {
        return Ok(Outcome::Closed);
    };
    let conn = conn?;
    let topics = shared.topics.clone();
    let mut owned: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in &m.fetchers {
        owned.entry(topics[*t].clone()).or_default().push(*p);
    }
    let protocols: Vec<JoinGroupRequestProtocol> = cfg
        .group_balancers
        .iter()
        .map(|b| {
            let metadata = match b {
                GroupBalancer::CooperativeSticky => {
                    assign::encode_subscription_v1(&topics, &owned, m.generation)
                }
                _ => assign::encode_subscription(&topics),
            };
            JoinGroupRequestProtocol::default()
                .with_name(str_bytes(b.name()))
                .with_metadata(metadata)
        })
        .collect();
    let instance = cfg.group_instance_id.as_deref().map(str_bytes);

    // JoinGroup (again with the id the broker gives, if it answers MEMBER_ID_REQUIRED).
    let join = loop {
        let mut req = JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_session_timeout_ms(cfg.session_timeout.as_millis() as i32)
            .with_member_id(str_bytes(&m.member_id))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(protocols.clone());
        let v = conn.version_for::<JoinGroupRequest>()?;
        if v >= 1 {
            req.rebalance_timeout_ms = cfg.rebalance_timeout.as_millis() as i32;
        }
        if v >= 5 {
            req.group_instance_id = instance.clone();
        }
        let wait = cfg.rebalance_timeout + cfg.session_timeout;
        let Some(r) = unless_closed(close, conn.send_timeout(&req, wait)).await else {
            return Ok(Outcome::Closed);
        };
        let (_, resp) = r?;
        match resp.error_code {
            0 => break resp,
            79 => m.member_id = resp.member_id.to_string(),
            25 => {
                m.member_id.clear();
                return Err(Error::kafka(25, format!("JoinGroup {group}")));
            }
            code => return Err(Error::kafka(code, format!("JoinGroup {group}"))),
        }
    };
    m.member_id = join.member_id.to_string();
    m.generation = join.generation_id;
    let chosen = join
        .protocol_name
        .as_ref()
        .and_then(|p| GroupBalancer::from_name(p.as_str()))
        .or_else(|| (cfg.group_balancers.len() == 1).then(|| cfg.group_balancers[0]))
        .ok_or_else(|| {
            Error::kafka(
                23,
                format!(
                    "JoinGroup {group}: the group chose {:?}",
                    join.protocol_name
                ),
            )
        })?;
    m.protocol = Some(chosen);
    let cooperative = chosen == GroupBalancer::CooperativeSticky;
    if !cooperative && !m.fetchers.is_empty() {
        // Eager protocol: nothing may be kept into the new generation.
        m.give_up_all(shared).await;
    }
    let generation_id = join.generation_id;
    tracing::info!(target: "kafkit::reader", "joined group {group} as member {} in generation {generation_id}", m.member_id);

    // A static member rejoining a stable group is answered without the member list: the
    // assignment stays as it is (KIP-345), nothing to compute.
    let assignments = if join.leader == join.member_id && !join.members.is_empty() {
        leader_assign(shared, group, chosen, &join).await?
    } else {
        Vec::new()
    };
    let mut req = SyncGroupRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id(generation_id)
        .with_member_id(str_bytes(&m.member_id))
        .with_assignments(assignments);
    if conn.version_for::<SyncGroupRequest>()? >= 3 {
        req.group_instance_id = instance.clone();
    }
    let Some(r) = unless_closed(
        close,
        conn.send_timeout(&req, cfg.rebalance_timeout + cfg.session_timeout),
    )
    .await
    else {
        return Ok(Outcome::Closed);
    };
    let sync = match r {
        Ok((_, sync)) => sync,
        // A SyncGroup answer that does not decode: librdkafka's mock cluster answers errors
        // (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION) with a null assignment, which v3+ does
        // not allow. Rejoin at once with the same member id, as for REBALANCE_IN_PROGRESS;
        // backing off and reconnecting made a mixed group miss every rebalance window.
        Err(Error::Protocol(e)) => {
            tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "undecodable SyncGroup answer; rejoining");
            return Ok(Outcome::Rejoin);
        }
        Err(e) => return Err(e),
    };
    match sync.error_code {
        0 => {}
        27 => return Ok(Outcome::Rejoin),
        code @ (22 | 25) => {
            m.lost(shared, code).await;
            return Ok(Outcome::Rejoin);
        }
        code => return Err(Error::kafka(code, format!("SyncGroup {group}"))),
    }
    let assigned = assign::decode_assignment(sync.assignment.clone())
        .ok_or_else(|| Error::kafka(-1, format!("undecodable assignment for group {group}")))?;
    let mine: BTreeSet<Tp> = assigned
        .iter()
        .filter_map(|(t, ps)| shared.topic_index(t).map(|ti| (ti, ps)))
        .flat_map(|(ti, ps)| ps.iter().map(move |p| (ti, *p)))
        .collect();
    tracing::info!(target: "kafkit::reader", "sync group finished for group, {group}: assigned {}", describe(shared, &mine));
    {
        let mut s = shared.session.lock().expect("session lock");
        s.generation = generation_id;
        s.member_id = m.member_id.clone();
    }

    // Apply: revoke what was taken away, start what is new, keep the rest running.
    let revoked: Vec<Tp> = m
        .fetchers
        .iter()
        .filter(|p| !mine.contains(p))
        .copied()
        .collect();
    let added: Vec<Tp> = mine
        .iter()
        .filter(|p| !m.fetchers.contains(p))
        .copied()
        .collect();
    if !revoked.is_empty() {
        m.give_up(shared, &revoked).await;
        if let Err(e) = commit_processed(shared).await {
            tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "commit of revoked partitions failed");
        }
    }
    let starts = start_offsets(shared, &conn, group, &added).await?;
    if !starts.is_empty() {
        let list: Vec<String> = starts
            .iter()
            .map(|((t, p), o)| format!("{}/{p}: {o}", shared.topics[*t]))
            .collect();
        tracing::info!(target: "kafkit::reader", "subscribed to partitions: {}", list.join(", "));
    }
    {
        let mut session = shared.session.lock().expect("session lock");
        let mut positions = shared.positions.lock().expect("positions lock");
        for (&p, &o) in &starts {
            session.assignment.insert(p, o);
            positions.insert(p, o);
        }
    }
    listener::notify(shared, names(shared, &added), |l, g, p| l.on_assigned(g, p)).await;
    for (&p, &o) in &starts {
        let epoch = shared.new_epoch(p);
        shared.fetch.assign(p, o, epoch);
        m.fetchers.insert(p);
    }
    shared.counters.rebalances.fetch_add(1, Ordering::Relaxed);
    if cooperative && !revoked.is_empty() {
        // KIP-429: rejoin so the revoked partitions can go to their new owner.
        return Ok(Outcome::Rejoin);
    }
    let mut partition_counts = Vec::with_capacity(shared.topics.len());
    for t in &shared.topics {
        partition_counts.push(shared.client.topic(t).await.map_or(0, |m| m.leaders.len()));
    }

    // Heartbeat (and commit, and watch the partition count) until something changes.
    tracing::info!(target: "kafkit::reader", "started heartbeat for group, {group} [{:?}]", cfg.heartbeat_interval);
    let mut beat = tokio::time::interval(cfg.heartbeat_interval);
    beat.tick().await;
    let commit_every = if cfg.commit_interval.is_zero() {
        Duration::from_secs(3600)
    } else {
        cfg.commit_interval
    };
    let mut commit_tick = tokio::time::interval(commit_every);
    commit_tick.tick().await;
    let mut watch_tick =
        tokio::time::interval(cfg.partition_watch_interval.max(Duration::from_millis(1)));
    watch_tick.tick().await;
    let rebalance = loop {
        tokio::select! {
            _ = beat.tick() => {}
            _ = commit_tick.tick(), if !cfg.commit_interval.is_zero() => {
                if let Err(e) = commit_processed(shared).await {
                    tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "periodic commit failed");
                }
                continue;
            }
            _ = watch_tick.tick(), if cfg.watch_partition_changes => {
                let _ = shared.client.refresh(&shared.topics).await;
                let mut grown = false;
                for (t, before) in shared.topics.iter().zip(&partition_counts) {
                    if let Ok(meta) = shared.client.topic(t).await {
                        if meta.leaders.len() != *before {
                            tracing::info!(target: "kafkit::reader", "{t} now has {} partitions (was {before}); rejoining", meta.leaders.len());
                            grown = true;
                        }
                    }
                }
                if grown {
                    break true;
                }
                continue;
            }
            _ = close.changed() => return Ok(Outcome::Closed),
        }
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id(generation_id)
            .with_member_id(str_bytes(&m.member_id))
            .with_group_instance_id(if conn.version_for::<HeartbeatRequest>()? >= 3 {
                instance.clone()
            } else {
                None
            });
        let (_, r) = conn.send(&req).await?;
        match r.error_code {
            0 => {}
            27 => {
                tracing::info!(target: "kafkit::reader", "group {group} is rebalancing; rejoining");
                break true;
            }
            code @ (22 | 25) => {
                m.lost(shared, code).await;
                return Ok(Outcome::Rejoin);
            }
            code => return Err(Error::kafka(code, format!("Heartbeat {group}"))),
        }
    };
    debug_assert!(rebalance);
    if !cooperative {
        // Eager: revoke everything before rejoining; the commit below still counts for this
        // generation (brokers accept commits while the group prepares the rebalance).
        m.give_up_all(shared).await;
    }
    if let Err(e) = commit_processed(shared).await {
        tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "commit before rejoining failed");
    }
    Ok(Outcome::Rejoin)
}
