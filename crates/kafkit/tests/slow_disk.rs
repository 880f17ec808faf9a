//! The broker's concurrency rule (issue 15): no disk work on the runtime's threads and no lock
//! held across it that others need. One slow disk path (every append to the `slow` topic's
//! partitions, and the committed-offsets file's fsync, take 1.5 s) while Produce and Fetch on
//! another topic, a group's Heartbeat and Metadata of the slow topic keep answering quickly; then the same for the admin
//! side (topic creation, auto-creation, producer ids, group deletion) with Metadata too.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kafkit::conn::Connection;
use kafkit_broker::storage::{Fault, FaultRule, FaultyStorage, Op};
use kafkit_broker::Cluster;
use kafkit_protocol::batch::{encode_records, new_record};
use kafkit_protocol::messages::create_topics_request::CreatableTopic;
use kafkit_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafkit_protocol::messages::metadata_request::MetadataRequestTopic;
use kafkit_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafkit_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafkit_protocol::messages::{
    CreateTopicsRequest, DeleteGroupsRequest, FetchRequest, HeartbeatRequest,
    InitProducerIdRequest, JoinGroupRequest, MetadataRequest, OffsetCommitRequest, ProduceRequest,
    SyncGroupRequest,
};
use kafkit_protocol::records::Compression;
use kafkit_protocol::{str_bytes, topic_name};

const SLOW: Duration = Duration::from_millis(1500);
/// "Quickly": far below SLOW, with room for a loaded 2-core machine in a debug build.
const QUICK: Duration = Duration::from_millis(400);

fn records(tag: &str) -> Bytes {
    let recs: Vec<_> = (0..10)
        .map(|i| {
            new_record(
                i,
                1_700_000_000_000,
                None,
                Some(Bytes::from(format!("{tag}-{i}"))),
            )
        })
        .collect();
    encode_records(&recs, Compression::None).unwrap()
}

fn produce(topic: &str, partition: i32, data: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(data))])])
}

/// A one-member group on `conn` (the coordinator): (member id, generation).
async fn join(conn: &Connection, group: &str) -> (String, i32) {
    let mut member = String::new();
    loop {
        let req = JoinGroupRequest::default()
            .with_group_id(str_bytes(group).into())
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_member_id(str_bytes(&member))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![
                kafkit_protocol::messages::join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(str_bytes("range"))
                    .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0])),
            ]);
        let (_, resp) = conn.send(&req).await.unwrap();
        match resp.error_code {
            0 => {
                let (id, generation) = (resp.member_id.to_string(), resp.generation_id);
                let (_, sync) = conn
                    .send(
                        &SyncGroupRequest::default()
                            .with_group_id(str_bytes(group).into())
                            .with_generation_id(generation)
                            .with_member_id(str_bytes(&id)),
                    )
                    .await
                    .unwrap();
                assert_eq!(sync.error_code, 0);
                return (id, generation);
            }
            79 => member = resp.member_id.to_string(), // MEMBER_ID_REQUIRED
            code => panic!("JoinGroup: {code}"),
        }
    }
}

/// Produce and Fetch on the `fast` topic and g2's Heartbeat, each checked and timed:
/// (produce, fetch, heartbeat).
async fn serve_meanwhile(
    fast: &Connection,
    g2: &Connection,
    member: &str,
    generation: i32,
) -> (Duration, Duration, Duration) {
    let t = Instant::now();
    let (_, r) = fast
        .send(&produce("fast", 0, records("during")))
        .await
        .unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let produced = t.elapsed();
    let t = Instant::now();
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name("fast"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let (_, r) = fast.send(&fetch).await.unwrap();
    assert!(r.responses[0].partitions[0]
        .records
        .as_ref()
        .is_some_and(|d| !d.is_empty()));
    let fetched = t.elapsed();
    let t = Instant::now();
    let (_, hb) = g2
        .send(
            &HeartbeatRequest::default()
                .with_group_id(str_bytes("g2").into())
                .with_generation_id(generation)
                .with_member_id(str_bytes(member)),
        )
        .await
        .unwrap();
    assert_eq!(hb.error_code, 0);
    let heartbeat = t.elapsed();
    (produced, fetched, heartbeat)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_delays_only_the_requests_that_need_it() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyStorage::new();
    let c = Cluster::builder()
        .brokers(1)
        .data_dir(dir.path())
        .storage(disk.clone())
        .start()
        .await
        .unwrap();
    c.create_topic_with("slow", 4, 1).unwrap();
    c.create_topic_with("fast", 1, 1).unwrap();
    let addr = c.addrs()[0].clone();
    let connect = || Connection::connect(&addr, conn_config());
    // Group g2 is formed before the disk turns slow; its member will heartbeat throughout.
    let g2 = connect().await.unwrap();
    let (member, generation) = join(&g2, "g2").await;
    let fast = connect().await.unwrap();
    let (_, r) = fast
        .send(&produce("fast", 0, records("warm")))
        .await
        .unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);

    disk.inject(FaultRule::always(Op::Append, Fault::Delay(SLOW)).on("slow-"));
    disk.inject(FaultRule::always(Op::Sync, Fault::Delay(SLOW)).on("offsets.log"));
    // Five slow requests at once, more than the runtime's two worker threads: four appends
    // to the slow topic and an offset commit of another group.
    let mut slow = tokio::task::JoinSet::new();
    for p in 0..4 {
        let conn = connect().await.unwrap();
        slow.spawn(async move {
            let t = Instant::now();
            let (_, r) = conn
                .send(&produce("slow", p, records("slow")))
                .await
                .unwrap();
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
            t.elapsed()
        });
    }
    let committer = connect().await.unwrap();
    let (m1, gen1) = join(&committer, "g1").await;
    slow.spawn(async move {
        let t = Instant::now();
        let req = OffsetCommitRequest::default()
            .with_group_id(str_bytes("g1").into())
            .with_generation_id_or_member_epoch(gen1)
            .with_member_id(str_bytes(&m1))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name("fast"))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])]);
        let (_, r) = committer.send(&req).await.unwrap();
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        t.elapsed()
    });
    // From here the measuring task itself may be starved if a runtime thread is stuck on the
    // disk: so the whole stretch is timed from now, not only each request.
    let launched = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await; // all five are on the disk now

    // Meanwhile: Produce and Fetch on the fast topic, and g2's heartbeat, answer quickly.
    let (produced, fetched, heartbeat) = serve_meanwhile(&fast, &g2, &member, generation).await;
    // Metadata of the slow topic itself: its partitions' locks are held across the slow
    // appends, but leadership is read from their views.
    let t = Instant::now();
    let (_, r) = fast.send(&metadata(&["slow"], false)).await.unwrap();
    assert_eq!(r.topics[0].partitions.len(), 4);
    assert!(r.topics[0].partitions.iter().all(|p| p.leader_id.0 == 1));
    let meta = t.elapsed();
    let stretch = launched.elapsed();
    assert!(
        produced < QUICK
            && fetched < QUICK
            && heartbeat < QUICK
            && meta < QUICK
            && stretch < QUICK * 2,
        "while the slow disk works: produce {produced:?}, fetch {fetched:?}, heartbeat \
         {heartbeat:?}, metadata of the slow topic {meta:?}, 200 ms sleep and all four \
         {stretch:?}"
    );
    // The slow requests were slow (the fault applied) and succeeded.
    while let Some(took) = slow.join_next().await {
        assert!(took.unwrap() >= SLOW, "the injected delay applied");
    }
    disk.clear();
    c.shutdown().await;
}

fn metadata(topics: &[&str], auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_allow_auto_topic_creation(auto_create)
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect(),
        ))
}

/// Admin requests that write small files and fsync (the topic list, producer ids, the offsets
/// log's tombstones) run on blocking threads and hold no lock that serving needs: while four of
/// them wait for a slow disk, Metadata, Produce, Fetch and Heartbeat answer quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_admin_disk_work_delays_only_itself() {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyStorage::new();
    let c = Cluster::builder()
        .brokers(1)
        .data_dir(dir.path())
        .storage(disk.clone())
        .start()
        .await
        .unwrap();
    c.create_topic_with("fast", 1, 1).unwrap();
    let addr = c.addrs()[0].clone();
    let connect = || Connection::connect(&addr, conn_config());
    let g2 = connect().await.unwrap();
    let (member, generation) = join(&g2, "g2").await;
    // Group g1 has a committed offset and no members: DeleteGroups may delete it.
    let admin = connect().await.unwrap();
    let (_, r) = admin
        .send(
            &OffsetCommitRequest::default()
                .with_group_id(str_bytes("g1").into())
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(topic_name("fast"))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1)])]),
        )
        .await
        .unwrap();
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let fast = connect().await.unwrap();
    let (_, r) = fast
        .send(&produce("fast", 0, records("warm")))
        .await
        .unwrap();
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);

    // The topic list, the producer-id file and the offsets log are slow to write.
    disk.inject(FaultRule::always(Op::WriteAtomic, Fault::Delay(SLOW)).on("topics"));
    disk.inject(FaultRule::always(Op::WriteAtomic, Fault::Delay(SLOW)).on("producer_ids"));
    disk.inject(FaultRule::always(Op::Sync, Fault::Delay(SLOW)).on("offsets.log"));
    let mut slow = tokio::task::JoinSet::new();
    let conn = connect().await.unwrap();
    slow.spawn(async move {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name("made"))
                .with_num_partitions(2)
                .with_replication_factor(1)]);
        let (_, r) = conn.send(&req).await.unwrap();
        ("CreateTopics", r.topics[0].error_code)
    });
    let conn = connect().await.unwrap();
    slow.spawn(async move {
        let (_, r) = conn.send(&metadata(&["auto"], true)).await.unwrap();
        ("Metadata auto-creating", r.topics[0].error_code)
    });
    let conn = connect().await.unwrap();
    slow.spawn(async move {
        let req = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
        let (_, r) = conn.send(&req).await.unwrap();
        ("InitProducerId", r.error_code)
    });
    slow.spawn(async move {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![str_bytes("g1").into()]);
        let (_, r) = admin.send(&req).await.unwrap();
        ("DeleteGroups", r.results[0].error_code)
    });
    let launched = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let t = Instant::now();
    let (_, r) = fast.send(&metadata(&["fast"], false)).await.unwrap();
    assert_eq!(r.topics[0].error_code, 0);
    let meta = t.elapsed();
    let (produced, fetched, heartbeat) = serve_meanwhile(&fast, &g2, &member, generation).await;
    let stretch = launched.elapsed();
    assert!(
        meta < QUICK
            && produced < QUICK
            && fetched < QUICK
            && heartbeat < QUICK
            && stretch < QUICK * 2,
        "while admin requests wait for the disk: metadata {meta:?}, produce {produced:?}, \
         fetch {fetched:?}, heartbeat {heartbeat:?}, 200 ms sleep and all four {stretch:?}"
    );
    // The slow ones were slow and succeeded.
    while let Some(r) = slow.join_next().await {
        let (what, code) = r.unwrap();
        assert_eq!(code, 0, "{what}");
    }
    assert!(launched.elapsed() >= SLOW, "the injected delays applied");
    assert!(c.partitions("made").is_some() && c.partitions("auto").is_some());
    disk.clear();
    c.shutdown().await;
}
