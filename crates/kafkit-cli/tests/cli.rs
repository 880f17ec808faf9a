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
