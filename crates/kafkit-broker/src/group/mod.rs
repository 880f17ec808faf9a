//! Consumer group coordination (the classic JoinGroup/SyncGroup protocol).
//!
//! [`Coordinator`] is a pure state machine: every input is a method call carrying `now`, and
//! requests that must wait (JoinGroup until every member has rejoined, SyncGroup until the
//! leader sends the assignment) are identified by a caller-chosen [`Token`]; their answers come
//! back as [`Action`]s from whichever later call completes them. The tokio side only maps tokens
//! to channels and calls [`Coordinator::tick`] periodically. This keeps rebalances testable
//! without sleeping.
//!
//! States follow Kafka's `GroupCoordinator`: Empty → PreparingRebalance → CompletingRebalance →
//! Stable. Static membership (KIP-345): a member with a `group.instance.id` that comes back
//! (within its session timeout) takes over its old membership; in a stable group it gets its
//! assignment back without a rebalance. Not implemented: `MEMBER_ID_REQUIRED` (members get
//! their id in the first response), the new consumer protocol (KIP-848).

pub mod offsets;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Identifies a request waiting for an answer.
pub type Token = u64;

/// Kafka error codes by name (`kafkit_protocol::codes`, derived from `ResponseError`).
pub use kafkit_protocol::codes;

/// A JoinGroup request, decoupled from wire versions.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Group id.
    pub group_id: String,
    /// Member id, empty for a new member.
    pub member_id: String,
    /// Static member id, if any.
    pub group_instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Member's host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Protocol type, "consumer" for consumers.
    pub protocol_type: String,
    /// Supported protocols (assignors) in preference order, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    /// Error code.
    pub error: i16,
    /// Generation.
    pub generation: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// Members with metadata (for the leader only).
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    fn error(error: i16, member_id: &str) -> Self {
        Self {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    /// Error code.
    pub error: i16,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Protocol name.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    fn error(error: i16) -> Self {
        Self {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A deferred answer produced by the state machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Answer the JoinGroup waiting under this token.
    Join(Token, JoinResult),
    /// Answer the SyncGroup waiting under this token.
    Sync(Token, SyncResult),
}

/// Group state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment distributed.
    Stable,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug)]
struct Member {
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_seen: Instant,
    pending_join: Option<Token>,
}

#[derive(Debug)]
struct Group {
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    rebalance_deadline: Instant,
    initial_delay_until: Option<Instant>,
    pending_sync: Vec<(Token, String)>,
}

/// Summary of a member, for describe/list and logs.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Host.
    pub client_host: String,
    /// Assignment bytes.
    pub assignment: Bytes,
}

/// What DescribeGroups reports about a group.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// State.
    pub state: GroupState,
    /// Protocol type ("consumer").
    pub protocol_type: String,
    /// Chosen protocol (assignor).
    pub protocol: String,
    /// Members: id, instance id, client id, host, metadata, assignment.
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// The group coordinator state machine for all groups of a cluster.
#[derive(Debug)]
pub struct Coordinator {
    groups: BTreeMap<String, Group>,
    initial_rebalance_delay: Duration,
}

impl Coordinator {
    /// A coordinator that waits `initial_rebalance_delay` for more members when a group forms
    /// (Kafka's `group.initial.rebalance.delay.ms`).
    pub fn new(initial_rebalance_delay: Duration) -> Self {
        Self {
            groups: BTreeMap::new(),
            initial_rebalance_delay,
        }
    }

    /// Current state and generation of a group.
    pub fn group_state(&self, group_id: &str) -> Option<(GroupState, i32)> {
        self.groups.get(group_id).map(|g| (g.state, g.generation))
    }

    /// Members of a group.
    pub fn members(&self, group_id: &str) -> Vec<MemberInfo> {
        self.groups
            .get(group_id)
            .map(|g| {
                g.members
                    .iter()
                    .map(|(id, m)| MemberInfo {
                        member_id: id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        assignment: m.assignment.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Handles a JoinGroup. The answer arrives as an [`Action::Join`] with `token`, possibly in
    /// the returned actions, possibly from a later call.
    pub fn join(&mut self, now: Instant, token: Token, mut req: JoinRequest) -> Vec<Action> {
        if req.session_timeout < Duration::from_millis(1) || req.protocols.is_empty() {
            let code = if req.protocols.is_empty() {
                codes::INCONSISTENT_GROUP_PROTOCOL
            } else {
                codes::INVALID_SESSION_TIMEOUT
            };
            return vec![Action::Join(token, JoinResult::error(code, &req.member_id))];
        }
        let delay = self.initial_rebalance_delay;
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group {
                state: GroupState::Empty,
                generation: 0,
                protocol_type: None,
                protocol: None,
                leader: None,
                members: BTreeMap::new(),
                rebalance_deadline: now,
                initial_delay_until: None,
                pending_sync: Vec::new(),
            });
        if !group.members.is_empty() {
            let same_type = group.protocol_type.as_deref() == Some(req.protocol_type.as_str());
            let shared = group.members.values().all(|m| {
                m.protocols
                    .iter()
                    .any(|(p, _)| req.protocols.iter().any(|(q, _)| q == p))
            });
            if !same_type || !shared {
                return vec![Action::Join(
                    token,
                    JoinResult::error(codes::INCONSISTENT_GROUP_PROTOCOL, &req.member_id),
                )];
            }
        }
        let mut actions = Vec::new();
        // Static membership (KIP-345): a known group.instance.id coming back without a member
        // id takes over its old membership under a new id (the old id is fenced). In a stable
        // group with unchanged protocols it gets its assignment back without a rebalance.
        if let (true, Some(instance)) = (req.member_id.is_empty(), req.group_instance_id.clone()) {
            let old = group
                .members
                .iter()
                .find(|(_, m)| m.group_instance_id.as_deref() == Some(instance.as_str()))
                .map(|(id, _)| id.clone());
            if let Some(old_id) = old {
                let new_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
                let mut member = group.members.remove(&old_id).expect("found above");
                if let Some(t) = member.pending_join.take() {
                    actions.push(Action::Join(
                        t,
                        JoinResult::error(codes::FENCED_INSTANCE_ID, &old_id),
                    ));
                }
                let names =
                    |ps: &[(String, Bytes)]| ps.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
                let same_protocols = names(&member.protocols) == names(&req.protocols);
                member.last_seen = now;
                member.session_timeout = req.session_timeout;
                member.rebalance_timeout = req.rebalance_timeout;
                member.client_id = req.client_id.clone();
                member.client_host = req.client_host.clone();
                member.protocols = req.protocols.clone();
                if group.leader.as_deref() == Some(old_id.as_str()) {
                    group.leader = Some(new_id.clone());
                }
                group.members.insert(new_id.clone(), member);
                if group.state == GroupState::Stable && same_protocols {
                    actions.push(Action::Join(
                        token,
                        JoinResult {
                            error: codes::NONE,
                            generation: group.generation,
                            protocol_type: group.protocol_type.clone(),
                            protocol_name: group.protocol.clone(),
                            leader: group.leader.clone().unwrap_or_default(),
                            member_id: new_id,
                            // No member list: the assignment stays as it is.
                            members: Vec::new(),
                        },
                    ));
                    return actions;
                }
                req.member_id = new_id;
            }
        }
        let member_id = if req.member_id.is_empty() {
            format!("{}-{}", req.client_id, uuid::Uuid::new_v4())
        } else if !group.members.contains_key(&req.member_id) {
            return vec![Action::Join(
                token,
                JoinResult::error(codes::UNKNOWN_MEMBER_ID, &req.member_id),
            )];
        } else {
            req.member_id.clone()
        };
        // A member re-sending JoinGroup replaces its earlier pending request.
        if let Some(old) = group
            .members
            .get_mut(&member_id)
            .and_then(|m| m.pending_join.take())
        {
            actions.push(Action::Join(
                old,
                JoinResult::error(codes::REBALANCE_IN_PROGRESS, &member_id),
            ));
        }
        group.protocol_type = Some(req.protocol_type.clone());
        let member = group
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout: req.session_timeout,
                rebalance_timeout: req.rebalance_timeout,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                last_seen: now,
                pending_join: None,
            });
        member.protocols = req.protocols;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.last_seen = now;
        member.pending_join = Some(token);
        if group.state != GroupState::PreparingRebalance {
            Self::prepare_rebalance(group, now, delay, &mut actions);
        }
        Self::try_complete_join(group, now, false, &mut actions);
        actions
    }

    fn prepare_rebalance(
        group: &mut Group,
        now: Instant,
        delay: Duration,
        actions: &mut Vec<Action>,
    ) {
        for (token, _) in group.pending_sync.drain(..) {
            actions.push(Action::Sync(
                token,
                SyncResult::error(codes::REBALANCE_IN_PROGRESS),
            ));
        }
        let max_rebalance = group
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        group.initial_delay_until =
            (group.state == GroupState::Empty && !delay.is_zero()).then(|| now + delay);
        group.rebalance_deadline = now + max_rebalance.max(delay);
        group.state = GroupState::PreparingRebalance;
    }

    fn try_complete_join(
        group: &mut Group,
        now: Instant,
        deadline_passed: bool,
        actions: &mut Vec<Action>,
    ) {
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        if group.initial_delay_until.is_some_and(|t| now < t) {
            return;
        }
        let all_joined = group.members.values().all(|m| m.pending_join.is_some());
        if !all_joined && !deadline_passed {
            return;
        }
        // Members that did not rejoin in time are dropped.
        group.members.retain(|_, m| m.pending_join.is_some());
        group.generation += 1;
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.protocol = None;
            group.leader = None;
            return;
        }
        // Protocol: the one supported by every member that ranks best overall.
        let candidates: Vec<String> = group
            .members
            .values()
            .next()
            .map(|m| m.protocols.iter().map(|(p, _)| p.clone()).collect())
            .unwrap_or_default();
        let protocol = candidates
            .into_iter()
            .filter(|p| {
                group
                    .members
                    .values()
                    .all(|m| m.protocols.iter().any(|(q, _)| q == p))
            })
            .min_by_key(|p| {
                group
                    .members
                    .values()
                    .map(|m| {
                        m.protocols
                            .iter()
                            .position(|(q, _)| q == p)
                            .unwrap_or(usize::MAX)
                    })
                    .sum::<usize>()
            });
        group.protocol = protocol.clone();
        if !group
            .leader
            .as_ref()
            .is_some_and(|l| group.members.contains_key(l))
        {
            group.leader = group.members.keys().next().cloned();
        }
        let leader = group.leader.clone().unwrap_or_default();
        let all_members: Vec<(String, Option<String>, Bytes)> = group
            .members
            .iter()
            .map(|(id, m)| {
                let meta = m
                    .protocols
                    .iter()
                    .find(|(p, _)| Some(p) == protocol.as_ref())
                    .map(|(_, md)| md.clone())
                    .unwrap_or_default();
                (id.clone(), m.group_instance_id.clone(), meta)
            })
            .collect();
        group.state = GroupState::CompletingRebalance;
        for (id, m) in group.members.iter_mut() {
            m.last_seen = now;
            m.assignment = Bytes::new();
            if let Some(token) = m.pending_join.take() {
                actions.push(Action::Join(
                    token,
                    JoinResult {
                        error: codes::NONE,
                        generation: group.generation,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: protocol.clone(),
                        leader: leader.clone(),
                        member_id: id.clone(),
                        members: if *id == leader {
                            all_members.clone()
                        } else {
                            Vec::new()
                        },
                    },
                ));
            }
        }
    }

    /// Handles a SyncGroup; the answer arrives as [`Action::Sync`] with `token`.
    pub fn sync(
        &mut self,
        now: Instant,
        token: Token,
        group_id: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> Vec<Action> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return vec![Action::Sync(
                token,
                SyncResult::error(codes::UNKNOWN_MEMBER_ID),
            )];
        };
        let Some(member) = group.members.get_mut(member_id) else {
            return vec![Action::Sync(
                token,
                SyncResult::error(codes::UNKNOWN_MEMBER_ID),
            )];
        };
        if generation != group.generation {
            return vec![Action::Sync(
                token,
                SyncResult::error(codes::ILLEGAL_GENERATION),
            )];
        }
        member.last_seen = now;
        match group.state {
            GroupState::Empty | GroupState::PreparingRebalance => {
                vec![Action::Sync(
                    token,
                    SyncResult::error(codes::REBALANCE_IN_PROGRESS),
                )]
            }
            GroupState::Stable => {
                let a = member.assignment.clone();
                vec![Action::Sync(token, Self::sync_ok(group, a))]
            }
            GroupState::CompletingRebalance => {
                group.pending_sync.push((token, member_id.to_owned()));
                if group.leader.as_deref() != Some(member_id) {
                    return Vec::new();
                }
                for (id, a) in assignments {
                    if let Some(m) = group.members.get_mut(&id) {
                        m.assignment = a;
                    }
                }
                group.state = GroupState::Stable;
                let pending = std::mem::take(&mut group.pending_sync);
                pending
                    .into_iter()
                    .map(|(t, id)| {
                        let a = group
                            .members
                            .get(&id)
                            .map(|m| m.assignment.clone())
                            .unwrap_or_default();
                        Action::Sync(t, Self::sync_ok(group, a))
                    })
                    .collect()
            }
        }
    }

    fn sync_ok(group: &Group, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: codes::NONE,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol.clone(),
            assignment,
        }
    }

    /// Handles a Heartbeat and returns its error code.
    pub fn heartbeat(
        &mut self,
        now: Instant,
        group_id: &str,
        generation: i32,
        member_id: &str,
    ) -> i16 {
        let Some(group) = self.groups.get_mut(group_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        let Some(member) = group.members.get_mut(member_id) else {
            return codes::UNKNOWN_MEMBER_ID;
        };
        member.last_seen = now;
        match group.state {
            GroupState::PreparingRebalance => codes::REBALANCE_IN_PROGRESS,
            _ if generation != group.generation => codes::ILLEGAL_GENERATION,
            _ => codes::NONE,
        }
    }

    /// Removes members (LeaveGroup). Returns a per-member error code and deferred answers.
    pub fn leave(
        &mut self,
        now: Instant,
        group_id: &str,
        member_ids: &[String],
    ) -> (Vec<i16>, Vec<Action>) {
        let mut actions = Vec::new();
        let delay = self.initial_rebalance_delay;
        let Some(group) = self.groups.get_mut(group_id) else {
            return (vec![codes::UNKNOWN_MEMBER_ID; member_ids.len()], actions);
        };
        let mut codes_out = Vec::new();
        let mut removed = false;
        for id in member_ids {
            match group.members.remove(id) {
                Some(m) => {
                    if let Some(t) = m.pending_join {
                        actions.push(Action::Join(
                            t,
                            JoinResult::error(codes::UNKNOWN_MEMBER_ID, id),
                        ));
                    }
                    group.pending_sync.retain(|(t, pid)| {
                        if pid == id {
                            actions.push(Action::Sync(
                                *t,
                                SyncResult::error(codes::UNKNOWN_MEMBER_ID),
                            ));
                            false
                        } else {
                            true
                        }
                    });
                    removed = true;
                    codes_out.push(codes::NONE);
                }
                None => codes_out.push(codes::UNKNOWN_MEMBER_ID),
            }
        }
        if removed {
            Self::membership_changed(group, now, delay, &mut actions);
        }
        (codes_out, actions)
    }

    fn membership_changed(
        group: &mut Group,
        now: Instant,
        delay: Duration,
        actions: &mut Vec<Action>,
    ) {
        if group.members.is_empty() {
            for (token, _) in group.pending_sync.drain(..) {
                actions.push(Action::Sync(
                    token,
                    SyncResult::error(codes::REBALANCE_IN_PROGRESS),
                ));
            }
            group.state = GroupState::Empty;
            group.leader = None;
            group.protocol = None;
            group.generation += 1;
            return;
        }
        if group.state != GroupState::PreparingRebalance {
            Self::prepare_rebalance(group, now, delay, actions);
        }
        Self::try_complete_join(group, now, false, actions);
    }

    /// Advances time: expires members whose session ran out and completes rebalances whose
    /// deadline passed.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let delay = self.initial_rebalance_delay;
        for (group_id, group) in self.groups.iter_mut() {
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.pending_join.is_none() && now.duration_since(m.last_seen) > m.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            if !expired.is_empty() {
                for id in &expired {
                    tracing::info!(target: "kafkit::broker", group = %group_id, member = %id, "member session expired");
                    group.members.remove(id);
                    group.pending_sync.retain(|(t, pid)| {
                        if pid == id {
                            actions.push(Action::Sync(
                                *t,
                                SyncResult::error(codes::UNKNOWN_MEMBER_ID),
                            ));
                            false
                        } else {
                            true
                        }
                    });
                }
                Self::membership_changed(group, now, delay, &mut actions);
            }
            if group.state == GroupState::PreparingRebalance {
                let passed = now >= group.rebalance_deadline;
                Self::try_complete_join(group, now, passed, &mut actions);
            }
        }
        actions
    }

    /// Checks that an OffsetCommit may be accepted; returns an error code.
    pub fn validate_commit(&self, group_id: &str, generation: i32, member_id: &str) -> i16 {
        if generation < 0 && member_id.is_empty() {
            // A commit outside group management (simple consumer, admin): only while the
            // group has no members; otherwise UNKNOWN_MEMBER_ID, as Kafka's coordinator.
            return match self.groups.get(group_id) {
                Some(g) if !g.members.is_empty() => codes::UNKNOWN_MEMBER_ID,
                _ => codes::NONE,
            };
        }
        let Some(group) = self.groups.get(group_id) else {
            return codes::ILLEGAL_GENERATION;
        };
        if !group.members.contains_key(member_id) {
            return codes::UNKNOWN_MEMBER_ID;
        }
        if generation != group.generation {
            return codes::ILLEGAL_GENERATION;
        }
        if group.state == GroupState::CompletingRebalance {
            return codes::REBALANCE_IN_PROGRESS;
        }
        codes::NONE
    }

    /// Ids of all groups.
    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// A group's state, protocol and members, as DescribeGroups shows them.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group_id)?;
        let protocol = g.protocol.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: protocol.clone(),
            members: g
                .members
                .iter()
                .map(|(id, m)| {
                    let meta = m
                        .protocols
                        .iter()
                        .find(|(p, _)| *p == protocol)
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default();
                    (
                        id.clone(),
                        m.group_instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        meta,
                        m.assignment.clone(),
                    )
                })
                .collect(),
        })
    }

    /// Whether a group has members right now.
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Forgets an empty group. Err(NON_EMPTY_GROUP) while it has members.
    pub fn delete(&mut self, group_id: &str) -> Result<(), i16> {
        if self.has_members(group_id) {
            return Err(codes::NON_EMPTY_GROUP);
        }
        self.groups.remove(group_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(group: &str, member: &str) -> JoinRequest {
        JoinRequest {
            group_id: group.into(),
            member_id: member.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
        }
    }

    fn join_result(actions: &[Action], token: Token) -> JoinResult {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Join(t, r) if *t == token => Some(r.clone()),
                _ => None,
            })
            .expect("join answered")
    }

    #[test]
    fn single_member_join_sync_heartbeat_leave() {
        let t0 = Instant::now();
        let mut c = Coordinator::new(Duration::ZERO);
        let a = c.join(t0, 1, req("g", ""));
        let r = join_result(&a, 1);
        assert_eq!((r.error, r.generation), (0, 1));
        assert_eq!(r.leader, r.member_id);
        assert_eq!(r.members.len(), 1);
        let a = c.sync(
            t0,
            2,
            "g",
            1,
            &r.member_id,
            vec![(r.member_id.clone(), Bytes::from_static(b"A"))],
        );
        assert_eq!(
            a,
            vec![Action::Sync(
                2,
                SyncResult {
                    error: 0,
                    protocol_type: Some("consumer".into()),
                    protocol_name: Some("range".into()),
                    assignment: Bytes::from_static(b"A")
                }
            )]
        );
        assert_eq!(c.heartbeat(t0, "g", 1, &r.member_id), 0);
        assert_eq!(
            c.heartbeat(t0, "g", 0, &r.member_id),
            codes::ILLEGAL_GENERATION
        );
        let (codes_out, _) = c.leave(t0, "g", std::slice::from_ref(&r.member_id));
        assert_eq!(codes_out, vec![0]);
        assert_eq!(c.group_state("g").unwrap().0, GroupState::Empty);
    }

    #[test]
    fn second_member_triggers_rebalance_and_waits_for_first() {
        let t0 = Instant::now();
        let mut c = Coordinator::new(Duration::ZERO);
        let r1 = join_result(&c.join(t0, 1, req("g", "")), 1);
        c.sync(t0, 2, "g", 1, &r1.member_id, vec![]);
        // second member joins: pending until the first rejoins
        assert!(c.join(t0, 3, req("g", "")).is_empty());
        assert_eq!(
            c.heartbeat(t0, "g", 1, &r1.member_id),
            codes::REBALANCE_IN_PROGRESS
        );
        let a = c.join(t0, 4, req("g", &r1.member_id));
        let a1 = join_result(&a, 4);
        let a2 = join_result(&a, 3);
        assert_eq!((a1.generation, a2.generation), (2, 2));
        assert_eq!(a1.leader, r1.member_id);
        assert_eq!(a1.members.len(), 2);
        assert!(a2.members.is_empty());
        // follower sync waits for the leader
        assert!(c.sync(t0, 5, "g", 2, &a2.member_id, vec![]).is_empty());
        let done = c.sync(
            t0,
            6,
            "g",
            2,
            &a1.member_id,
            vec![(a2.member_id.clone(), Bytes::from_static(b"B"))],
        );
        assert_eq!(done.len(), 2);
        assert!(done.contains(&Action::Sync(
            5,
            SyncResult {
                error: 0,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from_static(b"B")
            }
        )));
    }

    #[test]
    fn expired_member_is_removed_and_laggard_dropped_at_deadline() {
        let t0 = Instant::now();
        let mut c = Coordinator::new(Duration::ZERO);
        let r1 = join_result(&c.join(t0, 1, req("g", "")), 1);
        c.sync(t0, 2, "g", 1, &r1.member_id, vec![]);
        assert!(c.join(t0, 3, req("g", "")).is_empty());
        // the first member never rejoins: after the rebalance timeout the join completes without it
        let a = c.tick(t0 + Duration::from_secs(31));
        let r2 = join_result(&a, 3);
        assert_eq!(r2.generation, 2);
        assert_eq!(r2.members.len(), 1);
        assert_eq!(
            c.heartbeat(t0, "g", 2, &r1.member_id),
            codes::UNKNOWN_MEMBER_ID
        );
        // the second member stops heartbeating: its session expires
        c.sync(
            t0 + Duration::from_secs(31),
            4,
            "g",
            2,
            &r2.member_id,
            vec![],
        );
        c.tick(t0 + Duration::from_secs(42));
        assert_eq!(c.group_state("g").unwrap().0, GroupState::Empty);
    }

    #[test]
    fn initial_delay_collects_members() {
        let t0 = Instant::now();
        let mut c = Coordinator::new(Duration::from_secs(3));
        assert!(c.join(t0, 1, req("g", "")).is_empty());
        assert!(c
            .join(t0 + Duration::from_secs(1), 2, req("g", ""))
            .is_empty());
        let a = c.tick(t0 + Duration::from_secs(3));
        assert_eq!(join_result(&a, 1).generation, 1);
        assert_eq!(join_result(&a, 2).generation, 1);
    }
}
