//! The consumer protocol's subscription/assignment encoding (`ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment` v0, as the Java client, librdkafka and kafka-python write them)
//! and the range assignor.
//!
//! Written by hand: `kafka-protocol` generates only the request/response messages, not these
//! embedded schemas.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn get_str(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let len = b.get_i16();
    if len < 0 || b.remaining() < len as usize {
        return None;
    }
    Some(String::from_utf8_lossy(&b.split_to(len as usize)).into_owned())
}

/// Subscription metadata: version 0, topics, no user data.
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        put_str(&mut b, t);
    }
    b.put_i32(-1);
    b.freeze()
}

/// Topics of a subscription (any version: later versions only append fields).
pub fn decode_subscription(mut b: Bytes) -> Option<Vec<String>> {
    if b.remaining() < 6 {
        return None;
    }
    let _version = b.get_i16();
    let n = b.get_i32();
    (0..n.max(0)).map(|_| get_str(&mut b)).collect()
}

/// Assignment: version 0, topic → partitions, no user data.
pub fn encode_assignment(parts: &BTreeMap<String, Vec<i32>>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(parts.len() as i32);
    for (t, ps) in parts {
        put_str(&mut b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

/// Topic → partitions of an assignment. Empty bytes mean no assignment.
pub fn decode_assignment(mut b: Bytes) -> Option<BTreeMap<String, Vec<i32>>> {
    let mut out = BTreeMap::new();
    if b.is_empty() {
        return Some(out);
    }
    if b.remaining() < 6 {
        return None;
    }
    let _version = b.get_i16();
    let n = b.get_i32();
    for _ in 0..n.max(0) {
        let t = get_str(&mut b)?;
        if b.remaining() < 4 {
            return None;
        }
        let k = b.get_i32();
        if k < 0 || b.remaining() < 4 * k as usize {
            return None;
        }
        out.insert(t, (0..k).map(|_| b.get_i32()).collect());
    }
    Some(out)
}

/// A member's subscription as an assignor sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Partitions the member owns now (subscription v1+; cooperative rebalancing).
    pub owned: BTreeMap<String, Vec<i32>>,
    /// Generation the owned partitions are from (-1: unknown). Written as the user data, as
    /// Java's `CooperativeStickyAssignor` does.
    pub generation: i32,
}

/// Subscription v1: topics, user data (the generation, int32), owned partitions.
pub fn encode_subscription_v1(
    topics: &[String],
    owned: &BTreeMap<String, Vec<i32>>,
    generation: i32,
) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(topics.len() as i32);
    for t in topics {
        put_str(&mut b, t);
    }
    b.put_i32(4);
    b.put_i32(generation);
    b.put_i32(owned.len() as i32);
    for (t, ps) in owned {
        put_str(&mut b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.freeze()
}

/// A subscription of any version (v1+ adds owned partitions; later versions append fields
/// this reader ignores).
pub fn decode_subscription_full(mut b: Bytes) -> Option<Subscription> {
    if b.remaining() < 6 {
        return None;
    }
    let version = b.get_i16();
    let n = b.get_i32();
    let topics = (0..n.max(0))
        .map(|_| get_str(&mut b))
        .collect::<Option<Vec<_>>>()?;
    let mut sub = Subscription {
        topics,
        owned: BTreeMap::new(),
        generation: -1,
    };
    if b.remaining() < 4 {
        return Some(sub); // v0 without user data
    }
    let len = b.get_i32();
    if len > 0 {
        if b.remaining() < len as usize {
            return None;
        }
        let mut user = b.split_to(len as usize);
        if len == 4 {
            sub.generation = user.get_i32();
        }
    }
    if version >= 1 && b.remaining() >= 4 {
        let n = b.get_i32();
        for _ in 0..n.max(0) {
            let t = get_str(&mut b)?;
            if b.remaining() < 4 {
                return None;
            }
            let k = b.get_i32();
            if k < 0 || b.remaining() < 4 * k as usize {
                return None;
            }
            sub.owned.insert(t, (0..k).map(|_| b.get_i32()).collect());
        }
    }
    if version >= 2 && b.remaining() >= 4 {
        sub.generation = b.get_i32(); // v2's generation field (KIP-792)
    }
    Some(sub)
}

type Assignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// The round-robin assignor (Java's `RoundRobinAssignor`): every topic-partition in order of
/// (topic, partition), each to the next member (sorted by id) subscribed to its topic.
pub fn roundrobin_assign(
    members: &[(String, Vec<String>)],
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = members
        .iter()
        .map(|(m, _)| (m.clone(), BTreeMap::new()))
        .collect();
    let mut sorted: Vec<&(String, Vec<String>)> = members.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if sorted.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for (topic, &n) in partitions {
        for p in 0..n {
            // Advance to the next member subscribed to this topic (circularly).
            let Some(k) = (0..sorted.len())
                .map(|i| (next + i) % sorted.len())
                .find(|&i| sorted[i].1.contains(topic))
            else {
                continue;
            };
            out.get_mut(&sorted[k].0)
                .expect("member")
                .entry(topic.clone())
                .or_default()
                .push(p);
            next = k + 1;
        }
    }
    out
}

/// The cooperative-sticky assignor (KIP-429, protocol name "cooperative-sticky"): members keep
/// what they own up to a fair share, the rest is spread over the members with the fewest
/// partitions; a partition that changes owner is left out of this round's assignment (its old
/// owner revokes it and rejoins, and the next round hands it to its new owner). Balanced to
/// within one partition when all members subscribe to the same topics.
pub fn cooperative_sticky_assign(
    members: &[(String, Subscription)],
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut ids: Vec<&String> = members.iter().map(|(m, _)| m).collect();
    ids.sort();
    let subs: BTreeMap<&String, &Subscription> = members.iter().map(|(m, s)| (m, s)).collect();
    let all: Vec<(String, i32)> = partitions
        .iter()
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .filter(|(t, _)| subs.values().any(|s| s.topics.contains(t)))
        .collect();
    let total = all.len();
    let m = ids.len().max(1);
    let (floor, extra) = (total / m, total % m);
    // Previous owners: the claim from the newest generation wins when two members claim one.
    let mut owner: BTreeMap<(String, i32), (&String, i32)> = BTreeMap::new();
    for id in &ids {
        let s = subs[id];
        for (t, ps) in &s.owned {
            if !s.topics.contains(t) || partitions.get(t).is_none_or(|&n| n <= 0) {
                continue;
            }
            for &p in ps {
                if p >= partitions[t] {
                    continue;
                }
                let k = (t.clone(), p);
                if owner.get(&k).is_none_or(|(_, g)| s.generation > *g) {
                    owner.insert(k, (id, s.generation));
                }
            }
        }
    }
    let mut target: BTreeMap<&String, Vec<(String, i32)>> =
        ids.iter().map(|id| (*id, Vec::new())).collect();
    // Keep owned partitions up to the quota: `floor + 1` for the first `extra` members to reach
    // it, `floor` for the rest.
    let mut with_extra = 0usize;
    let mut unassigned = Vec::new();
    for k in &all {
        match owner.get(k) {
            Some((id, _)) => {
                let have = target[id].len();
                let quota = if with_extra < extra { floor + 1 } else { floor };
                if have < floor || (have == floor && have < quota) {
                    if have == floor {
                        with_extra += 1;
                    }
                    target.get_mut(id).expect("member").push(k.clone());
                } else {
                    unassigned.push(k.clone());
                }
            }
            None => unassigned.push(k.clone()),
        }
    }
    // Spread the rest: each to the subscribed member with the fewest partitions.
    for k in unassigned {
        let best = ids
            .iter()
            .filter(|id| subs[*id].topics.contains(&k.0))
            .min_by_key(|id| (target[*id].len(), **id));
        if let Some(id) = best {
            target.get_mut(*id).expect("member").push(k);
        }
    }
    // Cooperative: a partition moving to a new owner is not handed out until its old owner has
    // revoked it (next round).
    let mut out: Assignment = ids
        .iter()
        .map(|id| ((*id).clone(), BTreeMap::new()))
        .collect();
    for (id, ks) in target {
        for (t, p) in ks {
            let moving = owner
                .get(&(t.clone(), p))
                .is_some_and(|(prev, _)| *prev != id);
            if !moving {
                out.get_mut(id)
                    .expect("member")
                    .entry(t)
                    .or_default()
                    .push(p);
            }
        }
    }
    for a in out.values_mut() {
        for ps in a.values_mut() {
            ps.sort();
        }
    }
    out
}

/// The range assignor (Java's `RangeAssignor`): per topic, members subscribed to it sorted by
/// id; each gets `n / m` consecutive partitions, the first `n % m` one more.
pub fn range_assign(
    members: &[(String, Vec<String>)],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = members
        .iter()
        .map(|(m, _)| (m.clone(), BTreeMap::new()))
        .collect();
    for (topic, &n) in partitions {
        let mut subs: Vec<&String> = members
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        subs.sort();
        if subs.is_empty() {
            continue;
        }
        let per = n / subs.len() as i32;
        let extra = n % subs.len() as i32;
        let mut next = 0;
        for (i, m) in subs.iter().enumerate() {
            let count = per + i32::from((i as i32) < extra);
            if count > 0 {
                out.get_mut(*m)
                    .expect("member")
                    .insert(topic.clone(), (next..next + count).collect());
            }
            next += count;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_like_java() {
        let members = vec![
            ("b".to_string(), vec!["t".to_string()]),
            ("a".to_string(), vec!["t".to_string()]),
        ];
        let parts = BTreeMap::from([("t".to_string(), 5)]);
        let a = range_assign(&members, &parts);
        assert_eq!(a["a"]["t"], vec![0, 1, 2]);
        assert_eq!(a["b"]["t"], vec![3, 4]);
    }

    fn sub(topics: &[&str], owned: &[(&str, &[i32])], generation: i32) -> Subscription {
        Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned
                .iter()
                .map(|(t, ps)| (t.to_string(), ps.to_vec()))
                .collect(),
            generation,
        }
    }

    #[test]
    fn roundrobin_like_java() {
        let members = vec![
            ("c1".to_string(), vec!["t0".to_string(), "t1".to_string()]),
            ("c0".to_string(), vec!["t0".to_string(), "t1".to_string()]),
        ];
        let parts = BTreeMap::from([("t0".to_string(), 3), ("t1".to_string(), 3)]);
        let a = roundrobin_assign(&members, &parts);
        // Java's RoundRobinAssignor doc example: C0 [t0p0, t0p2, t1p1], C1 [t0p1, t1p0, t1p2].
        assert_eq!(a["c0"]["t0"], vec![0, 2]);
        assert_eq!(a["c0"]["t1"], vec![1]);
        assert_eq!(a["c1"]["t0"], vec![1]);
        assert_eq!(a["c1"]["t1"], vec![0, 2]);
    }

    #[test]
    fn cooperative_sticky_keeps_owners_and_defers_moves() {
        let parts = BTreeMap::from([("t".to_string(), 6)]);
        // a owns everything; b joins: a keeps 3, and the 3 that move to b are withheld this
        // round (a revokes them first).
        let members = vec![
            (
                "a".to_string(),
                sub(&["t"], &[("t", &[0, 1, 2, 3, 4, 5])], 1),
            ),
            ("b".to_string(), sub(&["t"], &[], -1)),
        ];
        let r1 = cooperative_sticky_assign(&members, &parts);
        assert_eq!(r1["a"]["t"], vec![0, 1, 2]);
        assert!(r1["b"].is_empty(), "{r1:?}");
        // Next round: a owns 0..3, b nothing: b gets 3..6, a keeps its three.
        let members = vec![
            ("a".to_string(), sub(&["t"], &[("t", &[0, 1, 2])], 2)),
            ("b".to_string(), sub(&["t"], &[], 2)),
        ];
        let r2 = cooperative_sticky_assign(&members, &parts);
        assert_eq!(r2["a"]["t"], vec![0, 1, 2]);
        assert_eq!(r2["b"]["t"], vec![3, 4, 5]);
        // A member leaves: the survivor keeps its partitions and gets the rest at once.
        let members = vec![("b".to_string(), sub(&["t"], &[("t", &[3, 4, 5])], 3))];
        let r3 = cooperative_sticky_assign(&members, &parts);
        assert_eq!(r3["b"]["t"], vec![0, 1, 2, 3, 4, 5]);
        // Balanced within one with an odd count.
        let parts7 = BTreeMap::from([("t".to_string(), 7)]);
        let members = vec![
            ("a".to_string(), sub(&["t"], &[], -1)),
            ("b".to_string(), sub(&["t"], &[], -1)),
            ("c".to_string(), sub(&["t"], &[], -1)),
        ];
        let r4 = cooperative_sticky_assign(&members, &parts7);
        let mut sizes: Vec<usize> = r4
            .values()
            .map(|a| a.get("t").map_or(0, Vec::len))
            .collect();
        sizes.sort();
        assert_eq!(sizes, vec![2, 2, 3]);
    }

    #[test]
    fn subscription_v1_roundtrips() {
        let owned = BTreeMap::from([("t".to_string(), vec![1, 3])]);
        let b = encode_subscription_v1(&["t".into()], &owned, 7);
        let s = decode_subscription_full(b.clone()).unwrap();
        assert_eq!(s.topics, vec!["t"]);
        assert_eq!(s.owned, owned);
        assert_eq!(s.generation, 7);
        assert_eq!(decode_subscription(b).unwrap(), vec!["t"]);
        let v0 = decode_subscription_full(encode_subscription(&["x".into()])).unwrap();
        assert!(v0.owned.is_empty());
    }

    #[test]
    fn roundtrips() {
        let s = encode_subscription(&["x".into(), "y".into()]);
        assert_eq!(decode_subscription(s).unwrap(), vec!["x", "y"]);
        let a = BTreeMap::from([("x".to_string(), vec![0, 2])]);
        assert_eq!(decode_assignment(encode_assignment(&a)).unwrap(), a);
        assert!(decode_assignment(Bytes::new()).unwrap().is_empty());
    }
}
