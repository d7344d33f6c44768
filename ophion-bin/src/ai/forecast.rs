//! Forecasts of one series per minute: a RED series of a service (or of
//! one of its operations), or a stored metric, read over a history window
//! and extrapolated with [`ophion_ai::forecast`] (seasonal when a period
//! is found, with intervals from replayed past forecasts): what
//! `GET /api/v1/ai/forecast` serves and the dashboard's insights page
//! draws.

use ophion_ai::{
    forecast::{ForecastConfig, forecast},
    red::{METRICS, values},
};
use ophion_core::TenantId;
use serde_json::{Value, json};

use super::{
    AiService,
    red::{self, MINUTE_NS, Per},
};
use crate::read::{Range, ReadError, metrics, ts_text};

/// Longest horizon, in minutes (one day).
pub const MAX_HORIZON: usize = 1440;
/// Longest history, in minutes (two weeks: a weekly shape is seen twice).
pub const MAX_HISTORY: i64 = 14 * 1440;

/// What to forecast.
#[derive(Debug, Clone)]
pub struct ForecastRequest {
    /// `requests`, `error_ratio`, `p95_ms` (RED, of `service`), or a
    /// metric's name.
    pub series: String,
    /// The service (required for RED series).
    pub service: Option<String>,
    /// One operation of the service (RED series only).
    pub operation: Option<String>,
    /// The history read; whole minutes (a partial last minute is left out).
    pub history: Range,
    /// Minutes forecast.
    pub horizon: usize,
}

impl AiService {
    /// The history per minute and its forecast with intervals, as JSON:
    /// `{series, service, operation, period_minutes, history: [[time,
    /// value|null]], forecast: [{time, value, lower, upper}]}`. RED values
    /// and counts never go below zero, nor do their intervals.
    pub async fn forecast(
        &self,
        tenant: &TenantId,
        req: &ForecastRequest,
    ) -> Result<Value, ReadError> {
        if req.horizon == 0 || req.horizon > MAX_HORIZON {
            return Err(ReadError::BadRequest(format!(
                "horizon: 1 to {MAX_HORIZON} minutes"
            )));
        }
        let first = req.history.from.div_euclid(MINUTE_NS);
        let end = req.history.to.div_euclid(MINUTE_NS);
        if end - first < 2 || end - first > MAX_HISTORY {
            return Err(ReadError::BadRequest(format!(
                "the history must hold 2 to {MAX_HISTORY} whole minutes"
            )));
        }
        let range = Range {
            from: first * MINUTE_NS,
            to: end * MINUTE_NS,
        };
        let minutes = (end - first) as usize;
        let (history, non_negative) = match METRICS.iter().position(|m| *m == req.series) {
            Some(which) => (self.red_history(tenant, req, range, which).await?, true),
            None => (self.metric_history(tenant, req, range).await?, false),
        };
        debug_assert_eq!(history.len(), minutes);
        let f = forecast(&history, req.horizon, &ForecastConfig::default());
        let floor = |v: f64| if non_negative { v.max(0.0) } else { v };
        let at = |i: i64| ts_text((first + i) * MINUTE_NS);
        let history: Vec<Value> = history
            .iter()
            .enumerate()
            .map(|(i, v)| json!([at(i as i64), v.is_finite().then_some(*v)]))
            .collect();
        let ahead: Vec<Value> = (0..req.horizon)
            .map(|k| {
                json!({
                    "time": at((minutes + k) as i64),
                    "value": floor(f.point[k]),
                    "lower": floor(f.lower[k]),
                    "upper": floor(f.upper[k]),
                })
            })
            .collect();
        Ok(json!({
            "series": req.series,
            "service": req.service,
            "operation": req.operation,
            "step_seconds": 60,
            "period_minutes": f.period,
            "history": history,
            "forecast": ahead,
        }))
    }

    /// One RED value per minute of `range`: a minute without requests is
    /// 0 requests and an unknown ratio or latency (NaN).
    async fn red_history(
        &self,
        tenant: &TenantId,
        req: &ForecastRequest,
        range: Range,
        which: usize,
    ) -> Result<Vec<f64>, ReadError> {
        let service = req.service.as_deref().ok_or_else(|| {
            ReadError::BadRequest(format!(
                "`{}` is a RED series: name the service",
                req.series
            ))
        })?;
        let per = match req.operation {
            Some(_) => Per::Operation,
            None => Per::Service,
        };
        let all = red::series(&self.reader, tenant, range, per, Some(service)).await?;
        let key = (
            service.to_owned(),
            req.operation.clone().unwrap_or_default(),
        );
        let first = range.from / MINUTE_NS;
        let by_minute = all.get(&key);
        Ok((first..range.to / MINUTE_NS)
            .map(|m| {
                values(
                    &by_minute
                        .and_then(|s| s.get(&m))
                        .copied()
                        .unwrap_or_default(),
                )[which]
            })
            .collect())
    }

    /// The metric per minute, aggregated the way its type calls for;
    /// minutes without points are NaN.
    async fn metric_history(
        &self,
        tenant: &TenantId,
        req: &ForecastRequest,
        range: Range,
    ) -> Result<Vec<f64>, ReadError> {
        if req.operation.is_some() {
            return Err(ReadError::BadRequest(
                "operation applies to the RED series only".into(),
            ));
        }
        let s = metrics::series(
            &self.reader,
            tenant,
            &metrics::SeriesRequest {
                name: &req.series,
                agg: None,
                step: MINUTE_NS,
                range,
                group_by: &[],
                service: req.service.as_deref(),
            },
        )
        .await?;
        if s.kind.is_none() {
            return Err(ReadError::BadRequest(format!(
                "no series `{}` in the history: use {} (of a service) or a stored metric's name",
                req.series,
                METRICS.join(", ")
            )));
        }
        let mut out = vec![f64::NAN; ((range.to - range.from) / MINUTE_NS) as usize];
        for (_, points) in &s.series {
            for &(t, v) in points {
                if let Some(slot) = usize::try_from((t - range.from) / MINUTE_NS)
                    .ok()
                    .and_then(|i| out.get_mut(i))
                {
                    *slot = v;
                }
            }
        }
        Ok(out)
    }
}
