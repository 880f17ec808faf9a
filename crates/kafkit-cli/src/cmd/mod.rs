//! Subcommands.

pub mod chaos;
pub mod cluster;
pub mod consume;
pub mod demo;
pub mod groups;
pub mod perf;
pub mod produce;
pub mod props;
pub mod topics;

use std::path::PathBuf;
use std::time::Duration;

/// Options every subcommand takes, before or after its name (`kafkit -b H topics create t`
/// and `kafkit topics create -b H t` alike).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Brokers (host:port,...); default: bootstrap.servers from -X/-F, else 127.0.0.1:9093
    /// (demo and perf: an embedded cluster).
    #[arg(
        short,
        long,
        global = true,
        env = "KAFKA_BROKERS",
        value_delimiter = ','
    )]
    pub brokers: Vec<String>,
    /// A client property with librdkafka's or the Java client's name, as kcat -X
    /// (repeatable): security.protocol, sasl.mechanism, sasl.username, sasl.password,
    /// ssl.ca.location, ssl.certificate.location, ssl.key.location, acks, linger.ms,
    /// compression.type, fetch.min.bytes, ... (unknown names are an error listing the known).
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE")]
    pub props: Vec<String>,
    /// Read properties from a file (kcat -F; a Java client.properties works): key=value lines.
    #[arg(short = 'F', global = true, value_name = "FILE")]
    pub props_file: Option<PathBuf>,
}

/// The global options, resolved once in `main`.
#[derive(Debug, Clone, Default)]
pub struct Global {
    /// `-b`, else `bootstrap.servers` (may be empty: each command picks its default).
    pub brokers: Vec<String>,
    /// `-F` then `-X`.
    pub props: props::Props,
    /// The TLS/SASL settings they give (checked once, at start).
    pub security: kafkit::SecurityConfig,
}

static GLOBAL: std::sync::OnceLock<Global> = std::sync::OnceLock::new();

/// Reads `-F`/`-X` and the brokers; called once before any command runs.
pub fn init_global(a: &GlobalArgs) -> anyhow::Result<()> {
    let props = props::Props::load(a.props_file.as_deref(), &a.props)?;
    let brokers = props.brokers(&a.brokers);
    let security = props.security()?;
    let _ = GLOBAL.set(Global {
        brokers,
        props,
        security,
    });
    Ok(())
}

/// The global options (defaults before `init_global`).
pub fn global() -> &'static Global {
    GLOBAL.get_or_init(Global::default)
}

/// The TLS/SASL settings from `-X`/`-F`.
pub fn security() -> kafkit::SecurityConfig {
    global().security.clone()
}

/// An admin client for [`brokers`] with the `-X`/`-F` security.
pub fn admin() -> anyhow::Result<kafkit::Admin> {
    Ok(kafkit::Admin::with_security(brokers(), security())?)
}

/// The `-X`/`-F` producer properties and security on `w` (they win over flag defaults).
pub fn apply_writer(w: &mut kafkit::WriterConfig) -> anyhow::Result<()> {
    w.security = security();
    global().props.apply_writer(w)
}

/// The `-X`/`-F` consumer properties and security on `r` (they win over flag defaults).
pub fn apply_reader(r: &mut kafkit::ReaderConfig) -> anyhow::Result<()> {
    r.security = security();
    global().props.apply_reader(r)
}

/// The brokers for commands that talk to an existing cluster: `-b`/`bootstrap.servers`, else
/// 127.0.0.1:9093 (the tutorial's first broker).
pub fn brokers() -> Vec<String> {
    let b = &global().brokers;
    if b.is_empty() {
        vec!["127.0.0.1:9093".into()]
    } else {
        b.clone()
    }
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
