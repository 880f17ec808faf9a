//! Subcommands.

pub mod chaos;
pub mod cluster;
pub mod consume;
pub mod demo;
pub mod groups;
pub mod perf;
pub mod produce;
pub mod topics;

use std::path::PathBuf;
use std::time::Duration;

/// `-b/--brokers` (env `KAFKA_BROKERS`).
#[derive(clap::Args, Debug, Clone)]
pub struct Brokers {
    /// Brokers (host:port,...).
    #[arg(
        short,
        long,
        env = "KAFKA_BROKERS",
        value_delimiter = ',',
        default_value = "127.0.0.1:9093"
    )]
    pub brokers: Vec<String>,
}

/// Parses `0`, `1`, `-1`/`all`.
pub fn parse_acks(s: &str) -> Result<kafkit::RequiredAcks, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "0" | "none" => Ok(kafkit::RequiredAcks::None),
        "1" | "one" | "leader" => Ok(kafkit::RequiredAcks::One),
        "-1" | "all" => Ok(kafkit::RequiredAcks::All),
        other => Err(format!("{other:?}: acks must be 0, 1, -1 or all")),
    }
}

/// Parses a compression codec name.
pub fn parse_compression(s: &str) -> Result<kafkit::Compression, String> {
    s.parse().map_err(|e: kafkit::Error| e.to_string())
}

/// Parses durations like `1s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (examples: 1s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "us" => n / 1e6,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Default data directory of the embedded cluster.
pub fn default_data_dir(name: &str) -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("kafkit")
        .join(name)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
