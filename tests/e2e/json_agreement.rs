//! Property: for any generated request, the receiver's OTLP/JSON decoder
//! reads what an independent encoder (`opentelemetry-proto`'s serde
//! support) wrote back into exactly the original protobuf message.

use ophion_core::testing::Generator;
use ophion_receiver::json;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn json_decoder_agrees_with_the_reference_encoder(seed in any::<u64>(), n in 1usize..60) {
        let mut g = Generator::new(seed, T0);
        let traces = g.traces(n);
        let doc = serde_json::to_vec(&traces).expect("serialize");
        prop_assert_eq!(json::decode_traces(&doc).expect("decode"), traces);
        let logs = g.logs(n);
        let doc = serde_json::to_vec(&logs).expect("serialize");
        prop_assert_eq!(json::decode_logs(&doc).expect("decode"), logs);
        let metrics = g.metrics(n);
        let doc = serde_json::to_vec(&metrics).expect("serialize");
        prop_assert_eq!(json::decode_metrics(&doc).expect("decode"), metrics);
    }
}
