//! Runs the `kafkit` binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn kafkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kafkit"))
}

fn run_with_timeout(mut cmd: Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "timed out after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn demo_runs_the_tutorial_program_on_the_embedded_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = kafkit();
    cmd.args([
        "demo",
        "--port-base",
        "0",
        "--count",
        "5",
        "--interval",
        "50ms",
        "--data-dir",
    ])
    .arg(dir.path());
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..5 {
        assert!(stdout.contains(&format!("writes: {i}\n")), "{stdout}");
        assert!(
            stdout.contains(&format!("received:  this is message{i}\n")),
            "{stdout}"
        );
    }
    // Data and the group's offsets were kept in the data directory.
    assert!(dir.path().join("FORMAT").exists());
    assert!(
        dir.path()
            .join("__consumer_offsets/offsets.log")
            .metadata()
            .unwrap()
            .len()
            > 0
    );
}

#[test]
fn demo_with_verbose_logs_group_and_writer_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = kafkit();
    cmd.args([
        "-v",
        "demo",
        "--port-base",
        "0",
        "--count",
        "2",
        "--interval",
        "50ms",
        "--data-dir",
    ])
    .arg(dir.path())
    .env_remove("RUST_LOG");
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for needle in [
        "joined group my-group",
        "writing 1 messages to message-log",
        "committed offsets for group my-group",
        "left group my-group",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
}

#[test]
fn bad_flags_give_a_clear_error() {
    let out = run_with_timeout(
        {
            let mut c = kafkit();
            c.args(["demo", "--acks", "2", "--port-base", "0", "--count", "1"]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("required_acks"), "{stderr}");
    let out = run_with_timeout(
        {
            let mut c = kafkit();
            c.args(["demo", "--interval", "soon"]);
            c
        },
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
}

fn run_kafkit(args: Vec<String>) -> (bool, String, String) {
    let mut cmd = kafkit();
    cmd.args(&args);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_create_describe_follow_a_leader_change_and_delete() {
    let c = kafkit_broker::Cluster::builder()
        .brokers(3)
        .start()
        .await
        .unwrap();
    let b = c.bootstrap();
    let cli = |args: &[&str]| {
        let mut v = vec!["topics".to_string(), "-b".to_string(), b.clone()];
        v.extend(args.iter().map(|s| s.to_string()));
        tokio::task::spawn_blocking(move || run_kafkit(v))
    };
    let (ok, out, err) = cli(&["create", "orders", "-p", "2"]).await.unwrap();
    assert!(ok && out.contains("created orders"), "{out}{err}");
    let w = kafkit::Writer::new(kafkit::WriterConfig {
        brokers: c.addrs(),
        topic: "orders".into(),
        balancer: kafkit::Balancer::RoundRobin,
        ..Default::default()
    })
    .unwrap();
    w.write_messages(
        (0..10)
            .map(|i| kafkit::Message::value(format!("v{i}")))
            .collect(),
    )
    .await
    .unwrap();
    let (ok, out, _) = cli(&["describe", "orders"]).await.unwrap();
    assert!(ok);
    let rows: Vec<Vec<String>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        rows.iter()
            .map(|r| r[5].parse::<i64>().unwrap())
            .sum::<i64>(),
        10,
        "high watermarks: {out}"
    );
    let leader0: i32 = rows[0][1].parse().unwrap();
    // Take partition 0's leader down: describe shows the new leader and the shrunk ISR.
    c.control().broker_down(leader0);
    let (ok, out, err) = cli(&["describe", "orders"]).await.unwrap();
    assert!(ok, "{err}");
    let row0: Vec<String> = out
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_ne!(row0[1], leader0.to_string(), "{out}");
    assert!(
        !row0[3].split(',').any(|b| b == leader0.to_string()),
        "ISR still lists the down broker: {out}"
    );
    let (ok, out, err) = cli(&["add-partitions", "orders", "--count", "3"])
        .await
        .unwrap();
    assert!(ok && out.contains("now has 3 partitions"), "{out}{err}");
    let (ok, out, _) = cli(&["describe", "orders"]).await.unwrap();
    assert!(
        ok && out.lines().count() == 4,
        "header and 3 partitions: {out}"
    );
    let (ok, _, err) = cli(&["create", "orders"]).await.unwrap();
    assert!(!ok && err.contains("TopicAlreadyExists"), "{err}");
    let (ok, out, _) = cli(&["delete", "orders"]).await.unwrap();
    assert!(ok && out.contains("deleted orders"));
    let (ok, out, _) = cli(&["list"]).await.unwrap();
    assert!(ok && !out.contains("orders"), "{out}");
    let (ok, _, err) = cli(&["describe", "nope"]).await.unwrap();
    assert!(!ok && err.contains("UnknownTopicOrPartition"), "{err}");
    c.shutdown().await;
}

/// Runs kafkit with `stdin` fed in; (success, stdout, stderr).
fn run_kafkit_stdin(args: Vec<String>, stdin: &[u8]) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = kafkit();
    cmd.args(&args).stdin(Stdio::piped());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn args(b: &str, list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.insert(1, "-b".into());
    v.insert(2, b.into());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_from_stdin_then_consume_to_the_end_with_formats_and_json() {
    let c = kafkit_broker::Cluster::builder()
        .brokers(3)
        .start()
        .await
        .unwrap();
    c.create_topic("lines", 3).unwrap();
    let b = c.bootstrap();
    let input = "k1:first line\nk2:second line\nno key here\nk1:fourth: with colon\n";
    let a = args(
        &b,
        &[
            "produce", "-t", "lines", "-K", ":", "-H", "src=cli", "-H", "n=1",
        ],
    );
    let (ok, _, err) = tokio::task::spawn_blocking(move || run_kafkit_stdin(a, input.as_bytes()))
        .await
        .unwrap();
    assert!(ok && err.contains("produced 4 of 4 records"), "{err}");

    // Default format: values, one per line; -e exits at the end.
    let a = args(&b, &["consume", "-t", "lines", "-e"]);
    let (ok, out, err) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    assert_eq!(
        got,
        [
            "first line",
            "fourth: with colon",
            "no key here",
            "second line"
        ]
    );

    // kcat format string.
    let a = args(
        &b,
        &["consume", "-t", "lines", "-e", "-f", "%t|%k|%s|%h|%K\\n"],
    );
    let (ok, out, err) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("lines|k1|first line|src=cli,n=1|2\n"), "{out}");
    assert!(out.contains("lines||no key here|src=cli,n=1|-1\n"), "{out}");

    // Keys with the same key land in the same partition, in order; --json is valid JSON.
    let a = args(&b, &["consume", "-t", "lines", "-e", "--json"]);
    let (ok, out, err) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let recs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 4);
    let k1: Vec<&serde_json::Value> = recs.iter().filter(|r| r["key"] == "k1").collect();
    assert_eq!(k1.len(), 2);
    assert_eq!(k1[0]["partition"], k1[1]["partition"]);
    assert_eq!(k1[0]["value"], "first line");
    assert_eq!(k1[1]["headers"]["src"], "cli");

    // -o -1: the last record of each partition; -c stops early.
    let a = args(&b, &["consume", "-t", "lines", "-o", "-1", "-e"]);
    let (ok, out, _) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    let nonempty = c
        .partitions("lines")
        .unwrap()
        .iter()
        .filter(|(_, hw)| *hw > 0)
        .count();
    assert!(ok && out.lines().count() == nonempty, "{out}");
    let a = args(&b, &["consume", "-t", "lines", "-c", "1"]);
    let (ok, out, _) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    assert!(ok && out.lines().count() == 1, "{out}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_describe_shows_lag_and_reset_and_delete_work() {
    let c = kafkit_broker::Cluster::builder()
        .brokers(3)
        .start()
        .await
        .unwrap();
    c.create_topic("events", 1).unwrap();
    let b = c.bootstrap();
    let a = args(&b, &["produce", "-t", "events", "-p", "0"]);
    let (ok, _, err) = tokio::task::spawn_blocking(move || run_kafkit_stdin(a, b"1\n2\n3\n4\n5\n"))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let a = args(&b, &["consume", "-t", "events", "-G", "audit", "-c", "3"]);
    let (ok, out, err) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    assert!(ok && out == "1\n2\n3\n", "{out}{err}");
    let describe = |b: String| {
        let a = args(&b, &["groups", "describe", "audit"]);
        tokio::task::spawn_blocking(move || run_kafkit(a))
    };
    let (ok, out, err) = describe(b.clone()).await.unwrap();
    assert!(ok, "{err}");
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("events"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..5], ["events", "0", "3", "5", "2"], "{out}");
    assert!(out.contains("total lag 2"), "{out}");
    let (ok, out, _) = tokio::task::spawn_blocking({
        let a = args(&b, &["groups", "list"]);
        move || run_kafkit(a)
    })
    .await
    .unwrap();
    assert!(ok && out.contains("audit"), "{out}");
    // Reset to the beginning: the whole partition is lag again, and the group re-reads it.
    let a = args(
        &b,
        &[
            "groups",
            "reset-offsets",
            "audit",
            "-t",
            "events",
            "--to",
            "beginning",
        ],
    );
    let (ok, _, err) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let (_, out, _) = describe(b.clone()).await.unwrap();
    assert!(out.contains("total lag 5"), "{out}");
    let a = args(&b, &["consume", "-t", "events", "-G", "audit", "-e"]);
    let (ok, out, _) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    assert!(ok && out == "1\n2\n3\n4\n5\n", "{out}");
    let (_, out, _) = describe(b.clone()).await.unwrap();
    assert!(out.contains("total lag 0"), "{out}");
    let a = args(&b, &["groups", "delete", "audit"]);
    let (ok, _, err) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let (ok, _, err) = describe(b.clone()).await.unwrap();
    assert!(!ok && err.contains("does not exist"), "{err}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_produce_emits_json_with_the_documented_fields_and_a_plot() {
    let c = kafkit_broker::Cluster::builder()
        .brokers(3)
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("lat.svg");
    let a = args(
        &c.bootstrap(),
        &[
            "perf",
            "produce",
            "--num-records",
            "10000",
            "--json",
            "--plot",
            plot.to_str().unwrap(),
        ],
    );
    // `perf produce -b` takes -b after the subcommand.
    let a: Vec<String> = {
        let mut v = a;
        let b = v.remove(2);
        v.remove(1);
        v.splice(2..2, ["-b".to_string(), b]);
        v
    };
    let (ok, out, err) = tokio::task::spawn_blocking(move || run_kafkit(a))
        .await
        .unwrap();
    assert!(ok, "{err}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["records"], 10000);
    assert_eq!(j["errors"], 0);
    assert_eq!(j["bytes"], 1_000_000);
    assert!(j["records_per_sec"].as_f64().unwrap() > 0.0);
    for q in ["avg", "max", "p50", "p95", "p99", "p999"] {
        assert!(j["latency_ms"][q].as_f64().unwrap() > 0.0, "{q}: {j}");
    }
    assert!(j["latency_ms"]["p50"].as_f64() <= j["latency_ms"]["p99"].as_f64());
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{svg}");
    let hw: i64 = c
        .partitions("kafkit-perf")
        .unwrap()
        .iter()
        .map(|(_, hw)| hw)
        .sum();
    assert_eq!(hw, 10001, "10,000 records and one warm-up record");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_one_line_errors_and_nonzero_exits() {
    let c = kafkit_broker::Cluster::builder()
        .brokers(1)
        .message_max_bytes(1000)
        .start()
        .await
        .unwrap();
    c.create_topic("small", 1).unwrap();
    let b = c.bootstrap();
    let cases: Vec<(Vec<String>, &[u8], &str)> = vec![
        (
            args("nosuch.invalid:9092", &["consume", "-t", "small", "-e"]),
            b"",
            "nosuch.invalid",
        ),
        (
            args("127.0.0.1:1", &["consume", "-t", "small", "-e"]),
            b"",
            "refused",
        ),
        (
            args(&b, &["consume", "-t", "missing", "-e"]),
            b"",
            "UnknownTopicOrPartition",
        ),
        (
            args(&b, &["consume", "-t", "small", "-o", "soon"]),
            b"",
            "bad offset \"soon\"",
        ),
        (
            args(&b, &["produce", "-t", "small", "-H", "novalue"]),
            b"x\n",
            "malformed header \"novalue\"",
        ),
        (
            args(&b, &["produce", "-t", "missing"]),
            b"x\n",
            "UnknownTopicOrPartition",
        ),
        (
            args(&b, &["produce", "-t", "small"]),
            &[b'x'; 5000],
            "MessageTooLarge",
        ),
    ];
    for (a, stdin, needle) in cases {
        let shown = a.join(" ");
        let (ok, _, err) = tokio::task::spawn_blocking(move || run_kafkit_stdin(a, stdin))
            .await
            .unwrap();
        assert!(!ok, "{shown} succeeded");
        assert!(err.contains(needle), "{shown}: {err}");
        assert!(!err.contains("panicked"), "{shown}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(errors.len(), 1, "{shown}: {err}");
        assert!(errors[0].contains(needle), "{shown}: {err}");
    }
    c.shutdown().await;
}

/// The crash-and-fault harness, briefly: every fault kind once (kill -9 of the cluster
/// process, a broker down, a leader move, cut replication, a full disk, EIO on writes and on
/// syncs), then the invariants. `.ci/run` runs more rounds, with librdkafka's producer too.
#[test]
fn chaos_applies_every_fault_and_every_invariant_holds() {
    let faults = "kill,down,move,cut,disk-full,disk-eio,sync-eio";
    let mut outputs = Vec::new();
    for fault in faults.split(',') {
        let mut one = kafkit();
        one.args([
            "chaos", "--rounds", "1", "--round", "1200ms", "--faults", fault,
        ]);
        outputs.push((fault, run_with_timeout(one, Duration::from_secs(120))));
    }
    for (fault, out) in outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("chaos: PASS"),
            "{fault}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("({fault} 1)")), "{stdout}");
        assert!(stdout.contains("lost 0, duplicated 0"), "{stdout}");
    }
}

/// `kafkit cluster --auto-create-topics false` (Kafka's `auto.create.topics.enable`): naming a
/// new topic in Metadata does not create it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_without_topic_auto_creation() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kafkit"))
        .args([
            "cluster",
            "--port-base",
            "0",
            "--auto-create-topics",
            "false",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let bootstrap = loop {
        let line = lines.next_line().await.unwrap().expect("cluster output");
        if let Some(b) = line.strip_prefix("bootstrap:") {
            break b.trim().to_owned();
        }
    };
    let brokers: Vec<String> = bootstrap.split(',').map(str::to_owned).collect();
    let admin = kafkit::Admin::new(brokers.clone()).unwrap();
    let w = kafkit::Writer::new(kafkit::WriterConfig {
        brokers,
        topic: "not-created".into(),
        write_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .unwrap();
    assert!(w
        .write_messages(vec![kafkit::Message::value("x")])
        .await
        .is_err());
    assert!(!admin
        .list_topics()
        .await
        .unwrap()
        .contains(&"not-created".to_string()));
    admin.create_topic("made", 1, 1).await.unwrap();
    assert!(admin
        .list_topics()
        .await
        .unwrap()
        .contains(&"made".to_string()));
    child.kill().await.unwrap();
}

/// `consume -G` commits what it printed within about a second, also when nothing new
/// arrives after a burst (it used to commit only when the next record came), so a group
/// describe shows no false lag and a rebalance re-delivers nothing already printed.
#[tokio::test]
async fn consume_in_a_group_commits_a_burst_without_waiting_for_more() {
    let c = kafkit_broker::Cluster::builder()
        .brokers(1)
        .start()
        .await
        .unwrap();
    c.create_topic("burst", 2).unwrap();
    let b = c.bootstrap();
    let mut child = kafkit()
        .args([
            "consume",
            "-b",
            &b,
            "-t",
            "burst",
            "-G",
            "g",
            "-o",
            "beginning",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let w = kafkit::Writer::new(kafkit::WriterConfig {
        brokers: vec![b.clone()],
        topic: "burst".into(),
        ..Default::default()
    })
    .unwrap();
    let msgs: Vec<kafkit::Message> = (0..200)
        .map(|i| kafkit::Message::new(format!("k{i}"), format!("v{i}")))
        .collect();
    w.write_messages(msgs).await.unwrap();
    let admin = kafkit::Admin::new(vec![b.clone()]).unwrap();
    let start = Instant::now();
    let committed = loop {
        let total: i64 = admin
            .group_offsets("g", Some("burst"))
            .await
            .map(|o| o.iter().map(|x| x.committed.max(0)).sum())
            .unwrap_or(0);
        if total == 200 || start.elapsed() > Duration::from_secs(20) {
            break total;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        committed, 200,
        "the burst is committed while the consumer idles"
    );
    c.shutdown().await;
}

/// Starts `kafkit cluster` with `extra` flags; returns the process, its bootstrap and the CA
/// file it printed (if any).
async fn cluster_process(
    dir: &std::path::Path,
    extra: &[&str],
) -> (tokio::process::Child, String, Option<String>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kafkit"))
        .args(["cluster", "--port-base", "0"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut bootstrap, mut ca) = (None, None);
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(b) = line.strip_prefix("bootstrap:") {
            bootstrap = Some(b.trim().to_owned());
        }
        if let Some(c) = line.strip_prefix("tls ca:") {
            ca = Some(c.trim().to_owned());
        }
        if line.starts_with("tls ca:") || (bootstrap.is_some() && !extra.contains(&"SASL_SSL")) {
            break;
        }
    }
    (child, bootstrap.expect("bootstrap line"), ca)
}

/// kcat's habit against a SASL_SSL cluster: `-X` on produce, a properties file (`-F`, a Java
/// client's, with `sasl.jaas.config`) on consume and topics, `-b` after the subcommand's own
/// subcommand. The password shows up neither in `-vv` logs nor in errors; an unknown property
/// is an error naming it; a wrong password is SASL_AUTHENTICATION_FAILED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_over_sasl_ssl_with_x_and_f() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "s3cret-Pa55";
    let (mut child, b, ca) = cluster_process(
        &dir.path().join("data"),
        &[
            "--security-protocol",
            "SASL_SSL",
            "--tls-self-signed",
            "--sasl-user",
            &format!("alice:{secret}"),
        ],
    )
    .await;
    let ca = ca.expect("the CA is printed");
    assert!(ca.ends_with("tls/ca.pem"), "{ca}");
    let props = dir.path().join("client.properties");
    std::fs::write(
        &props,
        format!(
            "# as a Java client has it\nbootstrap.servers={b}\nsecurity.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"{secret}\";\n\
             ssl.ca.location={ca}\n"
        ),
    )
    .unwrap();
    let x = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for p in [
            "security.protocol=SASL_SSL".to_string(),
            "sasl.mechanism=SCRAM-SHA-256".into(),
            "sasl.username=alice".into(),
            format!("sasl.password={secret}"),
            format!("ssl.ca.location={ca}"),
        ] {
            v.push("-X".into());
            v.push(p);
        }
        v
    };
    let pf = props.to_str().unwrap().to_owned();
    // topics create with -b after `create` (global), the rest from the file.
    let v = vec!["topics", "create", "-b", &b, "-F", &pf, "secure", "-p", "2"];
    let (ok, out, err) = tokio::task::spawn_blocking({
        let v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        move || run_kafkit(v)
    })
    .await
    .unwrap();
    assert!(ok && out.contains("created secure"), "{out}{err}");
    let lines: String = (0..100).map(|i| format!("line-{i}\n")).collect();
    let (ok, out, err) = tokio::task::spawn_blocking({
        let v = x(&["-vv", "produce", "-b", &b, "-t", "secure"]);
        move || run_kafkit_stdin(v, lines.as_bytes())
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    assert!(
        err.contains("authenticated"),
        "-vv shows the exchange: {err}"
    );
    assert!(
        !err.contains(secret) && !out.contains(secret),
        "no password in the output"
    );
    let (ok, out, err) = tokio::task::spawn_blocking({
        let v: Vec<String> = ["-vv", "consume", "-F", &pf, "-t", "secure", "-e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        move || run_kafkit(v)
    })
    .await
    .unwrap();
    assert!(ok, "{out}{err}");
    assert_eq!(out.lines().count(), 100, "{out}");
    assert!(!err.contains(secret), "no password in -vv logs");
    // An unknown property: a clear error naming it, nothing else runs.
    let (ok, _, err) = tokio::task::spawn_blocking({
        let v = x(&["topics", "list", "-b", &b, "-X", "sasl.pasword=x"]);
        move || run_kafkit(v)
    })
    .await
    .unwrap();
    assert!(
        !ok && err.contains("unknown property \"sasl.pasword\""),
        "{err}"
    );
    // A wrong password.
    let (ok, _, err) = tokio::task::spawn_blocking({
        let mut v = x(&["topics", "list", "-b", &b]);
        v.push("-X".into());
        v.push("sasl.password=wrong".into());
        move || run_kafkit(v)
    })
    .await
    .unwrap();
    assert!(
        !ok && err.contains("SaslAuthenticationFailed (58)"),
        "{err}"
    );
    child.kill().await.unwrap();
}

/// `kafkit consume ... | head -1`: the consumer ends quietly when its reader goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_into_a_closed_pipe_ends_quietly() {
    let c = kafkit_broker::Cluster::builder()
        .brokers(1)
        .start()
        .await
        .unwrap();
    c.create_topic("many", 1).unwrap();
    let w = kafkit::Writer::new(kafkit::WriterConfig {
        brokers: c.addrs(),
        topic: "many".into(),
        ..Default::default()
    })
    .unwrap();
    w.write_messages(
        (0..20_000)
            .map(|i| kafkit::Message::value(format!("record-{i:06}-{}", "x".repeat(100))))
            .collect(),
    )
    .await
    .unwrap();
    w.close().await.unwrap();
    let b = c.bootstrap();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut child = kafkit()
            .args(["consume", "-b", &b, "-t", "many"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap(); // then the pipe is closed, as `head -1` does
        assert!(first.starts_with("record-000000"), "{first}");
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "consume did not end"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit status {:?}: {err}", out.status);
    assert!(err.trim().is_empty(), "nothing on stderr: {err}");
    c.shutdown().await;
}
