//! Metric points as time series, aggregated per step and group in memory:
//! - `avg`, `sum`, `min`, `max` of gauge and sum values;
//! - `rate`: increase per second of a sum. Cumulative series count their
//!   increase between consecutive points (a drop is a counter reset: the new
//!   value is the increase); a series' first point counts in full when the
//!   series started inside the range; delta points are added up;
//! - `p50`, `p95`, `p99` of histograms: bucket counts are merged per step
//!   (cumulative series by their increase, as above) and the quantile is
//!   interpolated linearly inside its bucket, as Prometheus'
//!   `histogram_quantile` does.
//!
//! `GET /api/v1/metrics/query` and the AI watch's metric series both come
//! from [`series`].

use std::collections::BTreeMap;

use ophion_core::TenantId;
use serde_json::Value;

use super::{Range, ReadError, Reader, attribute_key, json as to_json, text};

/// How points are aggregated per step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Agg {
    Avg,
    Sum,
    Min,
    Max,
    Rate,
    Quantile(f64),
}

/// The aggregations [`Agg::parse`] reads.
pub const AGGREGATIONS: [&str; 8] = ["avg", "sum", "min", "max", "rate", "p50", "p95", "p99"];

impl Agg {
    /// One of [`AGGREGATIONS`].
    pub fn parse(text: &str) -> Result<Self, ReadError> {
        Ok(match text {
            "avg" => Agg::Avg,
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "rate" => Agg::Rate,
            "p50" => Agg::Quantile(0.5),
            "p95" => Agg::Quantile(0.95),
            "p99" => Agg::Quantile(0.99),
            _ => {
                return Err(ReadError::BadRequest(format!(
                    "aggregation `{text}`: use one of {}",
                    AGGREGATIONS.join(", ")
                )));
            }
        })
    }
}

/// One point as read.
struct Point {
    t: i64,
    series: String,
    group: Vec<Value>,
    value: Option<f64>,
    cumulative: bool,
    /// The series started inside the range: its first point is all increase.
    fresh: bool,
    counts: Vec<f64>,
    bounds: Vec<f64>,
}

/// What accumulates in one (group, step) cell.
#[derive(Default)]
struct Cell {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
    counts: Vec<f64>,
    bounds: Vec<f64>,
}

impl Cell {
    fn add_value(&mut self, v: f64) {
        if self.n == 0 {
            self.min = v;
            self.max = v;
        }
        self.n += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn add_counts(&mut self, counts: &[f64], bounds: &[f64]) {
        if self.counts.len() < counts.len() {
            self.counts.resize(counts.len(), 0.0);
        }
        for (c, n) in self.counts.iter_mut().zip(counts) {
            *c += n;
        }
        if self.bounds.is_empty() {
            self.bounds = bounds.to_vec();
        }
        self.n += 1;
    }
}

/// The `q` quantile of a histogram with `bounds` (upper bounds of all but
/// the last, open bucket) and `counts`, interpolated inside its bucket.
pub fn histogram_quantile(q: f64, bounds: &[f64], counts: &[f64]) -> Option<f64> {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut seen = 0.0;
    for (i, &c) in counts.iter().enumerate() {
        if seen + c >= rank && c > 0.0 {
            let Some(&upper) = bounds.get(i) else {
                // The open top bucket: the highest finite bound is the best
                // answer there is.
                return bounds.last().copied();
            };
            let lower = if i == 0 {
                upper.min(0.0)
            } else {
                bounds[i - 1]
            };
            return Some(lower + (upper - lower) * (rank - seen) / c);
        }
        seen += c;
    }
    bounds.last().copied()
}

/// What [`series`] reads.
#[derive(Debug)]
pub struct SeriesRequest<'a> {
    /// The metric's name.
    pub name: &'a str,
    /// The aggregation; `None` picks the metric type's natural one: the
    /// average of a gauge or of a non-monotonic sum, the rate of a
    /// monotonic sum (a counter) and the p95 of a histogram.
    pub agg: Option<Agg>,
    /// Step in nanoseconds.
    pub step: i64,
    /// The points read.
    pub range: Range,
    /// Attribute keys (point or resource attributes) to group by.
    pub group_by: &'a [&'a str],
    /// Only this service's points.
    pub service: Option<&'a str>,
}

/// Points `(step start in ns, value)`.
pub type Points = Vec<(i64, f64)>;

/// One metric as series: its type (`None` when it has no points in the
/// range) and, per group (the values of the group-by keys, in order), the
/// points `(step start in ns, value)` of the steps that have one.
#[derive(Debug)]
pub struct Series {
    /// The metric's type.
    pub kind: Option<String>,
    /// Per group, its points.
    pub series: Vec<(Vec<Value>, Points)>,
}

/// Reads one metric in a range and aggregates it per step and group (see
/// the module documentation for what each aggregation means).
pub async fn series(
    reader: &Reader,
    tenant: &TenantId,
    req: &SeriesRequest<'_>,
) -> Result<Series, ReadError> {
    let (range, step) = (req.range, req.step);
    let len = range.to.saturating_sub(range.from);
    let steps = len / step + i64::from(len % step != 0);
    if steps > 10_000 {
        return Err(ReadError::BadRequest(
            "more than 10000 steps: use a larger step or a shorter range".into(),
        ));
    }
    let keys: Vec<&str> = req
        .group_by
        .iter()
        .map(|k| attribute_key(k))
        .collect::<Result<_, _>>()?;
    let mut p = range.filter("timestamp");
    p.filter("metric_name = $name", "name", text(req.name));
    if let Some(v) = req.service {
        p.filter("service_name = $service", "service", text(v));
    }
    let groups: String = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!(", coalesce(attributes['{k}'], resource_attributes['{k}']) AS g{i}"))
        .collect();
    let sql = format!(
        "SELECT CAST(timestamp AS BIGINT) AS t, CAST(start_timestamp AS BIGINT) AS st, metric_type, aggregation_temporality, is_monotonic, value, \
         bucket_counts, explicit_bounds, attributes, resource_attributes{groups} \
         FROM metrics WHERE {} ORDER BY timestamp",
        p.conditions()
    );
    let out = reader.sql(tenant, &sql, &p).await?;
    let rows = to_json::objects(&out.batches);
    let Some(first) = rows.first() else {
        return Ok(Series {
            kind: None,
            series: Vec::new(),
        });
    };
    let kind = first
        .get("metric_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let monotonic = first.get("is_monotonic").and_then(Value::as_bool) == Some(true);
    let agg = match (req.agg, kind.as_str()) {
        (Some(a), _) => a,
        (None, "histogram") => Agg::Quantile(0.95),
        (None, "sum") if monotonic => Agg::Rate,
        (None, _) => Agg::Avg,
    };
    match (agg, kind.as_str()) {
        (Agg::Quantile(_), "histogram") => {}
        (Agg::Quantile(_), _) => {
            return Err(ReadError::BadRequest(format!(
                "p50/p95/p99 need a histogram; {} is a {kind}",
                req.name
            )));
        }
        (Agg::Rate, "sum") => {}
        (Agg::Rate, _) => {
            return Err(ReadError::BadRequest(format!(
                "rate needs a sum (counter); {} is a {kind}",
                req.name
            )));
        }
        (_, "gauge" | "sum") => {}
        (_, _) => {
            return Err(ReadError::BadRequest(format!(
                "{} is a {kind}: use p50, p95 or p99",
                req.name
            )));
        }
    }
    let floats = |v: Option<&Value>| -> Vec<f64> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let points: Vec<Point> = rows
        .iter()
        .map(|r| Point {
            t: r.get("t").and_then(Value::as_i64).unwrap_or(0),
            series: format!(
                "{}|{}",
                r.get("attributes")
                    .map(Value::to_string)
                    .unwrap_or_default(),
                r.get("resource_attributes")
                    .map(Value::to_string)
                    .unwrap_or_default()
            ),
            group: (0..keys.len())
                .map(|i| r.get(&format!("g{i}")).cloned().unwrap_or(Value::Null))
                .collect(),
            value: r.get("value").and_then(Value::as_f64),
            cumulative: r.get("aggregation_temporality").and_then(Value::as_str)
                == Some("cumulative"),
            fresh: r
                .get("st")
                .and_then(Value::as_i64)
                .is_some_and(|st| st >= range.from),
            counts: floats(r.get("bucket_counts")),
            bounds: floats(r.get("explicit_bounds")),
        })
        .collect();

    // group -> step -> cell
    let mut cells: BTreeMap<String, (Vec<Value>, BTreeMap<i64, Cell>)> = BTreeMap::new();
    // series -> previous point (for cumulative increases)
    let mut previous: BTreeMap<&str, (Option<f64>, &[f64])> = BTreeMap::new();
    for pt in &points {
        let key = Value::Array(pt.group.clone()).to_string();
        let bucket = (pt.t - range.from) / step;
        let (_, steps) = cells
            .entry(key)
            .or_insert_with(|| (pt.group.clone(), BTreeMap::new()));
        let cell = steps.entry(bucket).or_default();
        match agg {
            Agg::Avg | Agg::Sum | Agg::Min | Agg::Max => {
                if let Some(v) = pt.value {
                    cell.add_value(v);
                }
            }
            Agg::Rate => {
                let Some(v) = pt.value else { continue };
                if pt.cumulative {
                    let before = previous
                        .insert(&pt.series, (Some(v), &[]))
                        .and_then(|p| p.0);
                    if let Some(b) = before {
                        cell.add_value(if v >= b { v - b } else { v });
                    }
                } else {
                    cell.add_value(v);
                }
            }
            Agg::Quantile(_) => {
                if pt.cumulative {
                    let before = previous.insert(&pt.series, (None, &pt.counts));
                    if before.is_none() && pt.fresh {
                        cell.add_counts(&pt.counts, &pt.bounds);
                    } else if let Some((_, b)) = before {
                        let reset = b.len() != pt.counts.len()
                            || pt.counts.iter().zip(b).any(|(n, o)| n < o);
                        let inc: Vec<f64> = if reset {
                            pt.counts.clone()
                        } else {
                            pt.counts.iter().zip(b).map(|(n, o)| n - o).collect()
                        };
                        cell.add_counts(&inc, &pt.bounds);
                    }
                } else {
                    cell.add_counts(&pt.counts, &pt.bounds);
                }
            }
        }
    }
    let step_secs = step as f64 / 1e9;
    let series = cells
        .into_values()
        .map(|(group, steps)| {
            let points = steps
                .into_iter()
                .filter(|(_, c)| c.n > 0)
                .filter_map(|(b, c)| {
                    let v = match agg {
                        Agg::Avg => Some(c.sum / c.n as f64),
                        Agg::Sum => Some(c.sum),
                        Agg::Min => Some(c.min),
                        Agg::Max => Some(c.max),
                        Agg::Rate => Some(c.sum / step_secs),
                        Agg::Quantile(q) => histogram_quantile(q, &c.bounds, &c.counts),
                    }?;
                    Some((range.from + b * step, v))
                })
                .collect();
            (group, points)
        })
        .collect();
    Ok(Series {
        kind: Some(kind),
        series,
    })
}

#[cfg(test)]
mod tests {
    use super::histogram_quantile;

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        // 10 observations in (0, 10], 10 in (10, 20], none above.
        let bounds = [10.0, 20.0];
        let counts = [10.0, 10.0, 0.0];
        assert_eq!(histogram_quantile(0.5, &bounds, &counts), Some(10.0));
        assert_eq!(histogram_quantile(0.25, &bounds, &counts), Some(5.0));
        assert_eq!(histogram_quantile(0.75, &bounds, &counts), Some(15.0));
        // Everything in the open top bucket: the highest bound.
        assert_eq!(
            histogram_quantile(0.9, &bounds, &[0.0, 0.0, 4.0]),
            Some(20.0)
        );
        assert_eq!(histogram_quantile(0.9, &bounds, &[0.0, 0.0, 0.0]), None);
    }
}
