//! The text index never changes a result: every search is run against
//! the same data with the index and without it (`query.text_index =
//! false`), and the answers must be equal.
//!
//! The lines come from a generator that shares nothing with the index:
//! random runs of words in random case, digits, hex, punctuation, tabs and
//! newlines, and non-ASCII text chosen to trip case folding (the Kelvin
//! sign and long s, which match `k` and `s` under `ILIKE`; dotted and
//! dotless i; sharp s; final sigma; ligatures; combining marks; CJK;
//! emoji). The searches are cut from the lines at random character
//! positions (so they start and end inside tokens and span separators),
//! recased, given `_` wildcards, anchored at either end, combined with
//! `OR`, and run as `LIKE`, `ILIKE`, `strpos(lower(body), $q) > 0` (the
//! API's and the copilot's search) and `contains`; random text that is
//! in no line is searched too.

use std::sync::atomic::Ordering::Relaxed;

use arrow_array::RecordBatch;
use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::{AnyValue, any_value::Value},
    logs::v1::LogRecord,
};
use ophion_core::{
    Signal, TelemetryBatch, TenantId,
    query::{Param, sql_literal},
    testing::service_logs_request,
};
use ophion_receiver::{
    Limits,
    convert::{self, TimeWindow},
};
use ophion_store::{Store, StoreConfig};
use rand::{Rng as _, SeedableRng, rngs::StdRng, seq::IndexedRandom as _};

const T0: u64 = 1_700_000_000_000_000_000;

const WORDS: &[&str] = &[
    "timeout",
    "connection",
    "refused",
    "user",
    "order",
    "payment",
    "declined",
    "GET",
    "POST",
    "ERROR",
    "warn",
    "Info",
    "kafka",
    "partition",
    "offset",
    "retry",
    "deadlock",
    "SELECT",
    "upstream",
    "session",
    "Kelvin",
    "STATUS",
    "ok",
    "id",
    "a",
    "to",
    "of",
];
const ODD: &[&str] = &[
    "\u{212A}",
    "\u{17F}",
    "\u{130}",
    "\u{131}",
    "ß",
    "ẞ",
    "Σ",
    "ς",
    "ﬁ",
    "é",
    "É",
    "ö",
    "\u{307}",
    "日本語",
    "🚀",
    "Ω",
    "ǅ",
];
const PUNCT: &[&str] = &[
    " ", " ", " ", "  ", "\t", "\n", "-", "_", ".", ",", ":", "=", "/", "\"", "'", "(", ")", "[",
    "]", "%", "\\", "|", "#", "@",
];

fn piece(r: &mut StdRng) -> String {
    match r.random_range(0..10) {
        0..=3 => {
            let w = *WORDS.choose(r).expect("a list");
            match r.random_range(0..3) {
                0 => w.to_uppercase(),
                1 => w.to_lowercase(),
                _ => w.to_string(),
            }
        }
        4 | 5 => (r.random::<u64>() % 10u64.pow(1 + r.random_range(0..9) as u32)).to_string(),
        6 => format!("{:x}", r.random::<u64>() >> r.random_range(0..48)),
        7 => ODD.choose(r).expect("a list").to_string(),
        _ => PUNCT.choose(r).expect("a list").to_string(),
    }
}

fn line(r: &mut StdRng) -> String {
    let pieces = r.random_range(0..40);
    let mut s = String::new();
    for _ in 0..pieces {
        s.push_str(&piece(r));
        if r.random_range(0..3) > 0 {
            s.push_str(PUNCT.choose(r).expect("a list"));
        }
    }
    s
}

fn request(lines: &[String], first: usize) -> ExportLogsServiceRequest {
    let records = lines
        .iter()
        .enumerate()
        .map(|(i, l)| LogRecord {
            time_unix_nano: T0 + ((first + i) as u64) * 1_000_000,
            severity_number: 9 + (i % 3) as i32 * 4,
            body: (i % 97 != 5).then(|| AnyValue {
                value: Some(Value::StringValue(l.clone())),
            }),
            ..Default::default()
        })
        .collect();
    service_logs_request(&format!("svc-{}", first % 3), records)
}

async fn write(store: &Store, lines: &[String], first: usize) {
    let c = convert::logs(
        &request(lines, first),
        &Limits::default(),
        TimeWindow::ALL,
        T0 as i64,
    );
    let batch = TelemetryBatch::new(Signal::Logs, c.batch.expect("rows")).expect("schema");
    store
        .write(&TenantId::default(), batch)
        .await
        .expect("write");
}

fn config(dir: &std::path::Path, index: bool) -> StoreConfig {
    let mut c = StoreConfig::in_dir(dir);
    c.buffer.flush_interval_secs = 3600;
    c.retention.logs_days = 0;
    c.compaction.enabled = false;
    c.compaction.min_files = 2;
    c.query.text_index = index;
    c
}

/// A random cut of `s`, at character boundaries.
fn cut(r: &mut StdRng, s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let from = r.random_range(0..chars.len());
    let len = 1 + r.random_range(0..24.min(chars.len() - from));
    chars[from..from + len].iter().collect()
}

fn recase(r: &mut StdRng, s: &str) -> String {
    s.chars()
        .map(|c| match r.random_range(0..3) {
            0 => c.to_uppercase().collect::<String>(),
            1 => c.to_lowercase().collect(),
            _ => c.to_string(),
        })
        .collect()
}

/// One search: SQL and its parameters.
type Search = (String, Vec<(String, Param)>);

/// Lines whose words appear nowhere else, each in one place, and searches
/// that find them only if the index folds text as `ILIKE` and `lower()`
/// compare it.
const NEEDLES: &[&str] = &[
    "pod \u{212A}ubernetes-\u{17F}cheduler-7f9 evicted",
    "city=X\u{130}STANBUL zone=\u{131}zmir",
    "Stra\u{df}enbahn \u{3a3}\u{3c2}igma caf\u{e9}-latte \u{fb01}nancials",
    "payload 50%_off [literal] back\\slash quarantined",
];

/// Searches for the needles, and whether they find one (`ILIKE` folds
/// single characters only: `I` is not `ı`, `fi` is not `ﬁ`).
const NEEDLE_SEARCHES: &[(&str, bool)] = &[
    ("body ILIKE '%KUBERNETES-scheduler%'", true),
    ("body ILIKE '%kubernetes%'", true),
    ("body ILIKE '%ScHeDuLeR-7f9%'", true),
    ("strpos(lower(body), 'kubernetes') > 0", true),
    ("strpos(lower(body), 'xi\u{307}stanbul') > 0", true),
    ("body ILIKE '%\u{131}zmir%'", true),
    ("body ILIKE '%IZMIR%'", false),
    ("body LIKE '%Stra\u{df}enbahn%'", true),
    ("body ILIKE '%\u{3c3}\u{3c2}igma%'", true),
    ("body ILIKE '%caf\u{c9}-LATTE%'", true),
    ("body ILIKE '%\u{fb01}nancials%'", true),
    ("body ILIKE '%financials%'", false),
    ("body LIKE '%50\\%\\_off%'", true),
    ("body LIKE '%50%off%'", true),
    ("body LIKE '%back\\\\slash%'", true),
    ("body LIKE '%[literal]%'", true),
    ("body ILIKE '%quarantine_%'", true),
];

fn searches(r: &mut StdRng, lines: &[String]) -> Vec<Search> {
    let agg = "SELECT count(*), sum(length(body)), min(body), max(body), \
               sum(CAST(timestamp AS BIGINT) % 1000003) FROM logs WHERE";
    let mut out: Vec<Search> = NEEDLE_SEARCHES
        .iter()
        .map(|(w, _)| (format!("{agg} {w}"), Vec::new()))
        .collect();
    for i in 0..300 {
        let src = &lines[r.random_range(0..lines.len())];
        let s = cut(r, src);
        let sql = match i % 8 {
            0 => format!("{agg} body LIKE {}", sql_literal(&format!("%{s}%"))),
            1 => format!(
                "{agg} body ILIKE {}",
                sql_literal(&format!("%{}%", &recase(r, &s)))
            ),
            2 => {
                out.push((
                    format!("{agg} strpos(lower(body), $q) > 0"),
                    vec![("q".into(), Param::Text(s.to_lowercase()))],
                ));
                continue;
            }
            3 => {
                // `_` for a few characters.
                let w: String = s
                    .chars()
                    .map(|c| if r.random_range(0..5) == 0 { '_' } else { c })
                    .collect();
                format!("{agg} body ILIKE {}", sql_literal(&format!("%{w}%")))
            }
            4 => {
                let prefix: String = src.chars().take(1 + r.random_range(0..20)).collect();
                format!("{agg} body LIKE {}", sql_literal(&format!("{prefix}%")))
            }
            5 => {
                let j = r.random_range(0..lines.len());
                let other = cut(r, &lines[j]);
                format!(
                    "{agg} (body LIKE {} OR body ILIKE {}) AND severity_number >= 9",
                    sql_literal(&format!("%{s}%")),
                    sql_literal(&format!("%{other}%"))
                )
            }
            6 => format!("{agg} contains(body, {})", sql_literal(&s)),
            _ => {
                // Text in no line, most likely.
                let absent = format!("{}{}", r.random::<u64>(), *WORDS.choose(r).expect("a list"));
                format!("{agg} body ILIKE {}", sql_literal(&format!("%{absent}%")))
            }
        };
        out.push((sql, Vec::new()));
    }
    out
}

async fn answers(store: &Store, searches: &[Search]) -> Vec<String> {
    let mut out = Vec::new();
    for (sql, params) in searches {
        let got = store
            .sql_with_params(&TenantId::default(), sql, params.clone())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let batches: Vec<RecordBatch> = got.batches;
        out.push(
            arrow_cast::pretty::pretty_format_batches(&batches)
                .expect("format")
                .to_string(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_answer_the_same_with_and_without_the_index() {
    let mut r = StdRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let mut lines: Vec<String> = (0..45_000).map(|_| line(&mut r)).collect();
    for (i, n) in NEEDLES.iter().enumerate() {
        lines[3_000 + i * 11_000] = (*n).to_string();
    }
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(config(dir.path(), true)).await.expect("open");
    // Two snapshots merged by compaction (re-encoded with their index),
    // one snapshot left as it is, and rows still in memory.
    for (i, chunk) in lines.chunks(10_000).enumerate() {
        write(&store, chunk, i * 10_000).await;
        if i < 3 {
            store.flush().await.expect("flush");
        }
        if i == 1 {
            assert!(store.compact().await.expect("compact") >= 1);
        }
    }
    assert!(store.files().len() >= 2, "{:?}", store.files());
    let searches = searches(&mut r, &lines);
    let with = answers(&store, &searches).await;
    let skipped = store.stats().text_index_rows_skipped.load(Relaxed);
    store.close().await.expect("close");
    drop(store);

    let store = Store::open(config(dir.path(), false))
        .await
        .expect("reopen");
    let without = answers(&store, &searches).await;
    assert_eq!(store.stats().text_index_rows_skipped.load(Relaxed), 0);
    let mut matched = 0;
    for ((q, a), b) in searches.iter().zip(&with).zip(&without) {
        assert_eq!(a, b, "{q:?}");
        matched += usize::from(!a.contains("| 0 "));
    }
    for ((q, a), (_, found)) in searches.iter().zip(&with).zip(NEEDLE_SEARCHES) {
        if *found {
            assert!(!a.contains("| 0 "), "a needle is found: {q:?}\n{a}");
        }
    }
    // The searches found rows, and the index skipped some.
    assert!(matched > searches.len() / 3, "{matched} searches matched");
    assert!(skipped > 0, "the index skipped no row");

    // Case-insensitive searches are rewritten to functions that skip the
    // regular expression and the lower-cased copy; the shapes the rewrite
    // leaves alone (a pattern built by concat, `>= 1`) answer the same.
    let agg = "SELECT count(*), sum(length(body)), min(body), max(body) FROM logs WHERE";
    let mut pairs: Vec<(Search, Search)> = Vec::new();
    for i in 0..160 {
        let src = if i % 4 == 0 {
            NEEDLES[r.random_range(0..NEEDLES.len())]
        } else {
            &lines[r.random_range(0..lines.len())]
        };
        let s = cut(&mut r, src);
        let q = recase(&mut r, &s);
        let low = s.to_lowercase();
        pairs.push(match i % 3 {
            0 => (
                (
                    format!("{agg} body ILIKE {}", sql_literal(&format!("%{q}%"))),
                    Vec::new(),
                ),
                (
                    format!("{agg} body ILIKE concat('%', {}, '%')", sql_literal(&q)),
                    Vec::new(),
                ),
            ),
            1 => (
                (
                    format!("{agg} strpos(lower(body), {}) > 0", sql_literal(&low)),
                    Vec::new(),
                ),
                (
                    format!("{agg} strpos(lower(body), {}) >= 1", sql_literal(&low)),
                    Vec::new(),
                ),
            ),
            _ => {
                let p = vec![("q".to_string(), Param::Text(low))];
                (
                    (format!("{agg} strpos(lower(body), $q) > 0"), p.clone()),
                    (format!("{agg} strpos(lower(body), $q) >= 1"), p),
                )
            }
        });
    }
    let (fast, plain): (Vec<Search>, Vec<Search>) = pairs.into_iter().unzip();
    let (a, b) = (answers(&store, &fast).await, answers(&store, &plain).await);
    for ((q, a), b) in fast.iter().zip(&a).zip(&b) {
        assert_eq!(a, b, "{q:?}");
    }
    for (search, function) in [
        (
            (format!("EXPLAIN {agg} body ILIKE '%k8s%'"), Vec::new()),
            "ophion_icontains",
        ),
        (
            (
                format!("EXPLAIN {agg} strpos(lower(body), $q) > 0"),
                vec![("q".to_string(), Param::Text("k8s".into()))],
            ),
            "ophion_lower_contains",
        ),
    ] {
        let plan = answers(&store, std::slice::from_ref(&search))
            .await
            .concat();
        assert!(plan.contains(function), "{}: {plan}", search.0);
    }
}

/// `[store.buffer] text_index = false`: snapshots and compaction write log
/// files without an index, and every search answers as it does over
/// indexed files of the same lines (reading every block).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_written_without_the_index_answer_the_same() {
    let mut r = StdRng::seed_from_u64(0x2545_f491_4f6c_dd1d);
    let mut lines: Vec<String> = (0..30_000).map(|_| line(&mut r)).collect();
    for (i, n) in NEEDLES.iter().enumerate() {
        lines[1_000 + i * 7_000] = (*n).to_string();
    }
    let searches = searches(&mut r, &lines);
    let mut results = Vec::new();
    for written in [true, false] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut c = config(dir.path(), true);
        c.buffer.text_index = written;
        let store = Store::open(c).await.expect("open");
        // Three snapshots, two of them merged (re-encoded) by compaction.
        for (i, chunk) in lines.chunks(10_000).enumerate() {
            write(&store, chunk, i * 10_000).await;
            store.flush().await.expect("flush");
            if i == 1 {
                assert!(store.compact().await.expect("compact") >= 1);
            }
        }
        let indexed = store
            .files()
            .iter()
            .filter(|f| {
                let bytes = std::fs::read(dir.path().join("parquet").join(&f.path)).expect("file");
                let reader =
                    parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(bytes))
                        .expect("parquet");
                ophion_store::persist::text_index_range(
                    parquet::file::reader::FileReader::metadata(&reader),
                )
                .is_some()
            })
            .count();
        let files = store.files().len();
        assert!(files >= 2, "{files} files");
        assert_eq!(
            indexed,
            if written { files } else { 0 },
            "text_index = {written}"
        );
        let answers = answers(&store, &searches).await;
        let skipped = store.stats().text_index_rows_skipped.load(Relaxed);
        assert_eq!(skipped > 0, written, "rows skipped: {skipped}");
        results.push(answers);
        store.close().await.expect("close");
    }
    for ((q, a), b) in searches.iter().zip(&results[0]).zip(&results[1]) {
        assert_eq!(a, b, "{q:?}");
    }
}
