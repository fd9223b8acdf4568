//! The `watch` daemon: OTLP in, findings out.
//!
//! ```text
//! gRPC :4317 ─┐
//! HTTP :4318 ─┼─► ingest queue ─► event loop ─► window ─► analysis queue ─► worker
//! socket     ─┘   (bounded,        (sampling     (TTL,      (bounded, never   (detect,
//!                  senders wait)    done by the   LRU)       blocks: a full    score,
//!                                   listeners)               queue sheds the   store,
//!                                                            whole batch)      stdout)
//! ```
//!
//! - **Listeners** decode, convert, sample and normalize on their own tasks,
//!   then send a batch into the ingest queue; when it is full they wait, so
//!   backpressure reaches the exporters as latency, never as loss.
//! - **The event loop** owns the window: it adds spans, evicts idle traces on
//!   a ticker and hands each set of completed traces to the worker with a
//!   non-blocking send. It never runs detection.
//! - **The worker** is one blocking task fed in FIFO order, so stateful
//!   consumers (the correlator) see batches in a deterministic order.
//! - **Shutdown** (the `shutdown` future): stop accepting, drain the ingest
//!   queue into the window, send the whole window to the worker (waiting,
//!   not shedding), let the worker finish, flush. Nothing accepted is lost.
//! - **Worker death** (a detector panicked): the daemon stops with an error
//!   at once, so a supervisor restarts it.
//!
//! Every span is accounted for in the [`ledger`].

mod correlate;
mod grpc;
mod http;
pub mod ledger;
pub mod metrics;
pub mod settings;
mod socket;
mod store;
mod window;
mod worker;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::ack::Acknowledgments;
use crate::engine::Engine;
use crate::event::{SpanEvent, Text};
use crate::ingest::{IngestStats, Ingested, otlp};
use crate::trace::{Interner, Span};
use ledger::Ledger;
use settings::{DaemonSettings, keep_trace};
use store::FindingsStore;
use window::{Evicted, TraceWindow};
use worker::Batch;

/// Distinct services metered in `perf_sentinel_service_io_ops_total`.
const MAX_METERED_SERVICES: usize = 1024;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("invalid daemon configuration: {0}")]
    Config(String),
    #[error("failed to bind {what} listener on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("analysis worker stopped unexpectedly: {0}")]
    WorkerDied(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// State shared by the listeners, the loop, the worker and the API.
pub struct Shared {
    pub settings: DaemonSettings,
    pub engine: Arc<Engine>,
    pub ledger: Ledger,
    window: Mutex<TraceWindow>,
    store: FindingsStore,
    started: Instant,
    last_green: Mutex<Option<serde_json::Map<String, serde_json::Value>>>,
    correlator: Option<Mutex<correlate::Correlator>>,
    acks: Acknowledgments,
    metered: Mutex<HashSet<String>>,
}

/// Wall-clock milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Samples and normalizes the events of one request.
struct Normalizer {
    rate: f64,
    received: u64,
    kept: Vec<Span>,
    interner: Interner,
}

impl Normalizer {
    fn new(rate: f64, capacity: usize) -> Normalizer {
        Normalizer {
            rate,
            received: 0,
            kept: Vec::with_capacity(capacity),
            interner: Interner::default(),
        }
    }

    #[inline]
    fn add<S: Text>(&mut self, mut e: SpanEvent<S>) {
        self.received += 1;
        if keep_trace(e.trace_id.as_ref(), self.rate) {
            e.sanitize();
            self.kept.push(Span::new(e, &mut self.interner));
        }
    }
}

/// A batch of normalized spans on its way to the event loop.
struct IngestBatch {
    spans: Vec<Span>,
}

/// What listeners use to hand spans to the daemon.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<IngestBatch>,
    shared: Arc<Shared>,
}

/// The daemon is shutting down and takes no more spans.
#[derive(Debug)]
pub struct Closed;

impl Ingest {
    /// Counts, samples, normalizes and queues the spans of one request,
    /// waiting while the ingest queue is full.
    pub async fn submit(&self, input: Ingested) -> Result<(), Closed> {
        let spans = self.normalize(input.events, input.stats);
        self.queue(spans).await
    }

    /// Samples and normalizes events already made (OTLP/JSON, the JSON
    /// socket), and books the request's spans.
    fn normalize(&self, events: Vec<SpanEvent>, stats: IngestStats) -> Vec<Span> {
        let mut n = Normalizer::new(self.shared.settings.sampling_rate, events.len());
        for e in events {
            n.add(e);
        }
        self.book(n, stats)
    }

    /// [`Ingest::normalize`] for a protobuf request read in place: each
    /// event is normalized as it is mapped, never stored. The events borrow
    /// their strings from the request and the spans own what they keep, so
    /// the request can be let go before they are queued.
    pub(crate) fn normalize_protobuf(&self, request: &otlp::ProtobufRequest<'_>) -> Vec<Span> {
        let mut n = Normalizer::new(self.shared.settings.sampling_rate, request.span_count());
        let stats = request.each_event(|e| n.add(e));
        // Room was made for every span; non-I/O spans make no event, and
        // the batch may wait in the queue: what they would hold is given back.
        if n.kept.capacity() > n.kept.len() + n.kept.len() / 4 {
            n.kept.shrink_to_fit();
        }
        self.book(n, stats)
    }

    /// Books a request's spans in the ledger and the per-service meters.
    fn book(&self, n: Normalizer, stats: IngestStats) -> Vec<Span> {
        let kept = n.kept;
        let (received, taken) = (n.received, kept.len() as u64);
        self.shared.ledger.update(|c| {
            c.received += received;
            c.ignored_non_io += stats.spans_without_io_attributes;
            c.sampled_out += received - taken;
            c.in_ingest_queue += taken;
        });
        self.meter(&kept);
        kept
    }

    /// Hands normalized spans to the correlator.
    async fn queue(&self, kept: Vec<Span>) -> Result<(), Closed> {
        let s = &self.shared;
        let n = kept.len() as u64;
        if kept.is_empty() {
            return Ok(());
        }
        if self.tx.send(IngestBatch { spans: kept }).await.is_err() {
            s.ledger.update(|c| {
                c.in_ingest_queue -= n;
                c.rejected += n;
            });
            ::metrics::counter!(metrics::OTLP_REJECTED, "reason" => "channel_full").increment(1);
            return Err(Closed);
        }
        Ok(())
    }

    fn meter(&self, spans: &[Span]) {
        // One counter update per service and request, not per span: spans of
        // a request mostly share a few services.
        let mut per_service: BTreeMap<&str, u64> = BTreeMap::new();
        for sp in spans {
            *per_service.entry(&*sp.event.service).or_default() += 1;
        }
        let mut metered = self.shared.metered.lock().unwrap_or_else(|e| e.into_inner());
        for (svc, n) in per_service {
            if !metered.contains(svc) {
                if metered.len() >= MAX_METERED_SERVICES {
                    continue;
                }
                metered.insert(svc.to_owned());
            }
            ::metrics::counter!(metrics::SERVICE_IO_OPS, "service" => svc.to_owned()).increment(n);
        }
    }
}

/// Addresses the listeners are bound to (useful with port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

/// Runs the daemon until `shutdown` completes (then drains and returns
/// `Ok`) or a fatal error. `on_bound` is called once both listeners are up.
pub async fn run(
    engine: Arc<Engine>,
    settings: DaemonSettings,
    shutdown: impl Future<Output = ()>,
    on_bound: impl FnOnce(Bound),
) -> Result<(), DaemonError> {
    metrics::prewarm();
    let acks = match &settings.ack_toml {
        Some(p) if p.exists() => Acknowledgments::load(p, (now_ms() / 1000) as i64).map_err(DaemonError::Config)?,
        _ => Acknowledgments::default(),
    };
    let correlator = settings
        .correlation
        .enabled
        .then(|| Mutex::new(correlate::Correlator::new(settings.correlation.clone())));
    let shared = Arc::new(Shared {
        window: Mutex::new(TraceWindow::new(
            settings.max_active_traces,
            settings.max_events_per_trace,
        )),
        store: FindingsStore::new(settings.max_retained_findings),
        started: Instant::now(),
        last_green: Mutex::new(None),
        correlator,
        acks,
        metered: Mutex::new(HashSet::new()),
        ledger: Ledger::default(),
        engine,
        settings,
    });
    let st = &shared.settings;
    let (ingest_tx, mut ingest_rx) = mpsc::channel::<IngestBatch>(st.ingest_queue_capacity.max(1));
    let (analysis_tx, analysis_rx) = mpsc::channel::<Batch>(st.analysis_queue_capacity.max(1));
    let ingest = Ingest {
        tx: ingest_tx,
        shared: Arc::clone(&shared),
    };

    let http_addr = SocketAddr::new(st.listen_address, st.port_http);
    let grpc_addr = SocketAddr::new(st.listen_address, st.port_grpc);
    let http_listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .map_err(|source| DaemonError::Bind {
            what: "HTTP",
            addr: http_addr,
            source,
        })?;
    let grpc_listener = tokio::net::TcpListener::bind(grpc_addr)
        .await
        .map_err(|source| DaemonError::Bind {
            what: "gRPC",
            addr: grpc_addr,
            source,
        })?;
    let bound = Bound {
        http: http_listener.local_addr().unwrap_or(http_addr),
        grpc: grpc_listener.local_addr().unwrap_or(grpc_addr),
    };
    if !st.listen_address.is_loopback() {
        warn!(address = %st.listen_address, "listening on a non-loopback address: the OTLP receivers and the API have no authentication");
    }
    info!(grpc = %bound.grpc, http = %bound.http, "perf-sentinel daemon listening");

    let stop = tokio::sync::watch::channel(false);
    let mut listeners = tokio::task::JoinSet::new();
    listeners.spawn(http::serve(http_listener, ingest.clone(), stop.1.clone()));
    listeners.spawn(grpc::serve(grpc_listener, ingest.clone(), stop.1.clone()));
    if let Some(path) = st.json_socket.clone() {
        listeners.spawn(socket::serve(path, ingest.clone(), stop.1.clone()));
    }
    drop(ingest);
    on_bound(bound);

    let worker_shared = Arc::clone(&shared);
    let mut worker = tokio::task::spawn_blocking(move || worker::run(analysis_rx, worker_shared));

    let mut ticker = tokio::time::interval(st.tick_period());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            Some(batch) = ingest_rx.recv() => {
                let evicted = add_to_window(&shared, batch);
                enqueue(&shared, &analysis_tx, evicted);
            }
            _ = ticker.tick() => {
                let expired = {
                    let mut w = shared.window.lock().unwrap_or_else(|e| e.into_inner());
                    let out = w.expire(Instant::now(), st.trace_ttl);
                    shared.ledger.update(|c| c.active_traces = w.len() as u64);
                    out
                };
                enqueue(&shared, &analysis_tx, expired);
            }
            () = &mut shutdown => break,
            res = &mut worker => {
                let why = match res {
                    Ok(()) => "the worker returned".to_owned(),
                    Err(e) if e.is_panic() => panic_message(e.into_panic()),
                    Err(e) => e.to_string(),
                };
                error!(cause = %why, "analysis worker stopped unexpectedly; exiting");
                let _ = stop.0.send(true);
                listeners.abort_all();
                return Err(DaemonError::WorkerDied(why));
            }
        }
    }

    info!("shutting down: draining accepted spans");
    let _ = stop.0.send(true);
    while listeners.join_next().await.is_some() {}
    ingest_rx.close();
    let mut rest = Vec::new();
    while let Some(batch) = ingest_rx.recv().await {
        rest.extend(add_to_window(&shared, batch));
    }
    let all = {
        let mut w = shared.window.lock().unwrap_or_else(|e| e.into_inner());
        rest.extend(w.drain());
        shared.ledger.update(|c| c.active_traces = 0);
        rest
    };
    if !all.is_empty() {
        let batch = Batch::new(all);
        let (spans, traces) = (batch.spans, batch.traces.len() as u64);
        shared.ledger.update(|c| {
            c.in_window -= spans;
            c.in_analysis += spans;
            c.analysis_queue_depth += 1;
        });
        if analysis_tx.send(batch).await.is_err() {
            shared.ledger.update(|c| {
                c.in_analysis -= spans;
                c.shed += spans;
                c.traces_shed += traces;
                c.batches_shed += 1;
                c.analysis_queue_depth -= 1;
            });
        }
    }
    drop(analysis_tx);
    match worker.await {
        Ok(()) => {}
        Err(e) => {
            let why = if e.is_panic() {
                panic_message(e.into_panic())
            } else {
                e.to_string()
            };
            return Err(DaemonError::WorkerDied(why));
        }
    }
    info!(ledger = ?shared.ledger.snapshot(), "drained; exiting");
    Ok(())
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".to_owned()
    }
}

/// Adds a batch of spans to the window; returns the traces evicted to make room.
fn add_to_window(shared: &Shared, batch: IngestBatch) -> Vec<Evicted> {
    let n = batch.spans.len() as u64;
    let now = Instant::now();
    let mut evicted = Vec::new();
    let mut dropped = 0u64;
    let mut w = shared.window.lock().unwrap_or_else(|e| e.into_inner());
    let mut spans = batch.spans.into_iter();
    while let Some(first) = spans.as_slice().first() {
        // A run of spans of one trace goes in at once (a request's names,
        // trace ids included, are shared, so most compare by pointer).
        let id = first.event.trace_id.clone();
        let run = spans
            .as_slice()
            .iter()
            .take_while(|s| Arc::ptr_eq(&s.event.trace_id, &id) || s.event.trace_id == id)
            .count();
        let p = w.push_run(id, spans.by_ref().take(run), now);
        dropped += p.dropped as u64;
        evicted.extend(p.evicted);
    }
    let active = w.len() as u64;
    shared.ledger.update(|c| {
        c.in_ingest_queue -= n;
        // Evicted spans move on in `enqueue`; count them in the window until then.
        c.in_window += n - dropped;
        c.dropped += dropped;
        c.active_traces = active;
    });
    evicted
}

/// Sends completed traces to the worker without waiting; sheds the whole
/// batch when the analysis queue is full or the worker is gone.
fn enqueue(shared: &Shared, tx: &mpsc::Sender<Batch>, traces: Vec<Evicted>) {
    if traces.is_empty() {
        return;
    }
    let batch = Batch::new(traces);
    let (spans, n) = (batch.spans, batch.traces.len() as u64);
    match tx.try_reserve() {
        Ok(permit) => {
            shared.ledger.update(|c| {
                c.in_window -= spans;
                c.in_analysis += spans;
                c.analysis_queue_depth += 1;
            });
            permit.send(batch);
        }
        Err(e) => {
            shared.ledger.update(|c| {
                c.in_window -= spans;
                c.shed += spans;
                c.traces_shed += n;
                c.batches_shed += 1;
            });
            match e {
                mpsc::error::TrySendError::Full(()) => {
                    warn!(traces = n, spans, "analysis queue full: batch shed")
                }
                mpsc::error::TrySendError::Closed(()) => {
                    error!(traces = n, spans, "analysis worker stopped: batch shed")
                }
            }
        }
    }
}

impl Shared {
    /// The trace's spans still in the window, without touching it.
    fn window_trace(&self, trace_id: &str) -> Option<Vec<Span>> {
        self.window.lock().unwrap_or_else(|e| e.into_inner()).get(trace_id)
    }
}

/// A daemon ready to start: the engine and the `[daemon]` settings built
/// from one config. `perf-sentinel watch` and programs that embed the engine
/// start it the same way.
pub struct Daemon {
    pub engine: Arc<Engine>,
    pub settings: DaemonSettings,
}

impl Daemon {
    /// Reads the daemon settings, then builds the engine (registry, detector
    /// and scorer settings). Either error names the key at fault.
    pub fn from_config(config: crate::config::Config) -> Result<Daemon, String> {
        let settings = DaemonSettings::from_config(&config)?;
        let engine = Engine::new(config).map_err(|e| e.to_string())?;
        Ok(Daemon {
            engine: Arc::new(engine),
            settings,
        })
    }

    /// Runs on a new multi-threaded runtime until SIGTERM or Ctrl-C, drains,
    /// and returns. Tasks still blocked (a stdin reader) are left behind
    /// after one second.
    pub fn run_until_signal(self) -> Result<(), DaemonError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(DaemonError::Runtime)?;
        let result = runtime.block_on(run(self.engine, self.settings, shutdown_signal(), |_| {}));
        runtime.shutdown_timeout(Duration::from_secs(1));
        result
    }
}

/// Turns the process's SIGINT and SIGTERM into a shutdown future.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; only Ctrl+C stops the daemon");
                ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

/// Completes once the stop flag turns true (or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Idle time before the shutdown waits no longer for slow clients.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);
