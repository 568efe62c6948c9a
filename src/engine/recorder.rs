//! The recorder: writes finished attempts, the deliveries' new states and alerts in batched
//! transactions, and tells the activity feed.

use super::activity::Activity;
use super::{metrics, Engine};
use crate::store::attempts::{AttemptRecord, EndpointEffect};
use std::time::Duration;
use tokio::sync::mpsc;

/// Where workers hand finished attempts to the recorder.
pub(super) type RecorderTx = mpsc::UnboundedSender<(AttemptRecord, Activity)>;

/// Writes finished attempts in batches; retries a failed write rather than losing it.
///
/// When only a few attempts are waiting it gives the others a millisecond to finish: a
/// transaction per handful of attempts would keep the one writer from claiming.
pub(super) async fn recorder(
    engine: Engine,
    mut rx: mpsc::UnboundedReceiver<(AttemptRecord, Activity)>,
) {
    let inner = &engine.inner;
    let most = inner.store.tuning().record_batch;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        for round in 0..2 {
            while batch.len() < most {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            if round == 0
                && batch.len() < 64
                && inner.global.available_permits() < inner.config.concurrency.max(1)
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                break;
            }
        }
        let records: Vec<AttemptRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
        let mut delay = Duration::from_millis(50);
        loop {
            match inner.store.record_attempts(&records).await {
                Ok(0) => break,
                Ok(stale) => {
                    tracing::warn!(
                        stale,
                        "attempts recorded after their lease was lost changed nothing"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not record attempts; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        let was_behind = {
            let mut st = engine.state();
            let was = st.recorder_behind();
            st.recorded(records.len());
            was
        };
        if was_behind {
            // Claiming paused for the recorder; it may go on.
            inner.wake.notify_one();
        }
        let mut activity = Vec::with_capacity(batch.len());
        for (rec, act) in batch {
            inner
                .metrics
                .attempts
                .get_or_create(&metrics::OutcomeLabel {
                    outcome: rec.new_status.as_str().to_string(),
                })
                .inc();
            if let Some((kind, message)) = &rec.alert {
                tracing::warn!(shop_id = %rec.shop_id, kind, message, "alert");
            }
            activity.push(act);
        }
        if engine.activity_wanted() {
            engine.publish_activity(activity);
        }
        for r in &records {
            if matches!(
                r.effect,
                EndpointEffect::Disable(_) | EndpointEffect::Delete(_)
            ) {
                engine.endpoint_changed(&r.endpoint_id).await;
            }
            if matches!(r.effect, EndpointEffect::Delete(_)) {
                engine.forget_endpoint(&r.endpoint_id);
            }
        }
        if records
            .iter()
            .any(|r| r.new_status == app::model::DeliveryStatus::Retrying)
        {
            // A retry falls due sooner than the dispatcher may be waiting.
            engine.wake();
        }
    }
}
