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

    #[test]
    fn roundtrips() {
        let s = encode_subscription(&["x".into(), "y".into()]);
        assert_eq!(decode_subscription(s).unwrap(), vec!["x", "y"]);
        let a = BTreeMap::from([("x".to_string(), vec![0, 2])]);
        assert_eq!(decode_assignment(encode_assignment(&a)).unwrap(), a);
        assert!(decode_assignment(Bytes::new()).unwrap().is_empty());
    }
}
