"""Traffic from independent clients for fuzz seeds (run by fuzz/capture/capture.sh).

Drives librdkafka (confluent-kafka) and kafka-python through the requests they make in real
use — every compression codec they have, headers, idempotence, consumer groups with each
assignor, admin calls — against a `kafkit cluster --capture DIR` whose bootstrap is argv[1].
What is captured is what matters; the checks here only make sure each step really ran.
"""
import sys
import time

import kafka
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

B = sys.argv[1]


def confluent():
    admin = AdminClient({"bootstrap.servers": B})
    fs = admin.create_topics([NewTopic("cap-admin", 2, 3)])
    for f in fs.values():
        f.result(30)
    for f in admin.create_partitions([NewPartitions("cap-admin", 4)]).values():
        f.result(30)
    for f in admin.describe_configs([ConfigResource("topic", "cap-admin")]).values():
        f.result(30)
    admin.list_topics(timeout=30)
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        for idempotent in [False, True]:
            p = Producer({"bootstrap.servers": B, "compression.type": codec,
                          "enable.idempotence": idempotent, "linger.ms": 5})
            for i in range(200):
                p.produce(f"cap-{codec}", key=f"k{i % 7}", value=f"value {i} " * (i % 5 + 1),
                          headers=[("h", b"v"), ("n", None)] if i % 3 == 0 else None)
            assert p.flush(30) == 0, codec
    for assignor in ["range", "roundrobin", "cooperative-sticky"]:
        c = Consumer({"bootstrap.servers": B, "group.id": f"cap-{assignor}",
                      "partition.assignment.strategy": assignor,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe(["cap-gzip", "cap-zstd"])
        got, deadline = 0, time.time() + 30
        while got < 800 and time.time() < deadline:
            m = c.poll(1)
            if m is not None and not m.error():
                got += 1
                if got % 100 == 0:
                    c.commit(m, asynchronous=False)
        assert got == 800, (assignor, got)
        c.offsets_for_times([TopicPartition("cap-gzip", 0, int(time.time() * 1000) - 60000)], 10)
        c.committed([TopicPartition("cap-gzip", 0)], 10)
        c.close()
    for f in admin.delete_topics(["cap-admin"]).values():
        f.result(30)
    print("confluent-kafka: produced with 5 codecs, consumed with 3 assignors, admin calls")


def kafka_python():
    for api in [(0, 9), (0, 10, 0), (0, 10, 1), (0, 11), None]:
        kw = {"api_version": api} if api else {}
        p = kafka.KafkaProducer(bootstrap_servers=B, compression_type="gzip", **kw)
        for i in range(50):
            p.send("cap-kafka-python", key=b"k%d" % (i % 3), value=b"v" * (i + 1))
        p.send("cap-kafka-python", value=b"uncompressed")
        p.flush(30)
        p.close()
        c = kafka.KafkaConsumer("cap-kafka-python", bootstrap_servers=B, group_id="cap-kp",
                                auto_offset_reset="earliest", consumer_timeout_ms=3000, **kw)
        n = sum(1 for _ in c)
        assert n > 0, api
        c.commit()
        c.close()
    a = kafka.KafkaAdminClient(bootstrap_servers=B)
    a.list_groups()
    a.describe_groups(["cap-kp"])
    a.list_group_offsets("cap-kp")
    a.describe_topics(["cap-kafka-python"])
    a.describe_cluster()
    a.close()
    print("kafka-python: gzip at 5 protocol levels, groups, admin calls")


confluent()
kafka_python()
