//! Enum columns (`status_code`, `kind`, `severity_text`) as SQL sees them:
//! every form of predicate and grouping over them answers as an independent
//! count of the rows sent, from the buffer, from files, from both, and after
//! compaction. The rows carry every status and kind (and an undefined one of
//! each), and a free-form `severity_text` with more distinct values than a
//! dictionary page holds, so the writer's fallback from dictionary to plain
//! pages is read back too. (Reading these columns as Arrow dictionaries was
//! measured and not kept: see "Enum columns as dictionary codes" in
//! `docs/benchmarks.md`; this test guards whatever the scan does next.)

mod common;

use std::collections::BTreeMap;

use arrow_array::{
    Array, RecordBatch,
    cast::AsArray,
    types::{Int64Type, UInt64Type},
};
use arrow_schema::DataType;
use opentelemetry_proto::tonic::{
    collector::{logs::v1::ExportLogsServiceRequest, trace::v1::ExportTraceServiceRequest},
    trace::v1::Status,
};
use ophion_core::{Signal, TelemetryBatch, TenantId, testing::Generator};
use ophion_receiver::{
    Limits,
    convert::{self, TimeWindow, kind_name, status_name},
};
use ophion_store::Store;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

const T0: u64 = 1_700_000_000_000_000_000;

/// Generated spans with kinds and statuses drawn uniformly from every
/// value the protocol defines plus one it does not.
fn spans(rng: &mut StdRng, seed: u64, n: usize) -> ExportTraceServiceRequest {
    let mut req = Generator::new(seed, T0).traces(n);
    for s in req
        .resource_spans
        .iter_mut()
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        s.kind = [0, 1, 2, 3, 4, 5, 9][rng.random_range(0..7)];
        s.status = match rng.random_range(0..5) {
            0 => None,
            1 => Some(Status {
                code: 0,
                message: String::new(),
            }),
            2 => Some(Status {
                code: 1,
                message: String::new(),
            }),
            3 => Some(Status {
                code: 2,
                message: "failed".into(),
            }),
            _ => Some(Status {
                code: 7,
                message: String::new(),
            }),
        };
    }
    req
}

/// (status_code, kind) of every span sent, as the receiver names them.
fn span_enums(req: &ExportTraceServiceRequest) -> Vec<(String, String)> {
    common::each_span(req)
        .map(|s| {
            let code = s.status.as_ref().map_or(0, |st| st.code);
            (status_name(code).to_owned(), kind_name(s.kind).to_owned())
        })
        .collect()
}

/// Generated logs whose severity text is, at random, missing, one of a
/// few spellings, or unique and long (about half the rows): a row group's
/// distinct texts then outgrow the writer's dictionary page.
fn logs(rng: &mut StdRng, seed: u64, n: usize) -> ExportLogsServiceRequest {
    let mut req = Generator::new(seed, T0).logs(n);
    for (i, l) in req
        .resource_logs
        .iter_mut()
        .flat_map(|r| &mut r.scope_logs)
        .flat_map(|s| &mut s.log_records)
        .enumerate()
    {
        l.severity_text = match rng.random_range(0..8) {
            0 => String::new(),
            1 => "ERROR".into(),
            2 => "warn".into(),
            3 => "Info".into(),
            _ => format!("custom severity {seed}-{i:0>400}"),
        };
    }
    req
}

fn severities(req: &ExportLogsServiceRequest) -> Vec<Option<String>> {
    req.resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| &s.log_records)
        .map(|l| (!l.severity_text.is_empty()).then(|| l.severity_text.clone()))
        .collect()
}

async fn count(store: &Store, sql: &str) -> i64 {
    let out = store
        .sql(&TenantId::default(), sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let b = &out.batches[0];
    match b.column(0).data_type() {
        DataType::Int64 => b.column(0).as_primitive::<Int64Type>().value(0),
        DataType::UInt64 => b.column(0).as_primitive::<UInt64Type>().value(0) as i64,
        t => panic!("{sql}: count of type {t}"),
    }
}

type SpanCase = (&'static str, fn(&str, &str) -> bool);

/// Predicates over (status_code, kind), with what each means.
const SPAN_CASES: &[SpanCase] = &[
    ("status_code = 'error'", |s, _| s == "error"),
    ("status_code <> 'error'", |s, _| s != "error"),
    ("'ok' = status_code", |s, _| s == "ok"),
    ("status_code IN ('error', 'ok')", |s, _| {
        s == "error" || s == "ok"
    }),
    ("status_code NOT IN ('error', 'unset')", |s, _| {
        s != "error" && s != "unset"
    }),
    ("status_code LIKE 'u%'", |s, _| s.starts_with('u')),
    ("upper(status_code) = 'OK'", |s, _| s == "ok"),
    ("status_code > 'ok'", |s, _| s > "ok"),
    ("status_code <= 'ok'", |s, _| s <= "ok"),
    ("kind = 'server' AND status_code = 'error'", |s, k| {
        k == "server" && s == "error"
    }),
    ("kind = 'unspecified' OR status_code = 'ok'", |s, k| {
        k == "unspecified" || s == "ok"
    }),
    ("status_code = kind", |s, k| s == k),
    ("status_code = 'missing'", |_, _| false),
    ("status_code IS NULL", |_, _| false),
    ("length(kind) = 6", |_, k| k.len() == 6),
    ("CASE WHEN kind = 'client' THEN 1 ELSE 0 END = 1", |_, k| {
        k == "client"
    }),
];

async fn check_spans(store: &Store, sent: &[(String, String)], phase: &str) {
    for (filter, pred) in SPAN_CASES {
        let want = sent.iter().filter(|(s, k)| pred(s, k)).count() as i64;
        let sql = format!("SELECT count(*) FROM spans WHERE {filter}");
        assert_eq!(count(store, &sql).await, want, "{phase}: {sql}");
    }
    let mut want: BTreeMap<(String, String), i64> = BTreeMap::new();
    for pair in sent {
        *want.entry(pair.clone()).or_default() += 1;
    }
    let out = store
        .sql(
            &TenantId::default(),
            "SELECT status_code, kind, count(*) FROM spans GROUP BY status_code, kind",
        )
        .await
        .expect("group");
    let mut got = BTreeMap::new();
    for b in &out.batches {
        // The query schema is unchanged: strings are views.
        let (s, k) = (b.column(0).as_string_view(), b.column(1).as_string_view());
        let n = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            got.insert((s.value(i).to_owned(), k.value(i).to_owned()), n.value(i));
        }
    }
    assert_eq!(got, want, "{phase}: grouped by status and kind");
    // Ordering and output read the strings back.
    let out = store
        .sql(
            &TenantId::default(),
            "SELECT min(status_code), max(kind), count(DISTINCT status_code) FROM spans",
        )
        .await
        .expect("min max");
    let b = &out.batches[0];
    let min = sent.iter().map(|(s, _)| s).min().expect("rows");
    let max = sent.iter().map(|(_, k)| k).max().expect("rows");
    let distinct: std::collections::BTreeSet<_> = sent.iter().map(|(s, _)| s).collect();
    assert_eq!(b.column(0).as_string_view().value(0), min, "{phase}");
    assert_eq!(b.column(1).as_string_view().value(0), max, "{phase}");
    assert_eq!(
        b.column(2).as_primitive::<Int64Type>().value(0),
        distinct.len() as i64,
        "{phase}"
    );
}

type LogCase = (&'static str, fn(Option<&str>) -> bool);

/// Predicates over `severity_text` (`None`: absent), with what each means.
const LOG_CASES: &[LogCase] = &[
    ("severity_text = 'ERROR'", |s| s == Some("ERROR")),
    ("severity_text IS NULL", |s| s.is_none()),
    ("severity_text LIKE 'custom%'", |s| {
        s.is_some_and(|s| s.starts_with("custom"))
    }),
    ("lower(severity_text) IN ('warn', 'info')", |s| {
        s == Some("warn") || s == Some("Info")
    }),
    ("severity_text >= 'Info'", |s| {
        s.is_some_and(|s| s >= "Info")
    }),
    ("severity_text <> 'warn'", |s| {
        s.is_some_and(|s| s != "warn")
    }),
];

async fn check_logs(store: &Store, sent: &[Option<String>], phase: &str) {
    for (filter, pred) in LOG_CASES {
        let want = sent.iter().filter(|s| pred(s.as_deref())).count() as i64;
        let sql = format!("SELECT count(*) FROM logs WHERE {filter}");
        assert_eq!(count(store, &sql).await, want, "{phase}: {sql}");
    }
    let distinct: std::collections::BTreeSet<_> = sent.iter().flatten().collect();
    assert_eq!(
        count(store, "SELECT count(DISTINCT severity_text) FROM logs").await,
        distinct.len() as i64,
        "{phase}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enum_columns_answer_alike_wherever_rows_are() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = common::local(dir.path());
    let store = Store::open(cfg.clone()).await.expect("open");
    let t = TenantId::default();
    let rng = &mut StdRng::seed_from_u64(20);
    let (mut sent_spans, mut sent_logs) = (Vec::new(), Vec::new());
    // Three snapshots and a fourth part left in the buffer.
    for part in 0..4u64 {
        let req = spans(rng, 40 + part, 400);
        sent_spans.extend(span_enums(&req));
        let c = convert::traces(&req, &Limits::default(), TimeWindow::ALL);
        let batch = TelemetryBatch::new(Signal::Traces, c.batch.expect("rows")).expect("schema");
        store.write(&t, batch).await.expect("write spans");
        let req = logs(rng, 50 + part, 6_000);
        sent_logs.extend(severities(&req));
        let c = convert::logs(&req, &Limits::default(), TimeWindow::ALL, T0 as i64);
        let batch = TelemetryBatch::new(Signal::Logs, c.batch.expect("rows")).expect("schema");
        store.write(&t, batch).await.expect("write logs");
        if part == 0 {
            check_spans(&store, &sent_spans, "buffer only").await;
            check_logs(&store, &sent_logs, "buffer only").await;
        }
        if part < 3 {
            store.flush().await.expect("flush");
        }
    }
    check_spans(&store, &sent_spans, "files and buffer").await;
    check_logs(&store, &sent_logs, "files and buffer").await;

    // The long severity texts made the writer fall back to plain pages.
    let parquet_dir = cfg.data_dir.join("parquet");
    let files = store.files();
    assert!(files.len() >= 6, "{} files", files.len());
    let mut plain_fallback = false;
    for f in &files {
        let bytes = bytes::Bytes::from(std::fs::read(parquet_dir.join(&f.path)).expect("file"));
        let options = ArrowReaderOptions::new().with_encoding_stats_as_mask(false);
        let reader =
            ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options).expect("footer");
        if f.signal == Signal::Logs {
            let schema = reader.parquet_schema();
            let i = (0..schema.num_columns())
                .find(|&i| schema.column(i).name() == "severity_text")
                .expect("severity_text");
            plain_fallback |= reader.metadata().row_groups().iter().any(|rg| {
                rg.column(i).page_encoding_stats().is_some_and(|stats| {
                    stats.iter().any(|p| {
                        p.page_type == parquet::basic::PageType::DATA_PAGE
                            && p.encoding == parquet::basic::Encoding::PLAIN
                    })
                })
            });
        }
        let rows: usize = reader
            .build()
            .expect("reader")
            .map(|b| b.expect("batch").num_rows())
            .sum();
        assert_eq!(rows as u64, f.rows);
    }
    assert!(
        plain_fallback,
        "the test's premise: a severity_text chunk with plain data pages"
    );

    store.flush().await.expect("flush the rest");
    check_spans(&store, &sent_spans, "files only").await;
    check_logs(&store, &sent_logs, "files only").await;
    let merged = store.compact().await.expect("compact");
    assert!(merged > 0, "the test's premise: compaction merged files");
    check_spans(&store, &sent_spans, "compacted").await;
    check_logs(&store, &sent_logs, "compacted").await;
    let batches: Vec<RecordBatch> = store
        .sql(&t, "SELECT status_code FROM spans LIMIT 3")
        .await
        .expect("rows")
        .batches;
    assert!(batches.iter().all(|b| b.column(0).null_count() == 0));
}
