//! Helpers shared by the receiver's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use ophion_core::{MemorySink, SinkError, TelemetryBatch, TelemetrySink, TenantId};
use ophion_receiver::{OtlpReceiver, ReceiverConfig};
use tokio::sync::oneshot;

/// A running receiver on loopback ports chosen by the OS.
pub struct Running {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub receiver: OtlpReceiver,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<ophion_receiver::Result<()>>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("serve");
        }
    }
}

pub fn loopback_config() -> ReceiverConfig {
    ReceiverConfig {
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        ..ReceiverConfig::default()
    }
}

pub async fn start_with(
    sink: Arc<dyn TelemetrySink>,
    config: ReceiverConfig,
    auth: Option<Arc<dyn ophion_receiver::Authenticator>>,
) -> Running {
    let mut b = OtlpReceiver::builder(sink).config(config);
    if let Some(a) = auth {
        b = b.authenticator(a);
    }
    let receiver = b.build().expect("build");
    let bound = receiver.clone().bind().await.expect("bind");
    let (grpc, http) = (bound.grpc_addr(), bound.http_addr());
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(bound.serve(async {
        let _ = rx.await;
    }));
    Running {
        grpc,
        http,
        receiver,
        stop: Some(tx),
        task: Some(task),
    }
}

pub async fn start(sink: Arc<dyn TelemetrySink>) -> Running {
    start_with(sink, loopback_config(), None).await
}

pub fn memory() -> Arc<MemorySink> {
    Arc::new(MemorySink::new())
}

/// A sink that refuses every write as overloaded.
#[derive(Debug)]
pub struct OverloadedSink;

#[async_trait::async_trait]
impl TelemetrySink for OverloadedSink {
    async fn write(&self, _: &TenantId, _: TelemetryBatch) -> Result<(), SinkError> {
        Err(SinkError::Overloaded {
            retry_after: Duration::from_secs(3),
            reason: "buffer full".into(),
        })
    }
}

/// A sink that takes its time, then stores in memory.
#[derive(Debug, Default)]
pub struct SlowSink(pub MemorySink);

#[async_trait::async_trait]
impl TelemetrySink for SlowSink {
    async fn write(&self, t: &TenantId, b: TelemetryBatch) -> Result<(), SinkError> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.0.write(t, b).await
    }
}

/// A sink that counts rows and keeps nothing, so memory tests measure the
/// receiver alone.
#[derive(Debug, Default)]
pub struct CountingSink(pub std::sync::atomic::AtomicU64);

#[async_trait::async_trait]
impl TelemetrySink for CountingSink {
    async fn write(&self, _: &TenantId, b: TelemetryBatch) -> Result<(), SinkError> {
        self.0
            .fetch_add(b.num_rows() as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}
