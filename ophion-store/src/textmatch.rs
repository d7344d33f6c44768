//! Case-insensitive substring search without a regular expression.
//!
//! Arrow's `ILIKE` kernel serves `'%x%'` with a case-insensitive regular
//! expression, and `strpos(lower(body), 'x') > 0` (the API's and the
//! copilot's text search) lower-cases every body into a new string first;
//! both cost about twice a case-sensitive `LIKE` (measured in
//! `benches/log_search.rs`). An analyzer rule ([`rewrite`]) turns the two
//! shapes into functions that fold ASCII case on the fly, finding the
//! needle's rarest byte in either case with `memchr2` and comparing the
//! window around it, without copying the text:
//!
//! - `col ILIKE '%x%'` (`x` ASCII, without wildcards or escapes) becomes
//!   [`ICONTAINS`]`(col, 'x')`;
//! - `strpos(lower(col), 'x') > 0` becomes [`LOWER_CONTAINS`]`(col, 'x')`.
//!
//! Results never change: a row that is not all ASCII is answered the
//! original way (Arrow's `ilike` kernel; Rust's `to_lowercase`, which is
//! DataFusion's `lower`), because Unicode case rules let non-ASCII
//! characters match ASCII ones (the Kelvin sign matches `k`; `İ`
//! lower-cases to `i` and a combining dot). The text index
//! ([`crate::textindex`]) reads both functions like the shapes they
//! replace.

use std::sync::{Arc, LazyLock};

use arrow_array::{Array, ArrayRef, BooleanArray, Datum, Scalar, StringArray, cast::AsArray};
use arrow_schema::DataType;
use datafusion::{
    arrow::compute::kernels::comparison::ilike,
    common::{DFSchema, ScalarValue, tree_node::Transformed},
    error::{DataFusionError, Result},
    logical_expr::{
        BinaryExpr, ColumnarValue, Expr, ExprSchemable, Operator, ScalarFunctionArgs, ScalarUDF,
        ScalarUDFImpl, Signature, Volatility, expr::Like,
    },
};

/// `ICONTAINS(col, 'x')`: `col ILIKE '%x%'` for an ASCII `x` without
/// wildcards.
pub(crate) const ICONTAINS: &str = "ophion_icontains";
/// `LOWER_CONTAINS(col, 'x')`: `strpos(lower(col), 'x') > 0`.
pub(crate) const LOWER_CONTAINS: &str = "ophion_lower_contains";

/// One of the two searches.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FoldedContains {
    /// `true`: [`LOWER_CONTAINS`]; `false`: [`ICONTAINS`].
    lower: bool,
    signature: Signature,
}

impl FoldedContains {
    /// The function, made once per process for each of the two searches.
    fn udf(lower: bool) -> Arc<ScalarUDF> {
        fn make(lower: bool) -> Arc<ScalarUDF> {
            Arc::new(ScalarUDF::new_from_impl(FoldedContains {
                lower,
                signature: Signature::any(2, Volatility::Immutable),
            }))
        }
        static ICONTAINS_UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| make(false));
        static LOWER_CONTAINS_UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| make(true));
        Arc::clone(if lower {
            &LOWER_CONTAINS_UDF
        } else {
            &ICONTAINS_UDF
        })
    }
}

fn string_value(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => s.as_deref(),
        _ => None,
    }
}

/// How common a byte is in log text, roughly (higher: more common): the
/// byte of a needle a search looks for first is its rarest.
fn commonness(b: u8) -> u8 {
    const LETTERS: &[u8] = b"zqjxkvbpygfwmucldrhsnioate";
    match b.to_ascii_lowercase() {
        b' ' => 255,
        c @ b'a'..=b'z' => 40 + 4 * LETTERS.iter().position(|l| *l == c).unwrap_or(0) as u8,
        b'0'..=b'9' => 90,
        b'.' | b'/' | b':' | b'=' | b'-' | b'_' | b',' | b'"' => 120,
        _ => 20,
    }
}

/// An ASCII-case-insensitive substring search: `memchr2` finds the two
/// cases of the needle's rarest byte, and the window around each is
/// compared. No copy of the text is made.
#[derive(Debug)]
struct Caseless {
    needle: Vec<u8>,
    anchor: usize,
}

impl Caseless {
    fn new(needle: &[u8]) -> Self {
        let anchor = (0..needle.len())
            .min_by_key(|i| commonness(needle[*i]))
            .unwrap_or(0);
        Self {
            needle: needle.to_vec(),
            anchor,
        }
    }

    fn found_in(&self, haystack: &[u8]) -> bool {
        let n = self.needle.len();
        if n == 0 {
            return true;
        }
        if haystack.len() < n {
            return false;
        }
        let a = self.needle[self.anchor];
        let (lo, up) = (a.to_ascii_lowercase(), a.to_ascii_uppercase());
        // The anchor byte's possible places.
        let end = haystack.len() - n + self.anchor + 1;
        let mut at = self.anchor;
        while at < end {
            let Some(i) = memchr::memchr2(lo, up, &haystack[at..end]) else {
                return false;
            };
            let start = at + i - self.anchor;
            if haystack[start..start + n].eq_ignore_ascii_case(&self.needle) {
                return true;
            }
            at += i + 1;
        }
        false
    }
}

/// Both searches, for sessions that decode plans using them (the query
/// nodes running parts of another node's query, see `distributed`).
pub(crate) fn udfs() -> [Arc<ScalarUDF>; 2] {
    [FoldedContains::udf(false), FoldedContains::udf(true)]
}

impl ScalarUDFImpl for FoldedContains {
    fn name(&self) -> &str {
        if self.lower {
            LOWER_CONTAINS
        } else {
            ICONTAINS
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [haystack, needle] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(format!(
                "{} takes two arguments",
                self.name()
            )));
        };
        let ColumnarValue::Scalar(needle) = needle else {
            return Err(DataFusionError::Internal(format!(
                "{}: the needle must be a literal",
                self.name()
            )));
        };
        let Some(needle) = string_value(needle) else {
            // A NULL needle: NULL for every row, as the original shapes.
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
        };
        let haystack = haystack.to_array(args.number_rows)?;
        let values: Box<dyn Iterator<Item = Option<&str>>> = match haystack.data_type() {
            DataType::Utf8 => Box::new(haystack.as_string::<i32>().iter()),
            DataType::LargeUtf8 => Box::new(haystack.as_string::<i64>().iter()),
            DataType::Utf8View => Box::new(haystack.as_string_view().iter()),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "{}: not a string: {other}",
                    self.name()
                )));
            }
        };
        // LOWER_CONTAINS searches for the needle as given (an upper-case
        // letter in it matches nothing lower-cased); ICONTAINS folds it.
        // lower() of an ASCII row has no upper-case letter to match one.
        let ascii_rows_can_match = !self.lower || !needle.bytes().any(|b| b.is_ascii_uppercase());
        let search = Caseless::new(needle.as_bytes());
        let mut out = Vec::with_capacity(haystack.len());
        // Rows that are not all ASCII, answered the original way below.
        let mut unicode: Vec<(usize, &str)> = Vec::new();
        for (i, v) in values.enumerate() {
            out.push(match v {
                None => None,
                Some(s) if s.is_ascii() => {
                    Some(ascii_rows_can_match && search.found_in(s.as_bytes()))
                }
                Some(s) if self.lower => Some(s.to_lowercase().contains(needle)),
                Some(s) => {
                    unicode.push((i, s));
                    Some(false)
                }
            });
        }
        if !unicode.is_empty() {
            let rows = StringArray::from_iter_values(unicode.iter().map(|(_, s)| *s));
            let pattern = Scalar::new(StringArray::from(vec![format!("%{needle}%")]));
            let matched = ilike(&rows as &dyn Datum, &pattern)?;
            for ((i, _), m) in unicode.iter().zip(matched.iter()) {
                out[*i] = m;
            }
        }
        Ok(ColumnarValue::Array(
            Arc::new(BooleanArray::from(out)) as ArrayRef
        ))
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
}

fn literal_str(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(v, _) => string_value(v),
        _ => None,
    }
}

/// The type of `e` in the first of `inputs` that can tell it.
fn type_in(e: &Expr, inputs: &[&DFSchema]) -> Option<DataType> {
    inputs.iter().find_map(|s| e.get_type(*s).ok())
}

/// Rewrites `e` into [`ICONTAINS`] or [`LOWER_CONTAINS`] when it has one
/// of their shapes over a string column of `inputs`.
pub(crate) fn rewrite(e: Expr, inputs: &[&DFSchema]) -> Result<Transformed<Expr>> {
    match &e {
        Expr::Like(Like {
            negated,
            expr,
            pattern,
            escape_char: None | Some('\\'),
            case_insensitive: true,
        }) => {
            let Some(inner) = literal_str(pattern)
                .and_then(|p| p.strip_prefix('%'))
                .and_then(|p| p.strip_suffix('%'))
            else {
                return Ok(Transformed::no(e));
            };
            if !inner.is_ascii()
                || inner.contains(['%', '_', '\\'])
                || !type_in(expr, inputs).is_some_and(|t| is_string(&t))
            {
                return Ok(Transformed::no(e));
            }
            let call = FoldedContains::udf(false).call(vec![
                (**expr).clone(),
                Expr::Literal(ScalarValue::Utf8(Some(inner.to_string())), None),
            ]);
            Ok(Transformed::yes(if *negated {
                Expr::Not(Box::new(call))
            } else {
                call
            }))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Gt,
            right,
        }) => {
            let zero = matches!(
                right.as_ref(),
                Expr::Literal(ScalarValue::Int64(Some(0)) | ScalarValue::Int32(Some(0)), _)
            );
            let Expr::ScalarFunction(strpos) = left.as_ref() else {
                return Ok(Transformed::no(e));
            };
            if !zero || strpos.name() != "strpos" || strpos.args.len() != 2 {
                return Ok(Transformed::no(e));
            }
            let (Expr::ScalarFunction(lower), Some(needle)) =
                (&strpos.args[0], literal_str(&strpos.args[1]))
            else {
                return Ok(Transformed::no(e));
            };
            if lower.name() != "lower"
                || lower.args.len() != 1
                || !type_in(&lower.args[0], inputs).is_some_and(|t| is_string(&t))
            {
                return Ok(Transformed::no(e));
            }
            Ok(Transformed::yes(FoldedContains::udf(true).call(vec![
                lower.args[0].clone(),
                Expr::Literal(ScalarValue::Utf8(Some(needle.to_string())), None),
            ])))
        }
        _ => Ok(Transformed::no(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::Field;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// Runs one of the functions over `rows`.
    fn run(lower: bool, rows: &[Option<String>], needle: &str) -> Vec<Option<bool>> {
        let f = FoldedContains::udf(lower);
        let array: ArrayRef = Arc::new(arrow_array::StringViewArray::from(
            rows.iter().map(|r| r.as_deref()).collect::<Vec<_>>(),
        ));
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(array),
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(needle.to_string()))),
            ],
            arg_fields: vec![
                Arc::new(Field::new("body", DataType::Utf8View, true)),
                Arc::new(Field::new("needle", DataType::Utf8, true)),
            ],
            number_rows: rows.len(),
            return_field: Arc::new(Field::new("out", DataType::Boolean, true)),
            config_options: Arc::new(Default::default()),
        };
        let out = f.invoke_with_args(args).expect("invoke");
        let ColumnarValue::Array(a) = out else {
            panic!("an array")
        };
        a.as_boolean().iter().collect()
    }

    /// Characters that test the folding: ASCII letters of both cases and
    /// the non-ASCII ones Unicode case rules tie to them or change in
    /// length (Kelvin sign, long s, dotted and dotless i, sharp s, final
    /// sigma, a ligature, a combining dot).
    const ALPHABET: &[char] = &[
        'a', 'b', 'k', 's', 'i', 'A', 'B', 'K', 'S', 'I', ' ', '-', '_', '%', '1', '\u{212A}',
        '\u{17F}', '\u{130}', '\u{131}', '\u{DF}', '\u{3A3}', '\u{3C2}', '\u{FB00}', '\u{307}',
        'é', 'É',
    ];

    fn random_text(r: &mut StdRng, len: usize, ascii: bool) -> String {
        (0..len)
            .map(|_| {
                loop {
                    let c = ALPHABET[r.random_range(0..ALPHABET.len())];
                    if !ascii || c.is_ascii() {
                        break c;
                    }
                }
            })
            .collect()
    }

    #[test]
    fn both_functions_answer_as_the_shapes_they_replace() {
        let mut r = StdRng::seed_from_u64(20);
        for round in 0..400 {
            let rows: Vec<Option<String>> = (0..40)
                .map(|i| {
                    (i % 13 != 0).then(|| {
                        let len = r.random_range(0..24);
                        random_text(&mut r, len, i % 3 == 0)
                    })
                })
                .collect();
            // Needles cut from a row, or random.
            let needle = match rows[round % 40].as_deref() {
                Some(row) if round % 2 == 0 && !row.is_empty() => {
                    let chars: Vec<char> = row.chars().collect();
                    let from = r.random_range(0..chars.len());
                    let to = r.random_range(from..=chars.len());
                    chars[from..to].iter().collect()
                }
                _ => {
                    let len = r.random_range(1..4);
                    random_text(&mut r, len, false)
                }
            };
            // LOWER_CONTAINS against lower() and strpos, for any needle.
            let lowered = needle.to_lowercase();
            for n in [&needle, &lowered] {
                let want: Vec<Option<bool>> = rows
                    .iter()
                    .map(|row| row.as_ref().map(|s| s.to_lowercase().contains(n.as_str())))
                    .collect();
                assert_eq!(
                    run(true, &rows, n),
                    want,
                    "lower contains {n:?} in {rows:?}"
                );
            }
            // ICONTAINS against Arrow's ILIKE, for the needles it serves.
            if needle.is_ascii() && !needle.contains(['%', '_', '\\']) {
                let array = StringArray::from(rows.clone());
                let pattern = Scalar::new(StringArray::from(vec![format!("%{needle}%")]));
                let want: Vec<Option<bool>> =
                    ilike(&array, &pattern).expect("ilike").iter().collect();
                assert_eq!(
                    run(false, &rows, &needle),
                    want,
                    "ilike {needle:?} in {rows:?}"
                );
            }
        }
    }
}
