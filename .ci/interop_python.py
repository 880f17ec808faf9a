"""Independent Python clients against the embedded cluster.

kafka-python (pure Python, its own protocol code) and confluent-kafka (librdkafka 2.x):
create a topic, produce 100 keyed messages with acks=all and idempotence, consume them back in a consumer group,
and check that none is missing or duplicated. Usage: interop_python.py BOOTSTRAP
"""
import sys
import time

BOOTSTRAP = sys.argv[1]
N = 100
failures = []


def check(name, sent, received):
    missing = set(sent) - set(received)
    dupes = len(received) - len(set(received))
    if missing or dupes:
        failures.append(f"{name}: {len(missing)} missing, {dupes} duplicates")
        print(f"FAIL {name}: missing={sorted(missing)[:5]} dupes={dupes}")
    else:
        print(f"ok   {name}: {len(received)} messages")


def kafka_python():
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10000)
    admin.create_topics([NewTopic("py-topic", num_partitions=3, replication_factor=3)])
    topics = admin.list_topics()
    assert "py-topic" in topics, topics
    admin.close()

    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5, enable_idempotence=True)
    sent = []
    for i in range(N):
        v = f"kafka-python {i}"
        producer.send("py-topic", key=f"k{i}".encode(), value=v.encode())
        sent.append(v)
    producer.flush(timeout=30)
    producer.close()

    consumer = KafkaConsumer(
        "py-topic",
        bootstrap_servers=BOOTSTRAP,
        group_id="py-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
    )
    received = []
    deadline = time.time() + 40
    for msg in consumer:
        received.append(msg.value.decode())
        if len(received) >= N or time.time() > deadline:
            break
    consumer.commit()
    consumer.close()
    check("kafka-python produce+group consume", sent, received)


def kafka_python_admin():
    """Admin APIs through kafka-python's admin client, after kafka_python() left a group."""
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10000)
    groups = [g["group_id"] for g in admin.list_groups()]
    assert "py-group" in groups, groups
    desc = admin.describe_groups(["py-group"])["py-group"]
    assert desc["group_state"] == "Empty" and desc["error"] is None, desc
    offsets = admin.list_group_offsets({"py-group": None})["py-group"]
    assert sum(o.offset for o in offsets.values()) == N, offsets

    admin.create_topics([NewTopic("py-admin", num_partitions=2, replication_factor=3)])
    admin.create_partitions({"py-admin": NewPartitions(total_count=4)})
    (meta,) = admin.describe_topics(["py-admin"])
    assert len(meta["partitions"]) == 4, meta
    assert all(len(p["isr_nodes"]) == 3 for p in meta["partitions"]), meta
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "py-admin")], config_filter="all")
    assert "min.insync.replicas" in str(configs), configs
    cluster = admin.describe_cluster()
    assert len(cluster["brokers"]) == 3, cluster

    deleted = admin.delete_records({TopicPartition("py-topic", 0): 1})
    assert deleted[TopicPartition("py-topic", 0)]["low_watermark"] == 1, deleted
    assert admin.delete_groups(["py-group"]) == {"py-group": "OK"}
    assert "py-group" not in [g["group_id"] for g in admin.list_groups()]
    admin.delete_topics(["py-admin"])
    assert "py-admin" not in admin.list_topics()
    admin.close()
    print("ok   kafka-python admin: groups, offsets, partitions, configs, cluster, delete records/groups/topics")


def kafka_python_old_protocols():
    """kafka-python pinned to old brokers: no ApiVersions, Produce v1/v2 with message sets v0/v1
    (gzip-compressed for 0.10), Fetch v1-v3 (down-converted), ListOffsets v0."""
    from kafka import KafkaConsumer, KafkaProducer

    for ver in [(0, 9), (0, 10, 0), (0, 10, 1)]:
        topic = "old-" + "-".join(map(str, ver))
        producer = KafkaProducer(
            bootstrap_servers=BOOTSTRAP, api_version=ver, acks="all",
            compression_type=None if ver == (0, 9) else "gzip",
        )
        sent = [f"{topic} {i}" for i in range(N)]
        for i, v in enumerate(sent):
            producer.send(topic, key=f"k{i}".encode(), value=v.encode())
        producer.flush(timeout=30)
        producer.close()
        consumer = KafkaConsumer(
            topic, bootstrap_servers=BOOTSTRAP, api_version=ver, group_id="g-" + topic,
            auto_offset_reset="earliest", consumer_timeout_ms=10000,
        )
        received = []
        for msg in consumer:
            received.append(msg.value.decode())
            if len(received) >= N:
                break
        consumer.close()
        check(f"kafka-python api_version={ver}", sent, received)


def confluent():
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    sent = []
    errors = []
    for i in range(N):
        v = f"confluent {i}"
        producer.produce("cf-topic", key=f"k{i}", value=v, on_delivery=lambda err, msg: err and errors.append(err))
        sent.append(v)
    producer.flush(30)
    if errors:
        failures.append(f"confluent produce errors: {errors[:3]}")
    consumer = Consumer({
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "cf-group",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe(["cf-topic"])
    received = []
    deadline = time.time() + 40
    while len(received) < N and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            print("consumer error:", msg.error())
            continue
        received.append(msg.value().decode())
    consumer.commit(asynchronous=False)
    consumer.close()
    check("confluent-kafka produce+group consume", sent, received)


TESTS = (kafka_python, kafka_python_admin, kafka_python_old_protocols, confluent)
failed = 0
for f in TESTS:
    before = len(failures)
    try:
        f()
    except Exception as e:  # report and go on to the next client
        failures.append(f"{f.__name__}: {e!r}")
        print(f"FAIL {f.__name__}: {e!r}")
    failed += len(failures) > before

print(f"python interop: {len(TESTS) - failed} passed, {failed} failed")
sys.exit(1 if failures else 0)
