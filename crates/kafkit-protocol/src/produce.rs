//! Produce requests encoded as a list of segments that share the record batches instead of
//! copying them.
//!
//! Written by hand because `kafka-protocol` encodes a request into one contiguous buffer: for a
//! Produce request that means copying every record batch (the bulk of the request) once more
//! before the socket write. Here the header and the small fields between batches are encoded
//! into small buffers and each batch is referenced as it is (`Bytes` clones), so the connection
//! hands the kernel the pieces with one vectored write. The unit tests check the bytes are
//! exactly what `kafka-protocol` produces for every version this encoder takes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::ProtocolError;

/// Produce API key.
const PRODUCE: i16 = 0;

/// One partition's data in a Produce request.
#[derive(Debug, Clone)]
pub struct ProducePartition {
    /// Partition index.
    pub index: i32,
    /// The encoded record batch(es).
    pub records: Bytes,
}

/// Lowest and highest Produce version [`encode_produce_request`] writes.
pub const VERSIONS: (i16, i16) = (3, 11);

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_string(b: &mut BytesMut, s: &str, flexible: bool) {
    if flexible {
        put_uvarint(b, s.len() as u64 + 1);
    } else {
        b.put_i16(s.len() as i16);
    }
    b.put_slice(s.as_bytes());
}

fn put_array_len(b: &mut BytesMut, n: usize, flexible: bool) {
    if flexible {
        put_uvarint(b, n as u64 + 1);
    } else {
        b.put_i32(n as i32);
    }
}

/// Encodes one framed Produce request (size prefix, header, body) for one topic, without a
/// transactional id. Returns the frame as segments to be written in order.
#[allow(clippy::too_many_arguments)]
pub fn encode_produce_request(
    correlation_id: i32,
    client_id: Option<&str>,
    version: i16,
    acks: i16,
    timeout_ms: i32,
    topic: &str,
    partitions: &[ProducePartition],
) -> Result<Vec<Bytes>, ProtocolError> {
    if !(VERSIONS.0..=VERSIONS.1).contains(&version) {
        return Err(ProtocolError::UnsupportedVersion {
            api_key: PRODUCE,
            version,
        });
    }
    let flexible = version >= 9;
    let mut head = BytesMut::with_capacity(64 + topic.len() + client_id.map_or(0, str::len));
    head.put_i32(0); // size, filled in at the end
                     // Request header v1 (v2 when flexible: the same plus tagged fields; the client id stays a
                     // non-compact nullable string in both).
    head.put_i16(PRODUCE);
    head.put_i16(version);
    head.put_i32(correlation_id);
    match client_id {
        Some(c) => {
            head.put_i16(c.len() as i16);
            head.put_slice(c.as_bytes());
        }
        None => head.put_i16(-1),
    }
    if flexible {
        put_uvarint(&mut head, 0);
    }
    // Body: transactional_id (null), acks, timeout, one topic.
    if flexible {
        put_uvarint(&mut head, 0);
    } else {
        head.put_i16(-1);
    }
    head.put_i16(acks);
    head.put_i32(timeout_ms);
    put_array_len(&mut head, 1, flexible);
    put_string(&mut head, topic, flexible);
    put_array_len(&mut head, partitions.len(), flexible);
    let mut segments: Vec<Bytes> = Vec::with_capacity(2 * partitions.len() + 2);
    let mut cur = head;
    let mut first = true;
    let mut total = 0usize;
    for p in partitions {
        if !first {
            cur.reserve(16);
        }
        cur.put_i32(p.index);
        if flexible {
            put_uvarint(&mut cur, p.records.len() as u64 + 1);
        } else {
            cur.put_i32(p.records.len() as i32);
        }
        let small = std::mem::replace(&mut cur, BytesMut::with_capacity(16));
        total += small.len();
        segments.push(small.freeze());
        total += p.records.len();
        segments.push(p.records.clone());
        if flexible {
            put_uvarint(&mut cur, 0); // partition's tagged fields
        }
        first = false;
    }
    if flexible {
        put_uvarint(&mut cur, 0); // topic's tagged fields
        put_uvarint(&mut cur, 0); // request's tagged fields
    }
    if !cur.is_empty() {
        total += cur.len();
        segments.push(cur.freeze());
    }
    // The size prefix counts everything after itself.
    let size = (total - 4) as i32;
    let mut head = BytesMut::from(&segments[0][..]);
    head[..4].copy_from_slice(&size.to_be_bytes());
    segments[0] = head.freeze();
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_request;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::ProduceRequest;
    use kafka_protocol::protocol::Message;

    fn reference(version: i16, client: Option<&str>, parts: &[ProducePartition]) -> Vec<u8> {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(crate::topic_name("events"))
                .with_partition_data(
                    parts
                        .iter()
                        .map(|p| {
                            PartitionProduceData::default()
                                .with_index(p.index)
                                .with_records(Some(p.records.clone()))
                        })
                        .collect(),
                )]);
        let mut out = BytesMut::new();
        encode_request(&mut out, 77, client, version, &req).expect("reference encodes");
        out.to_vec()
    }

    #[test]
    fn segments_are_byte_for_byte_what_kafka_protocol_encodes() {
        let big = Bytes::from(vec![7u8; 300]); // a length that needs two varint bytes
        let parts = vec![
            ProducePartition {
                index: 0,
                records: Bytes::from_static(b"first batch"),
            },
            ProducePartition {
                index: 5,
                records: big,
            },
        ];
        for version in VERSIONS.0..=VERSIONS.1.min(ProduceRequest::VERSIONS.max) {
            for client in [Some("kafkit"), None] {
                let segs =
                    encode_produce_request(77, client, version, -1, 30_000, "events", &parts)
                        .expect("encodes");
                let ours: Vec<u8> = segs.iter().flat_map(|s| s.iter().copied()).collect();
                assert_eq!(
                    ours,
                    reference(version, client, &parts),
                    "Produce v{version}, client id {client:?}"
                );
                // The batches are shared, not copied.
                assert!(segs.iter().any(|s| s.as_ptr() == parts[1].records.as_ptr()));
            }
        }
    }

    #[test]
    fn versions_outside_the_range_are_refused() {
        assert!(encode_produce_request(1, None, 2, 1, 0, "t", &[]).is_err());
        assert!(encode_produce_request(1, None, 12, 1, 0, "t", &[]).is_err());
    }
}
