//! The tokio driver of group membership: carries out the [`Action`]s of the sans-io
//! [`Membership`] machine (`membership.rs`) — requests to the coordinator, commits, the fetch
//! loops and the rebalance listener — and feeds the answers back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafkit_protocol::codes;
use kafkit_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafkit_protocol::messages::leave_group_request::MemberIdentity;
use kafkit_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafkit_protocol::messages::*;
use kafkit_protocol::str_bytes;
use tokio::sync::watch;

use super::membership::{Action, JoinResult, Membership, Settings, SyncResult};
use super::offsets::{commit_processed, start_offsets};
use super::{assign, listener, Shared, Tp};
use crate::config::GroupBalancer;
use crate::conn::Connection;
use crate::error::{Error, Result};

/// Stops delivering `partitions` and drops what was prefetched from them.
fn stop_delivery(shared: &Shared, partitions: &[Tp]) {
    let mut session = shared.session.lock().expect("session lock");
    for p in partitions {
        shared.retire(*p);
        shared.fetch.unassign(*p);
        session.assignment.remove(p);
    }
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

/// What the driver keeps between actions.
struct Driver {
    shared: Arc<Shared>,
    group: String,
    /// The last JoinGroup answer (the leader assigns from its member list).
    join: Option<JoinGroupResponse>,
    /// The leader's assignment for the next SyncGroup.
    assignments: Vec<SyncGroupRequestAssignment>,
    /// Partition counts when the assignment was made (for `watch_partition_changes`).
    partition_counts: Vec<usize>,
}

pub(super) async fn group_loop(shared: Arc<Shared>, mut close: watch::Receiver<bool>) {
    let cfg = &shared.config;
    let group = cfg.group_id.clone().expect("group");
    let mut m = Membership::new(Settings {
        balancers: cfg.group_balancers.clone(),
        heartbeat_interval: cfg.heartbeat_interval,
        commit_interval: cfg.commit_interval,
        watch_interval: cfg
            .watch_partition_changes
            .then(|| cfg.partition_watch_interval.max(Duration::from_millis(1))),
        is_static: cfg.group_instance_id.is_some(),
    });
    let mut d = Driver {
        shared: shared.clone(),
        group: group.clone(),
        join: None,
        assignments: Vec::new(),
        partition_counts: Vec::new(),
    };
    tracing::info!(target: "kafkit::reader", "entering loop for consumer group, {group}");
    let mut queue: VecDeque<Action> = m.start(Instant::now()).into();
    loop {
        if *close.borrow() && !m.is_closed() {
            // Whatever was under way: close (revoke, commit, leave).
            queue = m.close(Instant::now()).into();
        }
        let Some(action) = queue.pop_front() else {
            let wait = m.next_deadline();
            tokio::select! {
                _ = close.changed() => {}
                _ = async {
                    match wait {
                        Some(t) => tokio::time::sleep_until(t.into()).await,
                        None => std::future::pending().await,
                    }
                } => queue.extend(m.poll(Instant::now())),
            }
            continue;
        };
        let next = d.run(&mut m, action, &mut close).await;
        match next {
            Step::Stop => return,
            Step::Then(actions) => queue.extend(actions),
        }
    }
}

enum Step {
    Then(Vec<Action>),
    Stop,
}

impl Driver {
    /// Carries out one action; returns what the machine says next.
    async fn run(
        &mut self,
        m: &mut Membership,
        action: Action,
        close: &mut watch::Receiver<bool>,
    ) -> Step {
        let shared = self.shared.clone();
        let group = self.group.clone();
        let now = Instant::now;
        let closing = m.is_closed();
        match action {
            Action::Join {
                member_id,
                owned,
                generation,
            } => {
                let r = unless_closed(close, self.join(&member_id, &owned, generation)).await;
                let Some(r) = r else {
                    return Step::Then(Vec::new()); // closing: the loop closes the machine
                };
                let result = match r {
                    Ok(resp) => {
                        let result = match resp.error_code {
                            codes::NONE => JoinResult::Joined {
                                member_id: resp.member_id.to_string(),
                                generation: resp.generation_id,
                                protocol: resp.protocol_name.as_ref().map(|p| p.to_string()),
                                leader: resp.leader == resp.member_id,
                                has_members: !resp.members.is_empty(),
                            },
                            codes::MEMBER_ID_REQUIRED => {
                                JoinResult::MemberIdRequired(resp.member_id.to_string())
                            }
                            code => {
                                tracing::warn!(target: "kafkit::reader", group = %group, code, "JoinGroup refused");
                                if code != codes::UNKNOWN_MEMBER_ID {
                                    // e.g. NOT_COORDINATOR: find the coordinator again.
                                    self.reset_conn();
                                }
                                JoinResult::Failed(Some(code))
                            }
                        };
                        if resp.error_code == codes::NONE {
                            tracing::info!(target: "kafkit::reader", "joined group {group} as member {} in generation {}", resp.member_id.as_str(), resp.generation_id);
                            self.join = Some(resp);
                        }
                        result
                    }
                    Err(e) => {
                        tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "JoinGroup failed; retrying");
                        self.reset_conn();
                        JoinResult::Failed(None)
                    }
                };
                Step::Then(m.on_join(now(), result))
            }
            Action::ComputeAssignment { protocol } => {
                let join = self.join.clone().expect("joined");
                match leader_assign(&shared, &group, protocol, &join).await {
                    Ok(a) => {
                        self.assignments = a;
                        Step::Then(Vec::new())
                    }
                    Err(e) => {
                        tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "assignment failed");
                        Step::Then(m.on_sync(now(), SyncResult::Failed(None)))
                    }
                }
            }
            Action::Sync {
                generation,
                member_id,
            } => {
                let assignments = std::mem::take(&mut self.assignments);
                let r = unless_closed(close, self.sync(generation, &member_id, assignments)).await;
                let Some(r) = r else {
                    return Step::Then(Vec::new());
                };
                let result = match r {
                    Ok(mine) => {
                        {
                            let mut s = shared.session.lock().expect("session lock");
                            s.generation = generation;
                            s.member_id = member_id.clone();
                        }
                        tracing::info!(target: "kafkit::reader", "sync group finished for group, {group}: assigned {}", describe(&shared, &mine));
                        shared.counters.rebalances.fetch_add(1, Ordering::Relaxed);
                        self.partition_counts = self.partition_counts().await;
                        SyncResult::Assigned(mine)
                    }
                    Err(SyncError::Rejoin) => SyncResult::Rejoin,
                    Err(SyncError::Code(code)) => {
                        if !matches!(
                            code,
                            codes::ILLEGAL_GENERATION
                                | codes::UNKNOWN_MEMBER_ID
                                | codes::REBALANCE_IN_PROGRESS
                        ) {
                            self.reset_conn();
                        }
                        SyncResult::Failed(Some(code))
                    }
                    Err(SyncError::Failed(e)) => {
                        tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "SyncGroup failed; retrying");
                        self.reset_conn();
                        SyncResult::Failed(None)
                    }
                };
                Step::Then(m.on_sync(now(), result))
            }
            Action::Revoke(tps) => {
                tracing::info!(target: "kafkit::reader", "revoking partitions {}", describe(&shared, &tps));
                stop_delivery(&shared, &tps);
                listener::notify(&shared, names(&shared, &tps), |l, g, p| l.on_revoked(g, p)).await;
                Step::Then(Vec::new())
            }
            Action::Lose(tps) => {
                tracing::info!(target: "kafkit::reader", "partitions lost: {}", describe(&shared, &tps));
                stop_delivery(&shared, &tps);
                // Marks of lost partitions would be refused: drop them.
                {
                    let mut p = shared.processed.lock().expect("processed lock");
                    for tp in &tps {
                        p.remove(tp);
                    }
                }
                listener::notify(&shared, names(&shared, &tps), |l, g, p| l.on_lost(g, p)).await;
                Step::Then(Vec::new())
            }
            Action::Commit => match commit_processed(&shared).await {
                Ok(()) => Step::Then(Vec::new()),
                Err(e) => {
                    tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "commit failed");
                    match e.kafka_code() {
                        Some(code) => Step::Then(m.on_commit_error(now(), code)),
                        None => Step::Then(Vec::new()),
                    }
                }
            },
            Action::Start(tps) => match self.start(&tps).await {
                Ok(()) => Step::Then(Vec::new()),
                Err(e) => {
                    tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "cannot start the assigned partitions; rejoining");
                    self.reset_conn();
                    Step::Then(m.failed(now()))
                }
            },
            Action::Heartbeat {
                generation,
                member_id,
            } => {
                let code = match self.heartbeat(generation, &member_id).await {
                    Ok(code) => {
                        if !matches!(
                            code,
                            codes::NONE
                                | codes::ILLEGAL_GENERATION
                                | codes::UNKNOWN_MEMBER_ID
                                | codes::REBALANCE_IN_PROGRESS
                        ) {
                            tracing::warn!(target: "kafkit::reader", group = %group, code, "heartbeat refused");
                            self.reset_conn();
                        }
                        Some(code)
                    }
                    Err(e) => {
                        tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "heartbeat failed");
                        self.reset_conn();
                        None
                    }
                };
                if code == Some(codes::REBALANCE_IN_PROGRESS) {
                    tracing::info!(target: "kafkit::reader", "group {group} is rebalancing; rejoining");
                }
                Step::Then(m.on_heartbeat(now(), code))
            }
            Action::WatchPartitions => {
                let _ = shared.client.refresh(&shared.topics).await;
                let counts = self.partition_counts().await;
                if counts != self.partition_counts && counts.iter().all(|c| *c > 0) {
                    tracing::info!(target: "kafkit::reader", "partition counts changed ({:?} -> {counts:?}); rejoining", self.partition_counts);
                    return Step::Then(m.partitions_changed(now()));
                }
                Step::Then(Vec::new())
            }
            Action::Leave { member_id } => {
                self.leave(&member_id).await;
                Step::Then(Vec::new())
            }
            Action::Backoff(wait) => {
                if !closing {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = close.changed() => {}
                    }
                }
                Step::Then(Vec::new())
            }
            Action::Stop => Step::Stop,
        }
    }

    fn reset_conn(&self) {
        self.shared.session.lock().expect("session lock").conn = None;
    }

    async fn partition_counts(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.shared.topics.len());
        for t in &self.shared.topics {
            v.push(
                self.shared
                    .client
                    .topic(t)
                    .await
                    .map_or(0, |m| m.leaders.len()),
            );
        }
        v
    }

    /// JoinGroup, offering every configured assignor (cooperative subscriptions carry the
    /// owned partitions and the generation).
    async fn join(
        &self,
        member_id: &str,
        owned: &[Tp],
        generation: i32,
    ) -> Result<JoinGroupResponse> {
        let shared = &self.shared;
        let cfg = &shared.config;
        let conn = coordinator_conn(shared, &self.group).await?;
        let topics = shared.topics.clone();
        let mut owned_by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in owned {
            owned_by_topic
                .entry(topics[*t].clone())
                .or_default()
                .push(*p);
        }
        let protocols: Vec<JoinGroupRequestProtocol> = cfg
            .group_balancers
            .iter()
            .map(|b| {
                let metadata = match b {
                    GroupBalancer::CooperativeSticky => {
                        assign::encode_subscription_v1(&topics, &owned_by_topic, generation)
                    }
                    _ => assign::encode_subscription(&topics),
                };
                JoinGroupRequestProtocol::default()
                    .with_name(str_bytes(b.name()))
                    .with_metadata(metadata)
            })
            .collect();
        let mut req = JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_session_timeout_ms(cfg.session_timeout.as_millis() as i32)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(protocols);
        let v = conn.version_for::<JoinGroupRequest>()?;
        if v >= 1 {
            req.rebalance_timeout_ms = cfg.rebalance_timeout.as_millis() as i32;
        }
        if v >= 5 {
            req.group_instance_id = cfg.group_instance_id.as_deref().map(str_bytes);
        }
        let wait = cfg.rebalance_timeout + cfg.session_timeout;
        Ok(conn.send_timeout(&req, wait).await?.1)
    }

    async fn sync(
        &self,
        generation: i32,
        member_id: &str,
        assignments: Vec<SyncGroupRequestAssignment>,
    ) -> std::result::Result<BTreeSet<Tp>, SyncError> {
        let shared = &self.shared;
        let cfg = &shared.config;
        let conn = coordinator_conn(shared, &self.group)
            .await
            .map_err(SyncError::Failed)?;
        let mut req = SyncGroupRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_generation_id(generation)
            .with_member_id(str_bytes(member_id))
            .with_assignments(assignments);
        if conn
            .version_for::<SyncGroupRequest>()
            .map_err(SyncError::Failed)?
            >= 3
        {
            req.group_instance_id = cfg.group_instance_id.as_deref().map(str_bytes);
        }
        let sync = match conn
            .send_timeout(&req, cfg.rebalance_timeout + cfg.session_timeout)
            .await
        {
            Ok((_, sync)) => sync,
            // A SyncGroup answer that does not decode: librdkafka's mock cluster answers errors
            // (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION) with a null assignment, which v3+
            // does not allow. Rejoin at once with the same member id, as for
            // REBALANCE_IN_PROGRESS; backing off and reconnecting made a mixed group miss
            // every rebalance window.
            Err(Error::Protocol(e)) => {
                tracing::warn!(target: "kafkit::reader", group = %self.group, error = %e, "undecodable SyncGroup answer; rejoining");
                return Err(SyncError::Rejoin);
            }
            Err(e) => return Err(SyncError::Failed(e)),
        };
        if sync.error_code != codes::NONE {
            return Err(SyncError::Code(sync.error_code));
        }
        let assigned = assign::decode_assignment(sync.assignment.clone()).ok_or_else(|| {
            SyncError::Failed(Error::kafka(
                -1,
                format!("undecodable assignment for group {}", self.group),
            ))
        })?;
        Ok(assigned
            .iter()
            .filter_map(|(t, ps)| shared.topic_index(t).map(|ti| (ti, ps)))
            .flat_map(|(ti, ps)| ps.iter().map(move |p| (ti, *p)))
            .collect())
    }

    /// Where the new partitions start, the listener's `on_assigned`, then fetching.
    async fn start(&self, tps: &[Tp]) -> Result<()> {
        let shared = &self.shared;
        let conn = coordinator_conn(shared, &self.group).await?;
        let starts = start_offsets(shared, &conn, &self.group, tps).await?;
        if !starts.is_empty() {
            let list: Vec<String> = starts
                .iter()
                .map(|((t, p), o)| format!("{}/{p}: {o}", shared.topics[*t]))
                .collect();
            tracing::info!(target: "kafkit::reader", "subscribed to partitions: {}", list.join(", "));
        }
        {
            let mut session = shared.session.lock().expect("session lock");
            for (&p, &o) in &starts {
                session.assignment.insert(p, o);
                shared.set_position(p, o);
            }
        }
        listener::notify(shared, names(shared, tps), |l, g, p| l.on_assigned(g, p)).await;
        for (&p, &o) in &starts {
            let epoch = shared.new_epoch(p);
            shared.fetch.assign(p, o, epoch);
        }
        Ok(())
    }

    async fn heartbeat(&self, generation: i32, member_id: &str) -> Result<i16> {
        let shared = &self.shared;
        let conn = coordinator_conn(shared, &self.group).await?;
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes(&self.group)))
            .with_generation_id(generation)
            .with_member_id(str_bytes(member_id))
            .with_group_instance_id(if conn.version_for::<HeartbeatRequest>()? >= 3 {
                shared.config.group_instance_id.as_deref().map(str_bytes)
            } else {
                None
            });
        Ok(conn.send(&req).await?.1.error_code)
    }

    async fn leave(&self, member_id: &str) {
        let group = &self.group;
        let conn = self
            .shared
            .session
            .lock()
            .expect("session lock")
            .conn
            .take();
        let Some(conn) = conn else {
            return;
        };
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(str_bytes(group)));
        match conn.version_for::<LeaveGroupRequest>() {
            Ok(v) if v >= 3 => {
                req.members = vec![MemberIdentity::default().with_member_id(str_bytes(member_id))]
            }
            _ => req.member_id = str_bytes(member_id),
        }
        match tokio::time::timeout(Duration::from_secs(5), conn.send(&req)).await {
            Ok(Ok(_)) => {
                tracing::info!(target: "kafkit::reader", "left group {group} as member {member_id}")
            }
            Ok(Err(e)) => {
                tracing::warn!(target: "kafkit::reader", group = %group, error = %e, "leaving the group failed")
            }
            Err(_) => {
                tracing::warn!(target: "kafkit::reader", group = %group, "leaving the group timed out after 5 s")
            }
        }
    }
}

/// Why a SyncGroup gave no assignment.
enum SyncError {
    /// Rejoin at once (an undecodable answer).
    Rejoin,
    /// The coordinator's error code.
    Code(i16),
    /// The request failed.
    Failed(Error),
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
