//! Host metrics from Linux's `/proc` (and `statvfs` for file systems),
//! under the OpenTelemetry semantic-convention names the Collector's
//! `hostmetrics` receiver uses:
//!
//! | metric | kind, unit | attributes |
//! |---|---|---|
//! | `system.cpu.time` | cumulative sum, s | `cpu.mode` |
//! | `system.cpu.utilization` | gauge, 1 (since the last look) | `cpu.mode` |
//! | `system.cpu.logical.count` | sum, {cpu} | |
//! | `system.cpu.load_average.1m`, `.5m`, `.15m` | gauge, {thread} | |
//! | `system.memory.usage` | sum, By | `system.memory.state` (`used`, `free`, `cached`, `buffers`) |
//! | `system.memory.utilization` | gauge, 1 | `system.memory.state` |
//! | `system.filesystem.usage` | sum, By | `system.device`, `system.filesystem.mountpoint`, `system.filesystem.type`, `system.filesystem.state` (`used`, `free`, `reserved`) |
//! | `system.filesystem.utilization` | gauge, 1 | the same but the state |
//! | `system.disk.io`, `system.disk.operations` | cumulative sums, By / {operation} | `system.device`, `disk.io.direction` |
//! | `system.network.io`, `system.network.packets`, `system.network.errors` | cumulative sums, By / {packet} / {error} | `network.interface.name`, `network.io.direction` |
//! | `system.process.count` | sum, {process} | `process.state` |
//!
//! Elsewhere than Linux, nothing is collected (and the agent says so).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
    metrics::v1::{
        AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
        metric::Data, number_data_point,
    },
    resource::v1::Resource,
};
use ophion_core::Signal;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{forward::QueueSink, queue::Record};

/// `[host_metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostMetricsConfig {
    /// Collect them.
    pub enabled: bool,
    /// Seconds between looks.
    pub interval_secs: u64,
    /// Mount points of these file system types are left out.
    pub exclude_fs_types: Vec<String>,
}

impl Default for HostMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 10,
            exclude_fs_types: [
                "proc",
                "sysfs",
                "devtmpfs",
                "devpts",
                "cgroup",
                "cgroup2",
                "tmpfs",
                "overlay",
                "mqueue",
                "securityfs",
                "debugfs",
                "tracefs",
                "pstore",
                "bpf",
                "configfs",
                "fusectl",
                "hugetlbfs",
                "autofs",
                "binfmt_misc",
                "rpc_pipefs",
                "nsfs",
                "squashfs",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

/// CPU seconds per mode, from the `cpu` line of `/proc/stat`.
pub fn cpu_times(stat: &str) -> Vec<(&'static str, f64)> {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return Vec::new();
    };
    // USER_HZ is 100 on every Linux platform the agent builds for.
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let modes = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "interrupt",
        "softirq",
        "steal",
    ];
    modes
        .iter()
        .zip(&ticks)
        .map(|(m, t)| (*m, t / 100.0))
        .collect()
}

/// `/proc/meminfo` values in bytes, by key.
pub fn meminfo(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let kb: u64 = v.split_whitespace().next()?.parse().ok()?;
            Some((k, kb * 1024))
        })
        .collect()
}

/// One data point.
fn point(value: f64, attrs: &[(&str, &str)], start: u64, now: u64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).to_owned(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue((*v).to_owned())),
                }),
                ..Default::default()
            })
            .collect(),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn sum(name: &str, unit: &str, monotonic: bool, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_owned(),
        unit: unit.to_owned(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: monotonic,
        })),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_owned(),
        unit: unit.to_owned(),
        data: Some(Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Looks at the host.
#[derive(Debug)]
pub struct Host {
    config: HostMetricsConfig,
    /// When the agent started (cumulative sums start here, except CPU
    /// and device counters, which start at boot).
    boot_ns: u64,
    last_cpu: Option<Vec<(&'static str, f64)>>,
}

impl Host {
    /// A collector with `config`.
    pub fn new(config: HostMetricsConfig) -> Self {
        let now = now_ns();
        let uptime: f64 = read("/proc/uptime")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            config,
            boot_ns: now.saturating_sub((uptime * 1e9) as u64),
            last_cpu: None,
        }
    }

    /// Every metric now.
    pub fn collect(&mut self) -> Vec<Metric> {
        let now = now_ns();
        let start = self.boot_ns;
        let mut out = Vec::new();
        // CPU.
        let stat = read("/proc/stat");
        let times = cpu_times(&stat);
        if !times.is_empty() {
            out.push(sum(
                "system.cpu.time",
                "s",
                true,
                times
                    .iter()
                    .map(|(m, t)| point(*t, &[("cpu.mode", m)], start, now))
                    .collect(),
            ));
            if let Some(last) = &self.last_cpu {
                let deltas: Vec<f64> = times
                    .iter()
                    .zip(last)
                    .map(|(a, b)| (a.1 - b.1).max(0.0))
                    .collect();
                let total: f64 = deltas.iter().sum();
                if total > 0.0 {
                    out.push(gauge(
                        "system.cpu.utilization",
                        "1",
                        times
                            .iter()
                            .zip(&deltas)
                            .map(|((m, _), d)| point(d / total, &[("cpu.mode", m)], 0, now))
                            .collect(),
                    ));
                }
            }
            self.last_cpu = Some(times);
        }
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        out.push(sum(
            "system.cpu.logical.count",
            "{cpu}",
            false,
            vec![point(cpus as f64, &[], start, now)],
        ));
        // Load.
        let load = read("/proc/loadavg");
        let fields: Vec<&str> = load.split_whitespace().collect();
        for (i, name) in [
            "system.cpu.load_average.1m",
            "system.cpu.load_average.5m",
            "system.cpu.load_average.15m",
        ]
        .iter()
        .enumerate()
        {
            if let Some(v) = fields.get(i).and_then(|v| v.parse::<f64>().ok()) {
                out.push(gauge(name, "{thread}", vec![point(v, &[], 0, now)]));
            }
        }
        // Memory: used = total - free - buffers - cached (what `free` shows).
        let mem_text = read("/proc/meminfo");
        let mem = meminfo(&mem_text);
        if let Some(&total) = mem.get("MemTotal") {
            let free = mem.get("MemFree").copied().unwrap_or(0);
            let buffers = mem.get("Buffers").copied().unwrap_or(0);
            let cached = mem.get("Cached").copied().unwrap_or(0)
                + mem.get("SReclaimable").copied().unwrap_or(0);
            let used = total.saturating_sub(free + buffers + cached);
            let states = [
                ("used", used),
                ("free", free),
                ("buffers", buffers),
                ("cached", cached),
            ];
            out.push(sum(
                "system.memory.usage",
                "By",
                false,
                states
                    .iter()
                    .map(|(s, v)| point(*v as f64, &[("system.memory.state", s)], start, now))
                    .collect(),
            ));
            if total > 0 {
                out.push(gauge(
                    "system.memory.utilization",
                    "1",
                    states
                        .iter()
                        .map(|(s, v)| {
                            point(
                                *v as f64 / total as f64,
                                &[("system.memory.state", s)],
                                0,
                                now,
                            )
                        })
                        .collect(),
                ));
            }
        }
        out.extend(self.filesystems(start, now));
        out.extend(devices(start, now));
        // Processes by state, from /proc/<pid>/stat's third field.
        let mut states: BTreeMap<&str, u64> = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let name = e.file_name();
                if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let stat = read(&format!("/proc/{}/stat", name.to_string_lossy()));
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next());
                let s = match state {
                    Some("R") => "running",
                    Some("S") => "sleeping",
                    Some("D") => "blocked",
                    Some("Z") => "zombies",
                    Some("T" | "t") => "stopped",
                    Some(_) => "other",
                    None => continue,
                };
                *states.entry(s).or_default() += 1;
            }
        }
        if !states.is_empty() {
            out.push(sum(
                "system.process.count",
                "{process}",
                false,
                states
                    .iter()
                    .map(|(s, n)| point(*n as f64, &[("process.state", s)], start, now))
                    .collect(),
            ));
        }
        out
    }

    fn filesystems(&self, start: u64, now: u64) -> Vec<Metric> {
        let (mut usage, mut util) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        for line in read("/proc/self/mounts").lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [device, mount, fstype, ..] = f[..] else {
                continue;
            };
            if self.config.exclude_fs_types.iter().any(|t| t == fstype)
                || !seen.insert(device.to_owned())
            {
                continue;
            }
            let Ok(st) = rustix::fs::statvfs(mount) else {
                continue;
            };
            let bs = st.f_frsize.max(1);
            let total = st.f_blocks * bs;
            if total == 0 {
                continue;
            }
            let free = st.f_bavail * bs;
            let reserved = (st.f_bfree - st.f_bavail.min(st.f_bfree)) * bs;
            let used = total.saturating_sub(st.f_bfree * bs);
            let attrs = [
                ("system.device", device),
                ("system.filesystem.mountpoint", mount),
                ("system.filesystem.type", fstype),
            ];
            for (state, v) in [("used", used), ("free", free), ("reserved", reserved)] {
                let mut a = attrs.to_vec();
                a.push(("system.filesystem.state", state));
                usage.push(point(v as f64, &a, start, now));
            }
            // As `df` shows it: used over what non-root users can fill.
            let usable = used + free;
            if usable > 0 {
                util.push(point(used as f64 / usable as f64, &attrs, 0, now));
            }
        }
        let mut out = Vec::new();
        if !usage.is_empty() {
            out.push(sum("system.filesystem.usage", "By", false, usage));
            out.push(gauge("system.filesystem.utilization", "1", util));
        }
        out
    }
}

/// Disk and network counters since boot.
fn devices(start: u64, now: u64) -> Vec<Metric> {
    let (mut io, mut ops) = (Vec::new(), Vec::new());
    for line in read("/proc/diskstats").lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[2].starts_with("loop") || f[2].starts_with("ram") {
            continue;
        }
        let n = |i: usize| f[i].parse::<f64>().unwrap_or(0.0);
        // Sectors are 512 bytes in /proc/diskstats whatever the device.
        io.push(point(
            n(5) * 512.0,
            &[("system.device", f[2]), ("disk.io.direction", "read")],
            start,
            now,
        ));
        io.push(point(
            n(9) * 512.0,
            &[("system.device", f[2]), ("disk.io.direction", "write")],
            start,
            now,
        ));
        ops.push(point(
            n(3),
            &[("system.device", f[2]), ("disk.io.direction", "read")],
            start,
            now,
        ));
        ops.push(point(
            n(7),
            &[("system.device", f[2]), ("disk.io.direction", "write")],
            start,
            now,
        ));
    }
    let (mut bytes, mut packets, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for line in read("/proc/net/dev").lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let v: Vec<f64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 16 {
            continue;
        }
        for (dir, base) in [("receive", 0), ("transmit", 8)] {
            let a = [
                ("network.interface.name", name),
                ("network.io.direction", dir),
            ];
            bytes.push(point(v[base], &a, start, now));
            packets.push(point(v[base + 1], &a, start, now));
            errors.push(point(v[base + 2], &a, start, now));
        }
    }
    let mut out = Vec::new();
    if !io.is_empty() {
        out.push(sum("system.disk.io", "By", true, io));
        out.push(sum("system.disk.operations", "{operation}", true, ops));
    }
    if !bytes.is_empty() {
        out.push(sum("system.network.io", "By", true, bytes));
        out.push(sum("system.network.packets", "{packet}", true, packets));
        out.push(sum("system.network.errors", "{error}", true, errors));
    }
    out
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Collects every `interval_secs` and queues the metrics until `stop`.
pub fn spawn(
    config: HostMetricsConfig,
    sink: Arc<QueueSink>,
    resource: Vec<KeyValue>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !cfg!(target_os = "linux") {
            tracing::warn!("host metrics are collected on Linux only");
            return;
        }
        let interval = Duration::from_secs(config.interval_secs.max(1));
        let mut host = Host::new(config);
        // A first look sets the CPU baseline for utilization.
        host.collect();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let Ok((h, metrics)) = tokio::task::spawn_blocking(move || {
                let m = host.collect();
                (host, m)
            })
            .await
            else {
                return;
            };
            host = h;
            let items: usize = metrics
                .iter()
                .map(|m| match &m.data {
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    _ => 0,
                })
                .sum();
            let request = ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: Some(Resource {
                        attributes: resource.clone(),
                        ..Default::default()
                    }),
                    scope_metrics: vec![ScopeMetrics {
                        metrics,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            let record = Record {
                signal: Signal::Metrics,
                items: items as u32,
                protobuf: request.encode_to_vec(),
                state: None,
            };
            if let Err(e) = sink.append(record).await {
                // The queue is full or the disk failing: this look is
                // dropped (the next one carries the cumulative values).
                sink.dropped_host_points
                    .fetch_add(items as u64, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, "host metrics not queued");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let t = cpu_times("cpu  100 0 50 850 0 0 0 0 0 0\ncpu0 100 0 50 850 0 0 0 0 0 0\n");
        assert_eq!(t[0], ("user", 1.0));
        assert_eq!(t[3], ("idle", 8.5));
        let m = meminfo("MemTotal:       16000 kB\nMemFree:  4000 kB\n");
        assert_eq!(m["MemTotal"], 16_000 * 1024);
    }

    #[test]
    fn a_look_has_the_semantic_convention_names() {
        let mut h = Host::new(HostMetricsConfig::default());
        h.collect();
        std::thread::sleep(Duration::from_millis(50));
        let names: std::collections::HashSet<String> =
            h.collect().into_iter().map(|m| m.name).collect();
        for n in [
            "system.cpu.time",
            "system.cpu.logical.count",
            "system.cpu.load_average.1m",
            "system.memory.usage",
            "system.memory.utilization",
            "system.network.io",
            "system.process.count",
        ] {
            assert!(names.contains(n), "{n} missing from {names:?}");
        }
    }
}
