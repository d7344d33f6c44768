//! Fuzzing harness for the decoders and converters of outside input
//! (protobuf and JSON, all three signals).
//!
//! Each case mutates a valid encoded request (bit flips, truncation, byte
//! insertion, splices of two requests, random bytes) and runs it through
//! `decode` and `convert_decoded`; a panic fails the test. The number of
//! cases comes from `OPHION_FUZZ_CASES` (default 2,000); the long run is
//! documented in docs/fuzzing.md:
//!
//! ```text
//! OPHION_FUZZ_CASES=1000000 cargo test --release -p ophion-receiver --test fuzz -- --nocapture
//! ```

use ophion_core::{Signal, testing::Generator};
use ophion_receiver::{Limits, convert::TimeWindow, convert_decoded, decode};
use prost::Message as _;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<(Signal, bool, Vec<u8>)> {
    let t0 = 1_700_000_000_000_000_000;
    let mut g = Generator::new(42, t0);
    let traces = g.traces(8);
    let logs = g.logs(8);
    let metrics = g.metrics(8);
    let json_span = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"s"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","kind":2,"startTimeUnixNano":"{t0}","endTimeUnixNano":{t0},"attributes":[{{"key":"a","value":{{"arrayValue":{{"values":[{{"intValue":"1"}},{{"kvlistValue":{{"values":[{{"key":"b","value":{{"doubleValue":1.5}}}}]}}}}]}}}}}}],"events":[{{"timeUnixNano":"{t0}","name":"e"}}],"links":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}}],"status":{{"code":2,"message":"m"}}}}]}}]}}]}}"#
    );
    let json_log = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{t0}","severityNumber":9,"body":{{"kvlistValue":{{"values":[{{"key":"k","value":{{"bytesValue":"AAE="}}}}]}}}},"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}}]}}]}}]}}"#
    );
    let json_metric = format!(
        r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"h","histogram":{{"aggregationTemporality":1,"dataPoints":[{{"timeUnixNano":"{t0}","count":"3","sum":2.5,"bucketCounts":["1","2"],"explicitBounds":[1.0]}}]}}}},{{"name":"e","exponentialHistogram":{{"dataPoints":[{{"timeUnixNano":"{t0}","count":"1","scale":2,"positive":{{"offset":-1,"bucketCounts":["1"]}}}}]}}}},{{"name":"s","summary":{{"dataPoints":[{{"timeUnixNano":"{t0}","quantileValues":[{{"quantile":0.5,"value":1}}]}}]}}}}]}}]}}]}}"#
    );
    vec![
        (Signal::Traces, true, traces.encode_to_vec()),
        (Signal::Logs, true, logs.encode_to_vec()),
        (Signal::Metrics, true, metrics.encode_to_vec()),
        (Signal::Traces, false, json_span.into_bytes()),
        (Signal::Logs, false, json_log.into_bytes()),
        (Signal::Metrics, false, json_metric.into_bytes()),
    ]
}

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    match rng.below(6) {
        0 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(v.len());
                if let Some(b) = v.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
        }
        1 => v.truncate(rng.below(v.len())),
        2 => {
            let i = rng.below(v.len() + 1);
            let junk: Vec<u8> = (0..=rng.below(16)).map(|_| rng.next() as u8).collect();
            v.splice(i..i, junk);
        }
        3 => {
            let (a, b) = (rng.below(v.len()), rng.below(other.len()));
            v.truncate(a);
            v.extend_from_slice(&other[b..]);
        }
        4 => {
            // Interesting bytes: varint continuation, quotes, braces, big lengths.
            const SPECIAL: &[u8] = &[
                0xff, 0x80, 0x00, b'"', b'{', b'[', b'\\', b'9', b'-', 0x0a, 0x12,
            ];
            for _ in 0..=rng.below(4) {
                let i = rng.below(v.len());
                if let Some(b) = v.get_mut(i) {
                    *b = SPECIAL[rng.below(SPECIAL.len())];
                }
            }
        }
        _ => v = (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
    }
    v
}

#[test]
fn decoders_and_converters_never_panic() {
    let cases: usize = std::env::var("OPHION_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let seeds = seeds();
    let limits = Limits::default();
    let mut rng = Rng(0x0f1_0b5e_55ed);
    let (mut decoded, mut rows) = (0usize, 0usize);
    for case in 0..cases {
        let (signal, protobuf, input) = &seeds[case % seeds.len()];
        let (_, _, other) = &seeds[rng.below(seeds.len())];
        let bytes = mutate(&mut rng, input, other);
        if let Ok(req) = decode(*signal, *protobuf, &bytes) {
            decoded += 1;
            let c = convert_decoded(&req, &limits, TimeWindow::ALL, 1_700_000_000_000_000_000);
            rows += c.accepted();
            if let Some(b) = &c.batch {
                assert_eq!(b.schema(), signal.schema());
            }
        }
    }
    println!("{cases} cases, {decoded} decoded, {rows} rows converted");
    assert!(
        decoded > 0 && decoded < cases,
        "mutations should both pass and fail decoding"
    );
}
