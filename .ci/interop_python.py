"""Independent Python clients against `kafkit cluster`.

kafka-python (pure Python, its own protocol code, also pinned to 0.9/0.10 protocol versions) and
confluent-kafka (librdkafka 2.x). Each test starts what it needs through the Cluster helper,
which runs `kafkit cluster --control` and sends it fault-injection commands.
Usage: interop_python.py path/to/kafkit
"""
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

KAFKIT = sys.argv[1]
N = 100
failures = []


class Cluster:
    """A `kafkit cluster` process with a data directory that outlives restarts."""

    def __init__(self, data_dir=None, extra=()):
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kafkit-py-")
        # Extra `kafkit cluster` flags (security); with TLS the CA's path is read from the
        # "tls ca:" line.
        self.extra = list(extra)
        self.ca = None
        # Restarts must come back on the same three ports, so they are chosen here; a base
        # someone else holds is retried with another (restarts keep the one that worked).
        for attempt in range(10):
            self.port = random.randint(30000, 50000)
            try:
                self.start()
                return
            except RuntimeError:
                with open(self.log.name) as log:
                    if "Address already in use" not in log.read() or attempt == 9:
                        raise

    def start(self):
        self.log = open(os.path.join(self.data_dir, "cluster.log"), "a")
        self.proc = subprocess.Popen(
            [KAFKIT, "-v", "cluster", "--data-dir", os.path.join(self.data_dir, "data"),
             "--port-base", str(self.port), "--control"] + self.extra,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1,
        )
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("cluster did not start; see " + self.log.name)
            if line.startswith("bootstrap:"):
                self.bootstrap = line.split(":", 1)[1].strip()
                if "SSL" not in " ".join(self.extra):
                    return
            if line.startswith("tls ca:"):
                self.ca = line.split(":", 1)[1].strip()
                return

    def control(self, command):
        self.proc.stdin.write(command + "\n")
        answer = self.proc.stdout.readline().strip()
        if not answer.startswith("ok"):
            raise RuntimeError(f"control {command!r}: {answer}")
        return answer[2:].strip()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        if self.proc.wait(timeout=30) != 0:
            raise RuntimeError("cluster exited with an error")
        self.log.close()

    def restart(self):
        self.stop()
        self.start()


def check(name, sent, received):
    missing = set(sent) - set(received)
    dupes = len(received) - len(set(received))
    if missing or dupes:
        failures.append(f"{name}: {len(missing)} missing, {dupes} duplicates")
        print(f"FAIL {name}: missing={sorted(missing)[:5]} dupes={dupes}")
    else:
        print(f"ok   {name}: {len(received)} messages")


def read_n_and_commit(consumer):
    """Up to N values from a kafka-python consumer (40 s at most), then commit and close."""
    received = []
    deadline = time.time() + 40
    for msg in consumer:
        received.append(msg.value.decode())
        if len(received) >= N or time.time() > deadline:
            break
    consumer.commit()
    consumer.close()
    return received


def kafka_python(c):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic("py-topic", num_partitions=3, replication_factor=3)])
    topics = admin.list_topics()
    assert "py-topic" in topics, topics
    admin.close()

    producer = KafkaProducer(bootstrap_servers=c.bootstrap, acks="all", linger_ms=5, enable_idempotence=True)
    sent = []
    for i in range(N):
        v = f"kafka-python {i}"
        producer.send("py-topic", key=f"k{i}".encode(), value=v.encode())
        sent.append(v)
    producer.flush(timeout=30)
    producer.close()

    consumer = KafkaConsumer(
        "py-topic",
        bootstrap_servers=c.bootstrap,
        group_id="py-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
    )
    received = read_n_and_commit(consumer)
    check("kafka-python produce+group consume", sent, received)


def kafka_python_admin(c):
    """Admin APIs through kafka-python's admin client, after kafka_python() left a group."""
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=10000)
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


def kafka_python_old_protocols(c):
    """kafka-python pinned to old brokers: no ApiVersions, Produce v1/v2 with message sets v0/v1
    (gzip-compressed for 0.10), Fetch v1-v3 (down-converted), ListOffsets v0."""
    from kafka import KafkaConsumer, KafkaProducer

    for ver in [(0, 9), (0, 10, 0), (0, 10, 1)]:
        topic = "old-" + "-".join(map(str, ver))
        producer = KafkaProducer(
            bootstrap_servers=c.bootstrap, api_version=ver, acks="all",
            compression_type=None if ver == (0, 9) else "gzip",
        )
        sent = [f"{topic} {i}" for i in range(N)]
        for i, v in enumerate(sent):
            producer.send(topic, key=f"k{i}".encode(), value=v.encode())
        producer.flush(timeout=30)
        producer.close()
        consumer = KafkaConsumer(
            topic, bootstrap_servers=c.bootstrap, api_version=ver, group_id="g-" + topic,
            auto_offset_reset="earliest", consumer_timeout_ms=10000,
        )
        received = []
        for msg in consumer:
            received.append(msg.value.decode())
            if len(received) >= N:
                break
        consumer.close()
        check(f"kafka-python api_version={ver}", sent, received)


def confluent(c):
    from confluent_kafka import Consumer, Producer

    producer = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
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
        "bootstrap.servers": c.bootstrap,
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


def kafka_python_group_rebalance_and_restart(c):
    """Two kafka-python consumers share a group, one leaves and the other takes over its
    partitions; after a cluster restart the group resumes from its committed offsets."""
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import CommitFailedError, RebalanceInProgressError

    def commit(m):
        # kafka-python refuses commits while its group rebalances; the next poll finishes it.
        try:
            m.commit()
        except (CommitFailedError, RebalanceInProgressError):
            pass

    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap)
    admin.create_topics([NewTopic("py-rebalance", num_partitions=4, replication_factor=3)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=c.bootstrap, acks="all")
    sent = [f"r{i}" for i in range(200)]
    for i, v in enumerate(sent):
        producer.send("py-rebalance", key=f"k{i}".encode(), value=v.encode())
    producer.flush(30)

    def two_members(group):
        def consumer():
            return KafkaConsumer(
                "py-rebalance", bootstrap_servers=c.bootstrap, group_id=group,
                auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=10,
                session_timeout_ms=10000, heartbeat_interval_ms=500,
            )

        # Each member polls in its own thread, as real consumers do: a kafka-python consumer only
        # rejoins a rebalance from inside its own poll().
        received = []
        lock = threading.Lock()
        stop = {"a": threading.Event(), "b": threading.Event()}
        members = {}

        def run(name, throttle):
            # kafka-python consumers are not thread-safe: only this thread touches this one, and it
            # publishes its assignment for the main thread to watch.
            m = consumer()
            while not stop[name].is_set():
                for recs in m.poll(timeout_ms=100).values():
                    with lock:
                        received.extend(r.value.decode() for r in recs)
                commit(m)
                with lock:
                    members[name] = sorted(p.partition for p in m.assignment())
                time.sleep(throttle)
            commit(m)
            m.close()  # leaves the group

        threads = {n: threading.Thread(target=run, args=(n, 0.05), daemon=True) for n in ("a", "b")}
        for t in threads.values():
            t.start()
        deadline = time.time() + 60

        def assignments():
            with lock:
                return tuple(members.get(n, []) for n in ("a", "b"))

        split = assignments()
        while time.time() < deadline:
            split = assignments()
            if split[0] and split[1] and len(split[0]) + len(split[1]) == 4:
                break
            time.sleep(0.05)
        if not split[0] or not split[1] or set(split[0]) & set(split[1]):
            for e in stop.values():
                e.set()
            for t in threads.values():
                t.join(timeout=15)
            raise RuntimeError(f"group did not split the partitions: {split}")
        while time.time() < deadline:
            with lock:
                if len(received) >= 100:
                    break
            time.sleep(0.05)
        stop["b"].set()  # b leaves: a rebalances onto all four partitions
        threads["b"].join(timeout=30)
        while time.time() < deadline:
            with lock:
                done = len(set(received)) >= 200
            if done and len(assignments()[0]) == 4:
                break
            time.sleep(0.05)
        after_leave = assignments()[0]
        stop["a"].set()
        threads["a"].join(timeout=30)
        if after_leave != [0, 1, 2, 3]:
            raise RuntimeError(f"after the leave the remaining member holds {after_leave}")
        missing = set(sent) - set(received)
        if missing:
            raise RuntimeError(f"{len(missing)} records never delivered")
        return split, len(received) - len(set(received))


    # kafka-python 3.0.12's group leader sometimes stops polling after a SyncGroup (seen in about
    # 1 of 8 runs; the broker answered every request), so the scenario gets up to 3 attempts,
    # each with a fresh group, and says how many it needed.
    for attempt in range(1, 4):
        try:
            split, redelivered = two_members(f"py-two-{attempt}")
            break
        except RuntimeError as e:
            print(f"     attempt {attempt}: {e}")
            if attempt == 3:
                raise
    group = f"py-two-{attempt}"
    print(f"ok   kafka-python 2-member group: split {split}, rebalanced onto 4 after a leave, "
          f"{redelivered} redelivered (attempt {attempt})")

    c.restart()
    producer = KafkaProducer(bootstrap_servers=c.bootstrap, acks="all")
    for i in range(10):
        producer.send("py-rebalance", value=f"after{i}".encode())
    producer.flush(30)
    producer.close()
    again = KafkaConsumer(
        "py-rebalance", bootstrap_servers=c.bootstrap, group_id=group,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    got = []
    end = time.time() + 30
    while len(got) < 10 and time.time() < end:
        for recs in again.poll(timeout_ms=200).values():
            got.extend(r.value.decode() for r in recs)
    again.close()
    check("kafka-python group resumes after a cluster restart", [f"after{i}" for i in range(10)], got)


def confluent_idempotent_failover(c):
    """librdkafka's idempotent producer writes 100,000 records while a broker goes down and
    comes back; a consumer then reads exactly 100,000 distinct records."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    total = 100_000
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    for f in admin.create_topics([NewTopic("cf-idem", num_partitions=3, replication_factor=3)]).values():
        f.result(30)
    producer = Producer({
        "bootstrap.servers": c.bootstrap, "enable.idempotence": True, "acks": "all",
        "linger.ms": 5, "message.timeout.ms": 120000,
    })
    errors = []
    victim = int(c.control("leader cf-idem 0"))
    for i in range(total):
        if i == 30_000:
            c.control(f"down {victim}")
        if i == 70_000:
            c.control(f"up {victim}")
        while True:
            try:
                producer.produce("cf-idem", key=str(i % 997), value=str(i),
                                 on_delivery=lambda err, msg: err and errors.append(str(err)))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(120)
    if errors or remaining:
        raise RuntimeError(f"{len(errors)} delivery errors ({errors[:2]}), {remaining} undelivered")
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "cf-idem-check", "auto.offset.reset": "earliest"})
    consumer.subscribe(["cf-idem"])
    seen = set()
    count = 0
    deadline = time.time() + 120
    while len(seen) < total and time.time() < deadline:
        for msg in consumer.consume(num_messages=10000, timeout=1.0):
            if msg.error():
                continue
            seen.add(int(msg.value()))
            count += 1
    # Drain a little longer: duplicates would show up as extra records.
    end = time.time() + 2
    while time.time() < end:
        for msg in consumer.consume(num_messages=10000, timeout=0.5):
            if not msg.error():
                count += 1
    consumer.close()
    if len(seen) != total or count != total:
        raise RuntimeError(f"{len(seen)} distinct of {total}, {count} records read")
    print(f"ok   confluent-kafka idempotent producer across broker {victim} down/up: {total} records, exactly once")


def mixed_group_kafka_python_and_kafkit(c):
    """A kafka-python consumer and a kafkit Reader (`kafkit consume -G`) share one group: the
    range assignor splits the partitions between them and together they read every record
    once."""
    import threading
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic("mixed", num_partitions=4, replication_factor=3)])
    admin.close()
    group = "mixed-group"
    kafkit = subprocess.Popen(
        [KAFKIT, "consume", "-b", c.bootstrap, "-t", "mixed", "-G", group, "-f", "%p %s\\n"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
    )
    kafkit_got = []

    def kafkit_reader():
        for line in kafkit.stdout:
            p, v = line.rstrip("\n").split(" ", 1)
            kafkit_got.append((int(p), v))

    threading.Thread(target=kafkit_reader, daemon=True).start()
    py_got, py_parts, stop = [], [set()], threading.Event()

    def python_member():
        consumer = KafkaConsumer(
            "mixed", bootstrap_servers=c.bootstrap, group_id=group,
            auto_offset_reset="earliest", enable_auto_commit=False,
            partition_assignment_strategy=[RangePartitionAssignor],
            heartbeat_interval_ms=500, session_timeout_ms=10000,
        )
        while not stop.is_set():
            for tp, msgs in consumer.poll(timeout_ms=200).items():
                py_got.extend((tp.partition, m.value.decode()) for m in msgs)
            if py_got:
                consumer.commit()
            py_parts[0] = {tp.partition for tp in consumer.assignment()}
        consumer.close()

    t = threading.Thread(target=python_member, daemon=True)
    t.start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            d = subprocess.run([KAFKIT, "groups", "-b", c.bootstrap, "describe", group],
                               capture_output=True, text=True)
            members = d.stdout.count("  member ")
            if members == 2 and "state Stable" in d.stdout and len(py_parts[0]) == 2:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"the group did not settle with 2 members: {d.stdout}{d.stderr}")
        producer = KafkaProducer(bootstrap_servers=c.bootstrap, acks="all")
        sent = [f"mixed {i}" for i in range(1000)]
        for i, v in enumerate(sent):
            producer.send("mixed", key=f"k{i}".encode(), value=v.encode())
        producer.flush(timeout=30)
        producer.close()
        deadline = time.time() + 40
        while len(py_got) + len(kafkit_got) < len(sent) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        kafkit.send_signal(signal.SIGTERM)
        kafkit.wait(timeout=30)
        t.join(timeout=30)
    kafkit_parts = {p for p, _ in kafkit_got}
    python_parts = {p for p, _ in py_got}
    print(f"     kafkit read partitions {sorted(kafkit_parts)} ({len(kafkit_got)} records), "
          f"kafka-python {sorted(python_parts)} ({len(py_got)} records)")
    if kafkit_parts & python_parts or len(kafkit_parts) != 2 or len(python_parts) != 2:
        failures.append(f"mixed group: partitions not split: kafkit {kafkit_parts}, python {python_parts}")
    check("kafkit Reader + kafka-python consumer in one group (range)", sent,
          [v for _, v in kafkit_got] + [v for _, v in py_got])


def mixed_group_handover_prints_nothing_twice(c):
    """`kafkit consume -G` hands partitions over to a kafka-python member and takes them back
    when it leaves: 6,000 records, each printed exactly once across both members (issue 13:
    the CLI used to commit only when a new record came, and re-read ~3,000 it had printed)."""
    import threading
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic
    from kafka.coordinator.assignors.range import RangePartitionAssignor

    admin = KafkaAdminClient(bootstrap_servers=c.bootstrap, request_timeout_ms=10000)
    admin.create_topics([NewTopic("handover", num_partitions=4, replication_factor=3)])
    admin.close()
    group = "handover-group"
    kafkit = subprocess.Popen(
        [KAFKIT, "consume", "-b", c.bootstrap, "-t", "handover", "-G", group, "-f", "%s\\n"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
    )
    kafkit_got = []
    threading.Thread(
        target=lambda: [kafkit_got.append(line.rstrip("\n")) for line in kafkit.stdout],
        daemon=True,
    ).start()
    producer = KafkaProducer(bootstrap_servers=c.bootstrap, acks="all")

    def produce(lo, hi):
        for i in range(lo, hi):
            producer.send("handover", key=f"k{i}".encode(), value=f"h {i}".encode())
        producer.flush(timeout=30)

    def wait_for(what, cond, seconds=60):
        deadline = time.time() + seconds
        while not cond():
            if time.time() > deadline:
                raise RuntimeError(f"timed out waiting for {what}: kafkit {len(kafkit_got)}, "
                                   f"kafka-python {len(py_got)}")
            time.sleep(0.1)

    py_got, py_parts, stop = [], [set()], threading.Event()

    def python_member():
        consumer = KafkaConsumer(
            "handover", bootstrap_servers=c.bootstrap, group_id=group,
            auto_offset_reset="earliest", enable_auto_commit=False,
            partition_assignment_strategy=[RangePartitionAssignor],
            heartbeat_interval_ms=500, session_timeout_ms=10000,
        )
        while not stop.is_set():
            got = consumer.poll(timeout_ms=200)
            for tp, msgs in got.items():
                py_got.extend(m.value.decode() for m in msgs)
            if got:
                consumer.commit()
            py_parts[0] = {tp.partition for tp in consumer.assignment()}
        consumer.close()  # leaves the group

    try:
        produce(0, 3000)
        wait_for("kafkit alone to print 3,000", lambda: len(kafkit_got) >= 3000)
        t = threading.Thread(target=python_member, daemon=True)
        t.start()
        wait_for("kafka-python to get 2 partitions", lambda: len(py_parts[0]) == 2)
        produce(3000, 6000)
        wait_for("6,000 printed in all", lambda: len(kafkit_got) + len(py_got) >= 6000)
        stop.set()
        t.join(timeout=30)
        # kafkit takes all four partitions back from kafka-python's commits; give it time to
        # (wrongly) print anything again.
        time.sleep(4)
    finally:
        stop.set()
        producer.close()
        kafkit.send_signal(signal.SIGTERM)
        kafkit.wait(timeout=30)
    print(f"     kafkit printed {len(kafkit_got)}, kafka-python {len(py_got)}")
    if not py_got:
        failures.append("handover: kafka-python never read anything")
    check("kafkit consume -G + kafka-python: handover both ways, nothing printed twice",
          [f"h {i}" for i in range(6000)], kafkit_got + py_got)


def confluent_disk_full(c):
    """librdkafka (acks=all) against a full disk and space returning: with retries off it gets
    KAFKA_STORAGE_ERROR at once for every refused message (not a timeout), nothing refused is
    stored, and everything acknowledged before and after is read back after a restart."""
    from confluent_kafka import Consumer, KafkaError, Producer

    topic = "cf-disk"
    acked, refused = [], []

    def dr(err, msg):
        if err:
            refused.append(err.code())
        else:
            acked.append(msg.value().decode())

    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(50):
        p.produce(topic, key=f"k{i}", value=f"before {i}", on_delivery=dr)
    p.flush(30)
    c.control("disk full")
    strict = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 0,
                       "retries": 0, "message.timeout.ms": 20000})
    t = time.time()
    for i in range(10):
        strict.produce(topic, key=f"k{i}", value=f"refused {i}", on_delivery=dr)
    strict.flush(30)
    took = time.time() - t
    c.control("disk clear")
    for i in range(50):
        p.produce(topic, key=f"k{i}", value=f"after {i}", on_delivery=dr)
    p.flush(30)
    if refused != [KafkaError.KAFKA_STORAGE_ERROR] * 10 or took > 5:
        failures.append(f"disk full: refused with {refused} in {took:.1f}s")
        print(f"FAIL disk full: refused with {refused} in {took:.1f}s")
    else:
        print(f"ok   confluent-kafka on a full disk: 10 refused with KAFKA_STORAGE_ERROR in {took:.2f}s")
    c.restart()
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "cf-disk",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    received, deadline = [], time.time() + 40
    while len(received) < 100 and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and not msg.error():
            received.append(msg.value().decode())
    # Anything refused that was stored anyway would show up here.
    end = time.time() + 2
    while time.time() < end:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            received.append(msg.value().decode())
    consumer.close()
    check("confluent-kafka acked before and after a full disk, after a restart", acked, received)
    if len(received) != len(acked):
        failures.append(f"disk full: read {len(received)} records, {len(acked)} acknowledged")


def confluent_transactions_fail_fast(c):
    """Transactions are not implemented: a transactional librdkafka producer must fail at once
    with a fatal error (it retried forever when the broker answered INVALID_REQUEST)."""
    from confluent_kafka import KafkaException, Producer

    p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": "py-tx"})
    t = time.time()
    try:
        p.init_transactions(30)
        failures.append("transactions: init_transactions succeeded")
        print("FAIL transactions: init_transactions succeeded")
        return
    except KafkaException as e:
        err = e.args[0]
        took = time.time() - t
        if not err.fatal() or took > 10:
            failures.append(f"transactions: {err} (fatal={err.fatal()}) after {took:.1f}s")
            print(f"FAIL transactions: {err} after {took:.1f}s")
        else:
            print(f"ok   confluent-kafka transactional producer fails fast ({took:.2f}s): {err.str()}")


SASL_USER, SASL_PASSWORD = "alice", "alice-s3cret"


def confluent_sasl_ssl_scram(c):
    """confluent-kafka (librdkafka 2.16) over SASL_SSL with SCRAM-SHA-512, trusting the
    cluster's self-signed CA; a wrong password fails with an authentication error."""
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    sec = {
        "bootstrap.servers": c.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": SASL_USER,
        "sasl.password": SASL_PASSWORD,
        "ssl.ca.location": c.ca,
    }
    producer = Producer({**sec, "acks": "all", "linger.ms": 5, "enable.idempotence": True})
    sent, errors = [], []
    for i in range(N):
        v = f"secure {i}"
        producer.produce("cf-secure", key=f"k{i}", value=v, on_delivery=lambda err, msg: err and errors.append(err))
        sent.append(v)
    left = producer.flush(30)
    if errors or left:
        failures.append(f"confluent SASL_SSL produce: {left} unflushed, errors {errors[:3]}")
    consumer = Consumer({**sec, "group.id": "cf-secure-group", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe(["cf-secure"])
    received = []
    deadline = time.time() + 40
    while len(received) < N and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        received.append(msg.value().decode())
    consumer.commit(asynchronous=False)
    consumer.close()
    check("confluent-kafka SASL_SSL SCRAM-SHA-512 produce+group consume", sent, received)
    # librdkafka reports the broker's refusal through error_cb (the call itself only sees
    # that no broker answered).
    reported = []
    bad = AdminClient({**sec, "sasl.password": "wrong", "log_level": 0,
                       "error_cb": lambda err: reported.append(err)})
    try:
        bad.list_topics(timeout=10)
        failures.append("confluent SASL_SSL: a wrong password was accepted")
        print("FAIL confluent-kafka wrong password accepted")
    except KafkaException:
        bad.poll(1)  # serves error_cb
        auth = [e for e in reported if "Authentication failed" in e.str()]
        if auth:
            print(f"ok   confluent-kafka wrong password refused: {auth[0].str()[:160]}")
        else:
            failures.append(f"confluent SASL_SSL wrong password: no authentication error in {reported[:3]}")
            print(f"FAIL confluent-kafka wrong password: {reported[:3]}")


def kafka_python_sasl(c, mechanism, protocol):
    from kafka import KafkaConsumer, KafkaProducer

    sec = dict(bootstrap_servers=c.bootstrap, security_protocol=protocol, sasl_mechanism=mechanism,
               sasl_plain_username=SASL_USER, sasl_plain_password=SASL_PASSWORD)
    if protocol == "SASL_SSL":
        sec["ssl_cafile"] = c.ca
    topic = f"py-{mechanism.lower()}"
    producer = KafkaProducer(acks="all", **sec)
    sent = []
    for i in range(N):
        v = f"kafka-python {mechanism} {i}"
        producer.send(topic, value=v.encode())
        sent.append(v)
    producer.flush(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, group_id=f"{topic}-group", auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=20000, **sec)
    received = read_n_and_commit(consumer)
    check(f"kafka-python {protocol} {mechanism} produce+group consume", sent, received)


def kafka_python_sasl_plaintext_plain(c):
    kafka_python_sasl(c, "PLAIN", "SASL_PLAINTEXT")


def kafka_python_sasl_ssl_scram(c):
    kafka_python_sasl(c, "SCRAM-SHA-256", "SASL_SSL")


def run_all():
    shared = Cluster()
    user = ["--sasl-user", f"{SASL_USER}:{SASL_PASSWORD}"]
    sasl_ssl = Cluster(extra=["--security-protocol", "SASL_SSL", "--tls-self-signed"] + user)
    sasl_plaintext = Cluster(extra=["--security-protocol", "SASL_PLAINTEXT"] + user)
    tests = [
        (confluent_sasl_ssl_scram, sasl_ssl),
        (kafka_python_sasl_ssl_scram, sasl_ssl),
        (kafka_python_sasl_plaintext_plain, sasl_plaintext),
        (kafka_python, shared),
        (kafka_python_admin, shared),
        (kafka_python_old_protocols, shared),
        (confluent, shared),
        (confluent_transactions_fail_fast, shared),
        (kafka_python_group_rebalance_and_restart, Cluster()),
        (mixed_group_kafka_python_and_kafkit, shared),
        (mixed_group_handover_prints_nothing_twice, shared),
        (confluent_idempotent_failover, Cluster()),
        (confluent_disk_full, Cluster()),
    ]
    failed = 0
    clusters = {id(c): c for _, c in tests}
    for f, c in tests:
        before = len(failures)
        try:
            f(c)
        except Exception as e:  # report and go on to the next client
            failures.append(f"{f.__name__}: {e!r}")
            print(f"FAIL {f.__name__}: {e!r}")
        failed += len(failures) > before
    for c in clusters.values():
        try:
            c.stop()
        except Exception as e:
            failures.append(f"stopping a cluster: {e!r}")
    if failures:
        for c in clusters.values():
            print(f"--- cluster log {c.log.name}")
            with open(c.log.name) as f:
                print("".join(f.readlines()[-30:]))
    print(f"python interop: {len(tests) - failed} passed, {failed} failed")
    return 1 if failures else 0


sys.exit(run_all())
