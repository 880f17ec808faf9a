//! Writes seed corpora for the fuzz targets: requests and responses encoded by kafka-protocol at
//! every version of the APIs the broker serves most (as clients send them), record batches in
//! every codec, legacy message sets. `cargo run --example gen_seeds -- corpus`
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use kafkit_protocol::batch::{encode_records, new_record};
use kafkit_protocol::legacy::{encode_message_set, LegacyRecord};
use kafkit_protocol::messages::*;
use kafkit_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message};
use kafkit_protocol::records::Compression;
use kafkit_protocol::topic_name;

fn put(dir: &Path, name: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn request<R: Encodable + Message + HeaderVersion>(dir: &Path, key: ApiKey, req: &R) {
    for v in R::VERSIONS.min..=R::VERSIONS.max {
        let mut b = BytesMut::new();
        b.put_i16(key as i16);
        b.put_i16(v);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(v)
            .with_correlation_id(7)
            .with_client_id(Some(kafkit_protocol::str_bytes("rdkafka")));
        if header.encode(&mut b, key.request_header_version(v)).is_err() {
            continue;
        }
        if req.encode(&mut b, v).is_ok() {
            put(dir, &format!("{key:?}-v{v}"), &b);
        }
    }
}

fn response<R: Encodable + Message>(dir: &Path, key: ApiKey, resp: &R) {
    for v in R::VERSIONS.min..=R::VERSIONS.max {
        let mut b = BytesMut::new();
        b.put_i16(key as i16);
        b.put_i16(v);
        let header = ResponseHeader::default().with_correlation_id(7);
        if header.encode(&mut b, key.response_header_version(v)).is_err() {
            continue;
        }
        if resp.encode(&mut b, v).is_ok() {
            put(dir, &format!("{key:?}-v{v}"), &b);
        }
    }
}

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let out = Path::new(&out);
    let records: Vec<_> = (0..5)
        .map(|i| new_record(i, 1_700_000_000_000 + i, Some(Bytes::from(format!("k{i}"))), Some(Bytes::from(format!("value {i}")))))
        .collect();
    let batch = encode_records(&records, Compression::None).unwrap();

    let rq = out.join("request_decoding");
    let t = || topic_name("orders");
    request(&rq, ApiKey::Metadata, &MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(t())),
    ])));
    request(&rq, ApiKey::Produce, &ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![
        produce_request::TopicProduceData::default().with_name(t()).with_partition_data(vec![
            produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch.clone())),
        ]),
    ]));
    request(&rq, ApiKey::Fetch, &FetchRequest::default().with_max_wait_ms(500).with_min_bytes(1).with_max_bytes(1 << 20).with_topics(vec![
        fetch_request::FetchTopic::default().with_topic(t()).with_partitions(vec![
            fetch_request::FetchPartition::default().with_partition(0).with_fetch_offset(5).with_partition_max_bytes(1 << 20),
        ]),
    ]));
    request(&rq, ApiKey::ListOffsets, &ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default().with_name(t()).with_partitions(vec![
            list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
        ]),
    ]));
    request(&rq, ApiKey::ApiVersions, &ApiVersionsRequest::default());
    request(&rq, ApiKey::FindCoordinator, &FindCoordinatorRequest::default().with_key(kafkit_protocol::str_bytes("group")));
    request(&rq, ApiKey::JoinGroup, &JoinGroupRequest::default().with_group_id(GroupId(kafkit_protocol::str_bytes("g"))).with_session_timeout_ms(6000).with_protocol_type(kafkit_protocol::str_bytes("consumer")).with_protocols(vec![
        join_group_request::JoinGroupRequestProtocol::default().with_name(kafkit_protocol::str_bytes("range")).with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 6, b'o', b'r', b'd', b'e', b'r', b's', 0, 0, 0, 0])),
    ]));
    request(&rq, ApiKey::SyncGroup, &SyncGroupRequest::default().with_group_id(GroupId(kafkit_protocol::str_bytes("g"))));
    request(&rq, ApiKey::OffsetCommit, &OffsetCommitRequest::default().with_group_id(GroupId(kafkit_protocol::str_bytes("g"))).with_topics(vec![
        offset_commit_request::OffsetCommitRequestTopic::default().with_name(t()).with_partitions(vec![
            offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(5),
        ]),
    ]));
    request(&rq, ApiKey::OffsetFetch, &OffsetFetchRequest::default().with_group_id(GroupId(kafkit_protocol::str_bytes("g"))));
    request(&rq, ApiKey::CreateTopics, &CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default().with_name(t()).with_num_partitions(3).with_replication_factor(1),
    ]));
    request(&rq, ApiKey::Heartbeat, &HeartbeatRequest::default());
    request(&rq, ApiKey::DescribeGroups, &DescribeGroupsRequest::default().with_groups(vec![GroupId(kafkit_protocol::str_bytes("g"))]));
    // A legacy Produce v2 body (after the header), as kafka-python 0.10 sends it.
    let set = encode_message_set(
        &[LegacyRecord {
            offset: 0,
            timestamp: 1,
            key: None,
            value: Some(Bytes::from_static(b"v")),
        }],
        1,
    );
    let body = kafkit_protocol::legacy::encode_produce_request(&kafkit_protocol::legacy::ProduceRequest {
        acks: 1,
        timeout_ms: 1000,
        topics: vec![("orders".into(), vec![(0, set)])],
    });
    let mut legacy = BytesMut::new();
    legacy.put_i16(0);
    legacy.put_i16(2);
    legacy.put_slice(&body);
    put(&rq, "legacy-produce-v2", &legacy);

    let rs = out.join("response_decoding");
    response(&rs, ApiKey::Metadata, &MetadataResponse::default().with_brokers(vec![
        metadata_response::MetadataResponseBroker::default().with_node_id(BrokerId(1)).with_host(kafkit_protocol::str_bytes("127.0.0.1")).with_port(9093),
    ]).with_topics(vec![
        metadata_response::MetadataResponseTopic::default().with_name(Some(t())).with_partitions(vec![
            metadata_response::MetadataResponsePartition::default().with_leader_id(BrokerId(1)).with_replica_nodes(vec![BrokerId(1)]).with_isr_nodes(vec![BrokerId(1)]),
        ]),
    ]));
    response(&rs, ApiKey::Fetch, &FetchResponse::default().with_responses(vec![
        fetch_response::FetchableTopicResponse::default().with_topic(t()).with_partitions(vec![
            fetch_response::PartitionData::default().with_high_watermark(5).with_records(Some(batch.clone())),
        ]),
    ]));
    response(&rs, ApiKey::Produce, &ProduceResponse::default().with_responses(vec![
        produce_response::TopicProduceResponse::default().with_name(t()).with_partition_responses(vec![
            produce_response::PartitionProduceResponse::default().with_base_offset(5),
        ]),
    ]));
    response(&rs, ApiKey::ApiVersions, &ApiVersionsResponse::default().with_api_keys(vec![
        api_versions_response::ApiVersion::default().with_api_key(0).with_min_version(3).with_max_version(11),
    ]));
    response(&rs, ApiKey::JoinGroup, &JoinGroupResponse::default().with_members(vec![
        join_group_response::JoinGroupResponseMember::default().with_member_id(kafkit_protocol::str_bytes("m")).with_metadata(Bytes::from_static(&[0, 1])),
    ]));

    let rb = out.join("record_batch");
    for (name, c) in [("none", Compression::None), ("gzip", Compression::Gzip), ("snappy", Compression::Snappy), ("lz4", Compression::Lz4), ("zstd", Compression::Zstd)] {
        put(&rb, name, &encode_records(&records, c).unwrap());
    }

    // SASL: one seed per mode (first byte), from real exchanges.
    let sasl = out.join("sasl");
    let seed = |name: &str, mode: u8, body: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(body);
        put(&sasl, name, &v);
    };
    seed("plain", 0, &kafkit_protocol::sasl::plain_message("alice", "secret"));
    let jws = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0.";
    seed("oauth", 1, &kafkit_protocol::sasl::oauth_client_message(jws, &[("k".into(), "v".into())]));
    seed("scram-server", 2, b"n,,n=user,r=cnonce\0c=biws,r=cnoncesnonce,p=AAAA");
    seed("scram-client", 3, b"r=cnonceXYZ,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096\0v=AAAA");
    seed("jws", 4, jws.as_bytes());
    seed("first", 5, b"n,,n=a=3Db,r=x");

    let ls = out.join("legacy_message_set");
    let legacy_recs: Vec<_> = (0..3)
        .map(|i| LegacyRecord { offset: i, timestamp: 1_600_000_000_000, key: Some(Bytes::from(format!("k{i}"))), value: Some(Bytes::from(format!("v{i}"))) })
        .collect();
    put(&ls, "magic0", &encode_message_set(&legacy_recs, 0));
    put(&ls, "magic1", &encode_message_set(&legacy_recs, 1));
    // A magic-1 gzip wrapper, as kafka-python writes it.
    let inner = encode_message_set(&legacy_recs, 1);
    let mut wrapper = BytesMut::new();
    let outer = LegacyRecord {
        offset: 2,
        timestamp: 1_600_000_000_000,
        key: None,
        value: Some(Bytes::from(gzip(&inner))),
    };
    kafkit_protocol::legacy::put_message(&mut wrapper, &outer, 1, 1);
    put(&ls, "magic1-gzip", &wrapper);

    // Batches and message sets real clients sent (kcat, librdkafka, kafka-python; captured by
    // fuzz/capture/capture.sh into fuzz/seeds), cut out of their Produce requests.
    let captured = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/request_decoding");
    let mut n = 0;
    for entry in std::fs::read_dir(&captured).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("Produce-") {
            continue;
        }
        let data = std::fs::read(entry.path()).unwrap();
        let version = i16::from_be_bytes([data[2], data[3]]);
        let frame = Bytes::copy_from_slice(&data[4..]);
        if version >= 3 {
            let Ok((_, RequestKind::Produce(req))) = kafkit_protocol::codec::decode_request(frame, ApiKey::Produce, version) else {
                continue;
            };
            for (i, records) in req.topic_data.iter().flat_map(|t| &t.partition_data).filter_map(|p| p.records.as_ref()).enumerate() {
                put(&rb, &format!("captured-{name}-{i}"), records);
                n += 1;
            }
        } else {
            let mut rest = frame;
            if RequestHeader::decode(&mut rest, 1).is_err() {
                continue;
            }
            let Ok(req) = kafkit_protocol::legacy::decode_produce_request(rest) else {
                continue;
            };
            for (i, (_, set)) in req.topics.iter().flat_map(|(_, p)| p).enumerate() {
                put(&ls, &format!("captured-{name}-{i}"), set);
                n += 1;
            }
        }
    }
    eprintln!("gen_seeds: {n} record batches and message sets from captured Produce requests");
}

/// A gzip stream of `data`.
fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
