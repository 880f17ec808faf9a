//! Consumer-group membership as a state machine without I/O, in the shape of the broker's
//! `group::Coordinator`: inputs carry `now`, outputs are [`Action`]s the tokio driver
//! (`group.rs`) carries out — JoinGroup, SyncGroup, Heartbeat, commits, revoking and starting
//! partitions, leaving — feeding each answer back in. Timers (heartbeats, periodic commits,
//! partition-count checks) are deadlines the driver sleeps until ([`Membership::poll`],
//! [`Membership::next_deadline`]), so every rule here is tested with simulated time.
//!
//! Rules, as the Java client's `ConsumerCoordinator`:
//! * Eager protocols (range, roundrobin): every owned partition is revoked (and what was
//!   processed committed) before rejoining — at a heartbeat's REBALANCE_IN_PROGRESS, or at the
//!   latest when the JoinGroup answer names an eager protocol.
//! * cooperative-sticky (KIP-429): partitions are kept through the rejoin; after SyncGroup only
//!   the ones the new assignment takes away are revoked, and then the member rejoins once more
//!   so the group can hand them on.
//! * ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID: the partitions are lost (no commit), the member
//!   rejoins (with a fresh id after UNKNOWN_MEMBER_ID).
//! * Other failures revoke everything, commit what can be committed, back off (100 ms doubling
//!   to 5 s) and rejoin.
//! * Closing revokes everything, commits, and leaves the group — except a static member
//!   (KIP-345), whose partitions wait for it for `session_timeout`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::Tp;
use crate::config::GroupBalancer;

use kafkit_protocol::codes::{ILLEGAL_GENERATION, NONE, REBALANCE_IN_PROGRESS, UNKNOWN_MEMBER_ID};

/// What the machine needs to know of the reader's configuration.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// Assignors offered, in preference order.
    pub balancers: Vec<GroupBalancer>,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Periodic commits of marked offsets (zero: none).
    pub commit_interval: Duration,
    /// Partition-count checks (`None`: off).
    pub watch_interval: Option<Duration>,
    /// Static membership (`group_instance_id` set): closing does not leave the group.
    pub is_static: bool,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// JoinGroup with this member id; cooperative subscriptions carry `owned` and `generation`.
    Join {
        member_id: String,
        owned: Vec<Tp>,
        generation: i32,
    },
    /// As the group's leader: compute the assignment with `protocol` from the last JoinGroup
    /// answer (then SyncGroup carries it).
    ComputeAssignment { protocol: GroupBalancer },
    /// SyncGroup for `generation`.
    Sync { generation: i32, member_id: String },
    /// Stop delivering these partitions, then the listener's `on_revoked`.
    Revoke(Vec<Tp>),
    /// These partitions are lost: stop delivering, then the listener's `on_lost`.
    Lose(Vec<Tp>),
    /// Commit what was marked processed.
    Commit,
    /// Find where these partitions start, call the listener's `on_assigned`, fetch them.
    Start(Vec<Tp>),
    /// Heartbeat for `generation`.
    Heartbeat { generation: i32, member_id: String },
    /// Check whether the topics' partition counts changed.
    WatchPartitions,
    /// LeaveGroup.
    Leave { member_id: String },
    /// Wait this long before going on (after a failure).
    Backoff(Duration),
    /// Nothing more: the reader is closed.
    Stop,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone)]
pub(super) enum JoinResult {
    /// Joined `generation`; `leader` if this member must assign (`has_members`: the answer
    /// lists the members; a static member rejoining a stable group gets no list and keeps
    /// the assignment as it is).
    Joined {
        member_id: String,
        generation: i32,
        protocol: Option<String>,
        leader: bool,
        has_members: bool,
    },
    /// MEMBER_ID_REQUIRED (KIP-394): join again with this id.
    MemberIdRequired(String),
    /// An error code, or a failed request (`None`).
    Failed(Option<i16>),
}

/// The answer to a SyncGroup (or what followed it).
#[derive(Debug, Clone)]
pub(super) enum SyncResult {
    /// This member's partitions for the generation.
    Assigned(BTreeSet<Tp>),
    /// REBALANCE_IN_PROGRESS, or an answer that did not decode: rejoin at once.
    Rejoin,
    /// An error code, or a failed request / assignment (`None`).
    Failed(Option<i16>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Joining,
    Syncing { generation: i32 },
    Stable { generation: i32 },
    Closed,
}

/// One member's view of its group.
#[derive(Debug)]
pub(super) struct Membership {
    settings: Settings,
    state: State,
    member_id: String,
    /// The generation joined last (-1: none).
    generation: i32,
    protocol: Option<GroupBalancer>,
    owned: BTreeSet<Tp>,
    next_heartbeat: Option<Instant>,
    next_commit: Option<Instant>,
    next_watch: Option<Instant>,
    backoff: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Membership {
    /// A member that has not joined yet.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            state: State::Joining,
            member_id: String::new(),
            generation: -1,
            protocol: None,
            owned: BTreeSet::new(),
            next_heartbeat: None,
            next_commit: None,
            next_watch: None,
            backoff: FIRST_BACKOFF,
        }
    }

    /// The partitions this member owns.
    #[cfg(test)]
    pub fn owned(&self) -> &BTreeSet<Tp> {
        &self.owned
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The first action: join.
    pub fn start(&mut self, _now: Instant) -> Vec<Action> {
        self.state = State::Joining;
        vec![self.join()]
    }

    fn join(&mut self) -> Action {
        self.state = State::Joining;
        self.next_heartbeat = None;
        Action::Join {
            member_id: self.member_id.clone(),
            owned: self.owned.iter().copied().collect(),
            generation: self.generation,
        }
    }

    fn cooperative(&self) -> bool {
        self.protocol == Some(GroupBalancer::CooperativeSticky)
    }

    fn revoke_all(&mut self, out: &mut Vec<Action>) {
        if !self.owned.is_empty() {
            out.push(Action::Revoke(
                std::mem::take(&mut self.owned).into_iter().collect(),
            ));
        }
        out.push(Action::Commit);
    }

    fn lose_all(&mut self, code: i16, out: &mut Vec<Action>) {
        if code == UNKNOWN_MEMBER_ID {
            self.member_id.clear();
        }
        if !self.owned.is_empty() {
            out.push(Action::Lose(
                std::mem::take(&mut self.owned).into_iter().collect(),
            ));
        }
    }

    /// A failure: revoke, commit, back off, rejoin.
    pub fn failed(&mut self, _now: Instant) -> Vec<Action> {
        if self.is_closed() {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.revoke_all(&mut out);
        out.push(Action::Backoff(self.backoff));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        out.push(self.join());
        out
    }

    /// The JoinGroup answer.
    pub fn on_join(&mut self, now: Instant, r: JoinResult) -> Vec<Action> {
        if self.is_closed() {
            return Vec::new();
        }
        match r {
            JoinResult::MemberIdRequired(id) => {
                self.member_id = id;
                vec![self.join()]
            }
            JoinResult::Failed(code) => {
                if code == Some(UNKNOWN_MEMBER_ID) {
                    self.member_id.clear();
                }
                self.failed(now)
            }
            JoinResult::Joined {
                member_id,
                generation,
                protocol,
                leader,
                has_members,
            } => {
                let chosen = protocol
                    .as_deref()
                    .and_then(GroupBalancer::from_name)
                    .or_else(|| {
                        (self.settings.balancers.len() == 1).then(|| self.settings.balancers[0])
                    });
                self.member_id = member_id;
                self.generation = generation;
                let Some(chosen) = chosen else {
                    // INCONSISTENT_GROUP_PROTOCOL in effect: nothing we offered.
                    return self.failed(now);
                };
                self.protocol = Some(chosen);
                let mut out = Vec::new();
                if !self.cooperative() && !self.owned.is_empty() {
                    // Eager protocol: nothing may be kept into the new generation.
                    self.revoke_all(&mut out);
                }
                if leader && has_members {
                    out.push(Action::ComputeAssignment { protocol: chosen });
                }
                out.push(Action::Sync {
                    generation,
                    member_id: self.member_id.clone(),
                });
                self.state = State::Syncing { generation };
                out
            }
        }
    }

    /// The SyncGroup answer.
    pub fn on_sync(&mut self, now: Instant, r: SyncResult) -> Vec<Action> {
        let State::Syncing { generation } = self.state else {
            return Vec::new();
        };
        match r {
            SyncResult::Rejoin => vec![self.join()],
            SyncResult::Failed(Some(code @ (ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID))) => {
                let mut out = Vec::new();
                self.lose_all(code, &mut out);
                out.push(self.join());
                out
            }
            SyncResult::Failed(Some(REBALANCE_IN_PROGRESS)) => vec![self.join()],
            SyncResult::Failed(_) => self.failed(now),
            SyncResult::Assigned(mine) => {
                let revoked: Vec<Tp> = self.owned.difference(&mine).copied().collect();
                let added: Vec<Tp> = mine.difference(&self.owned).copied().collect();
                let mut out = Vec::new();
                if !revoked.is_empty() {
                    out.push(Action::Revoke(revoked.clone()));
                    out.push(Action::Commit);
                }
                if !added.is_empty() {
                    out.push(Action::Start(added));
                }
                self.owned = mine;
                self.backoff = FIRST_BACKOFF;
                if self.cooperative() && !revoked.is_empty() {
                    // KIP-429: rejoin so the revoked partitions can go to their new owner.
                    out.push(self.join());
                    return out;
                }
                self.state = State::Stable { generation };
                self.next_heartbeat = Some(now + self.settings.heartbeat_interval);
                self.next_commit = (!self.settings.commit_interval.is_zero())
                    .then(|| now + self.settings.commit_interval);
                self.next_watch = self.settings.watch_interval.map(|d| now + d);
                out
            }
        }
    }

    /// The answer to a Heartbeat (`None`: the request failed).
    pub fn on_heartbeat(&mut self, now: Instant, code: Option<i16>) -> Vec<Action> {
        let State::Stable { .. } = self.state else {
            return Vec::new();
        };
        match code {
            Some(NONE) => {
                self.next_heartbeat = Some(now + self.settings.heartbeat_interval);
                Vec::new()
            }
            Some(REBALANCE_IN_PROGRESS) => self.rebalance(),
            Some(code @ (ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID)) => {
                let mut out = Vec::new();
                self.lose_all(code, &mut out);
                out.push(self.join());
                out
            }
            _ => self.failed(now),
        }
    }

    /// A commit was refused with `code`: REBALANCE_IN_PROGRESS means the group is rebalancing
    /// (rejoin now rather than at the next heartbeat); ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID
    /// mean the partitions are lost. Other codes change nothing here (the marks are kept and
    /// retried).
    pub fn on_commit_error(&mut self, _now: Instant, code: i16) -> Vec<Action> {
        let State::Stable { .. } = self.state else {
            return Vec::new();
        };
        match code {
            REBALANCE_IN_PROGRESS => self.rebalance(),
            ILLEGAL_GENERATION | UNKNOWN_MEMBER_ID => {
                let mut out = Vec::new();
                self.lose_all(code, &mut out);
                out.push(self.join());
                out
            }
            _ => Vec::new(),
        }
    }

    /// A topic's partition count changed: rejoin so the group assigns the new partitions.
    pub fn partitions_changed(&mut self, _now: Instant) -> Vec<Action> {
        match self.state {
            State::Stable { .. } => self.rebalance(),
            _ => Vec::new(),
        }
    }

    fn rebalance(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.cooperative() {
            // Keep everything through the rejoin; commit what was processed so far.
            out.push(Action::Commit);
        } else {
            // Eager: revoke everything before rejoining; the commit still counts for this
            // generation (brokers accept commits while the group prepares the rebalance).
            self.revoke_all(&mut out);
        }
        out.push(self.join());
        out
    }

    /// Timers that are due: heartbeat, periodic commit, partition-count check.
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let State::Stable { generation } = self.state else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if self.next_commit.is_some_and(|t| t <= now) {
            out.push(Action::Commit);
            self.next_commit = Some(now + self.settings.commit_interval);
        }
        if let Some(d) = self.settings.watch_interval {
            if self.next_watch.is_some_and(|t| t <= now) {
                out.push(Action::WatchPartitions);
                self.next_watch = Some(now + d);
            }
        }
        if self.next_heartbeat.is_some_and(|t| t <= now) {
            // The next one is scheduled when this one is answered.
            self.next_heartbeat = None;
            out.push(Action::Heartbeat {
                generation,
                member_id: self.member_id.clone(),
            });
        }
        out
    }

    /// When [`poll`](Self::poll) has something to do next (`None`: waiting on an answer).
    pub fn next_deadline(&self) -> Option<Instant> {
        if !matches!(self.state, State::Stable { .. }) {
            return None;
        }
        [self.next_heartbeat, self.next_commit, self.next_watch]
            .into_iter()
            .flatten()
            .min()
    }

    /// Closing: revoke everything, commit, leave (unless static), stop.
    pub fn close(&mut self, _now: Instant) -> Vec<Action> {
        if self.is_closed() {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.revoke_all(&mut out);
        if !self.settings.is_static && !self.member_id.is_empty() {
            out.push(Action::Leave {
                member_id: self.member_id.clone(),
            });
        }
        out.push(Action::Stop);
        self.state = State::Closed;
        self.next_heartbeat = None;
        self.next_commit = None;
        self.next_watch = None;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafkit_protocol::codes::NOT_COORDINATOR;

    fn settings(balancer: GroupBalancer) -> Settings {
        Settings {
            balancers: vec![balancer],
            heartbeat_interval: Duration::from_secs(3),
            commit_interval: Duration::ZERO,
            watch_interval: None,
            is_static: false,
        }
    }

    fn joined(m: &mut Membership, now: Instant, generation: i32, leader: bool) -> Vec<Action> {
        m.on_join(
            now,
            JoinResult::Joined {
                member_id: "m1".into(),
                generation,
                protocol: m.settings.balancers.first().map(|b| b.name().to_owned()),
                leader,
                has_members: leader,
            },
        )
    }

    fn set(tps: &[Tp]) -> BTreeSet<Tp> {
        tps.iter().copied().collect()
    }

    #[test]
    fn join_sync_start_then_heartbeat_on_time() {
        let t0 = Instant::now();
        let mut m = Membership::new(settings(GroupBalancer::Range));
        assert_eq!(
            m.start(t0),
            vec![Action::Join {
                member_id: String::new(),
                owned: vec![],
                generation: -1
            }]
        );
        // KIP-394: the broker asks for a member id first.
        assert!(matches!(
            &m.on_join(t0, JoinResult::MemberIdRequired("m1".into()))[..],
            [Action::Join { member_id, .. }] if member_id == "m1"
        ));
        assert_eq!(
            joined(&mut m, t0, 1, true),
            vec![
                Action::ComputeAssignment {
                    protocol: GroupBalancer::Range
                },
                Action::Sync {
                    generation: 1,
                    member_id: "m1".into()
                }
            ]
        );
        let a = m.on_sync(t0, SyncResult::Assigned(set(&[(0, 0), (0, 1)])));
        assert_eq!(a, vec![Action::Start(vec![(0, 0), (0, 1)])]);
        assert_eq!(m.next_deadline(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(m.poll(t0 + Duration::from_secs(2)), vec![]);
        let t3 = t0 + Duration::from_secs(3);
        assert_eq!(
            m.poll(t3),
            vec![Action::Heartbeat {
                generation: 1,
                member_id: "m1".into()
            }]
        );
        assert_eq!(m.next_deadline(), None, "waiting for the answer");
        assert_eq!(m.on_heartbeat(t3, Some(0)), vec![]);
        assert_eq!(m.next_deadline(), Some(t3 + Duration::from_secs(3)));
    }

    #[test]
    fn eager_rebalance_revokes_and_commits_before_rejoining() {
        let t0 = Instant::now();
        let mut m = Membership::new(settings(GroupBalancer::Range));
        m.start(t0);
        joined(&mut m, t0, 1, false);
        m.on_sync(t0, SyncResult::Assigned(set(&[(0, 0), (0, 1)])));
        let a = m.on_heartbeat(t0, Some(REBALANCE_IN_PROGRESS));
        assert_eq!(
            a,
            vec![
                Action::Revoke(vec![(0, 0), (0, 1)]),
                Action::Commit,
                Action::Join {
                    member_id: "m1".into(),
                    owned: vec![],
                    generation: 1
                }
            ]
        );
        // The next generation gives one partition back: it starts again.
        joined(&mut m, t0, 2, false);
        let a = m.on_sync(t0, SyncResult::Assigned(set(&[(0, 1)])));
        assert_eq!(a, vec![Action::Start(vec![(0, 1)])]);
    }

    #[test]
    fn cooperative_keeps_partitions_and_rejoins_after_giving_some_up() {
        let t0 = Instant::now();
        let mut m = Membership::new(settings(GroupBalancer::CooperativeSticky));
        m.start(t0);
        joined(&mut m, t0, 1, true);
        m.on_sync(t0, SyncResult::Assigned(set(&[(0, 0), (0, 1), (0, 2)])));
        // A new member: rejoin owning everything, nothing revoked yet.
        let a = m.on_heartbeat(t0, Some(REBALANCE_IN_PROGRESS));
        assert_eq!(
            a,
            vec![
                Action::Commit,
                Action::Join {
                    member_id: "m1".into(),
                    owned: vec![(0, 0), (0, 1), (0, 2)],
                    generation: 1
                }
            ]
        );
        let a = joined(&mut m, t0, 2, true);
        assert!(!a.iter().any(|x| matches!(x, Action::Revoke(_))));
        // Partition 2 goes to the new member: revoke only it, commit, rejoin.
        let a = m.on_sync(t0, SyncResult::Assigned(set(&[(0, 0), (0, 1)])));
        assert_eq!(
            a,
            vec![
                Action::Revoke(vec![(0, 2)]),
                Action::Commit,
                Action::Join {
                    member_id: "m1".into(),
                    owned: vec![(0, 0), (0, 1)],
                    generation: 2
                }
            ]
        );
        joined(&mut m, t0, 3, true);
        assert_eq!(
            m.on_sync(t0, SyncResult::Assigned(set(&[(0, 0), (0, 1)]))),
            vec![]
        );
        assert_eq!(m.owned(), &set(&[(0, 0), (0, 1)]));
    }

    #[test]
    fn fenced_members_lose_partitions_without_committing() {
        let t0 = Instant::now();
        let mut m = Membership::new(settings(GroupBalancer::Range));
        m.start(t0);
        joined(&mut m, t0, 1, false);
        m.on_sync(t0, SyncResult::Assigned(set(&[(0, 0)])));
        let a = m.on_heartbeat(t0, Some(UNKNOWN_MEMBER_ID));
        assert_eq!(
            a,
            vec![
                Action::Lose(vec![(0, 0)]),
                Action::Join {
                    member_id: String::new(),
                    owned: vec![],
                    generation: 1
                }
            ],
            "UNKNOWN_MEMBER_ID: no commit, a fresh member id"
        );
        joined(&mut m, t0, 2, false);
        let a = m.on_sync(t0, SyncResult::Failed(Some(ILLEGAL_GENERATION)));
        assert!(matches!(&a[..], [Action::Join { member_id, .. }] if member_id == "m1"));
    }

    #[test]
    fn failures_back_off_doubling_and_reset_after_a_sync() {
        let t0 = Instant::now();
        let mut m = Membership::new(settings(GroupBalancer::Range));
        m.start(t0);
        let backoffs: Vec<Duration> = (0..7)
            .map(|_| {
                m.on_join(t0, JoinResult::Failed(None))
                    .into_iter()
                    .find_map(|a| match a {
                        Action::Backoff(d) => Some(d),
                        _ => None,
                    })
                    .unwrap()
            })
            .collect();
        let ms: Vec<u128> = backoffs.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1600, 3200, 5000]);
        joined(&mut m, t0, 1, false);
        m.on_sync(t0, SyncResult::Assigned(set(&[])));
        let a = m.on_heartbeat(t0, Some(NOT_COORDINATOR));
        assert!(a.contains(&Action::Backoff(Duration::from_millis(100))));
    }

    #[test]
    fn periodic_commits_and_partition_watch_run_while_stable() {
        let t0 = Instant::now();
        let mut m = Membership::new(Settings {
            commit_interval: Duration::from_secs(1),
            watch_interval: Some(Duration::from_secs(5)),
            ..settings(GroupBalancer::Range)
        });
        m.start(t0);
        joined(&mut m, t0, 1, false);
        m.on_sync(t0, SyncResult::Assigned(set(&[(0, 0)])));
        assert_eq!(m.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(m.poll(t0 + Duration::from_secs(1)), vec![Action::Commit]);
        let t5 = t0 + Duration::from_secs(5);
        let a = m.poll(t5);
        assert!(a.contains(&Action::Commit) && a.contains(&Action::WatchPartitions));
        let a = m.partitions_changed(t5);
        assert_eq!(a[0], Action::Revoke(vec![(0, 0)]));
        assert!(matches!(a.last(), Some(Action::Join { .. })));
        assert_eq!(
            m.poll(t5 + Duration::from_secs(60)),
            vec![],
            "no timers while joining"
        );
    }

    #[test]
    fn a_commit_refused_for_a_rebalance_rejoins_without_waiting_for_the_heartbeat() {
        let t0 = Instant::now();
        let mut m = Membership::new(settings(GroupBalancer::Range));
        m.start(t0);
        joined(&mut m, t0, 1, false);
        m.on_sync(t0, SyncResult::Assigned(set(&[(0, 0), (0, 1)])));
        assert_eq!(
            m.on_commit_error(t0, 7),
            vec![],
            "a retriable error: nothing changes"
        );
        let a = m.on_commit_error(t0, 27);
        assert_eq!(
            a,
            vec![
                Action::Revoke(vec![(0, 0), (0, 1)]),
                Action::Commit,
                Action::Join {
                    member_id: "m1".into(),
                    owned: vec![],
                    generation: 1
                }
            ]
        );
        // While joining, a late commit error is ignored.
        assert_eq!(m.on_commit_error(t0, 27), vec![]);
        joined(&mut m, t0, 2, false);
        m.on_sync(t0, SyncResult::Assigned(set(&[(0, 0)])));
        let a = m.on_commit_error(t0, 22);
        assert_eq!(a[0], Action::Lose(vec![(0, 0)]), "ILLEGAL_GENERATION: lost");
    }

    #[test]
    fn closing_leaves_unless_static() {
        let t0 = Instant::now();
        for is_static in [false, true] {
            let mut m = Membership::new(Settings {
                is_static,
                ..settings(GroupBalancer::Range)
            });
            m.start(t0);
            joined(&mut m, t0, 1, false);
            m.on_sync(t0, SyncResult::Assigned(set(&[(0, 3)])));
            let a = m.close(t0);
            let mut want = vec![Action::Revoke(vec![(0, 3)]), Action::Commit];
            if !is_static {
                want.push(Action::Leave {
                    member_id: "m1".into(),
                });
            }
            want.push(Action::Stop);
            assert_eq!(a, want);
            assert!(m.close(t0).is_empty() && m.on_heartbeat(t0, Some(0)).is_empty());
        }
    }

    #[test]
    fn a_static_member_rejoining_a_stable_group_keeps_its_assignment() {
        let t0 = Instant::now();
        let mut m = Membership::new(Settings {
            is_static: true,
            ..settings(GroupBalancer::Range)
        });
        m.start(t0);
        // The coordinator answers a returning static member without the member list, even
        // if it is the leader: it must not compute an assignment, only sync.
        let a = m.on_join(
            t0,
            JoinResult::Joined {
                member_id: "m9".into(),
                generation: 4,
                protocol: Some("range".into()),
                leader: true,
                has_members: false,
            },
        );
        assert_eq!(
            a,
            vec![Action::Sync {
                generation: 4,
                member_id: "m9".into()
            }]
        );
    }
}
