//! The process's own series, read from /proc at each scrape (the names Prometheus' client
//! libraries use, so existing dashboards and alerts work): CPU seconds, resident memory, open and
//! allowed descriptors, start time; and `tlsplex_build_info` with the version.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `tlsplex_build_info{version}`: always 1.
pub const BUILD_INFO: &str = "tlsplex_build_info";

/// Encodes the process series on each scrape.
#[derive(Debug, Default)]
pub(super) struct ProcessCollector;

/// What /proc says of this process (Linux); `None` where it cannot be read.
struct ProcessFacts {
    cpu_seconds: f64,
    resident_bytes: i64,
    start_time_seconds: f64,
    open_fds: i64,
    max_fds: i64,
}

impl ProcessFacts {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        let ticks = clock_ticks();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        let start_ticks: f64 = fields.get(19)?.parse().ok()?;
        let rss_pages: i64 = fields.get(21)?.parse().ok()?;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .and_then(|line| line.split_whitespace().nth(3))
            .and_then(|soft| soft.parse().ok())
            .unwrap_or(-1);
        Some(Self {
            cpu_seconds: (utime + stime) / ticks,
            resident_bytes: rss_pages * page_size(),
            start_time_seconds: boot + start_ticks / ticks,
            open_fds,
            max_fds,
        })
    }
}

/// Clock ticks per second (USER_HZ), the unit of /proc/self/stat's times.
fn clock_ticks() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// The page size, the unit of /proc/self/stat's resident set.
fn page_size() -> i64 {
    i64::try_from(rustix::param::page_size()).unwrap_or(4096)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let build = ConstGauge::new(1i64);
        let labels = [("version", env!("CARGO_PKG_VERSION"))];
        let mut family = encoder.encode_descriptor(
            BUILD_INFO,
            "The tlsplex build",
            None,
            build.metric_type(),
        )?;
        build.encode(family.encode_family(&labels)?)?;
        let Some(facts) = ProcessFacts::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(facts.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory",
                facts.resident_bytes,
            ),
            ("process_open_fds", "Open file descriptors", facts.open_fds),
            ("process_max_fds", "The open-files limit", facts.max_fds),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        let start = ConstGauge::new(facts.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time since the Unix epoch",
            None,
            start.metric_type(),
        )?)?;
        Ok(())
    }
}
