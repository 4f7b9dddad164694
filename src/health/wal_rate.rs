//! WAL written per second, from the positions of two readings: a migration adding to a burst
//! of WAL makes replicas and the archive fall behind.

use super::{HealthOptions, Reading, Signal, WalSample};

/// Readings closer together than this keep the previous rate: the quotient of two nearby
/// positions says more about one statement than about the load.
const MIN_SPAN_SECS: f64 = 0.5;

/// The rate since the previous sample; updates `wal` with this reading.
pub(super) fn rate(reading: &Reading, wal: &mut WalSample) -> Option<f64> {
    let lsn = reading.wal_lsn?;
    if wal.at == 0.0 {
        *wal = WalSample {
            at: reading.at,
            lsn,
            rate: None,
        };
        return None;
    }
    let span = reading.at - wal.at;
    if span >= MIN_SPAN_SECS {
        let rate = ((lsn - wal.lsn) / span).max(0.0);
        *wal = WalSample {
            at: reading.at,
            lsn,
            rate: Some(rate),
        };
    }
    wal.rate
}

pub(super) fn evaluate(rate: Option<f64>, options: &HealthOptions) -> Option<Signal> {
    let (rate, max) = (rate?, options.max_wal_rate_bytes?);
    (rate > max).then(|| {
        Signal::new(
            "wal_rate",
            format!("the database writes {rate:.0} bytes of WAL per second (limit {max:.0})"),
        )
    })
}
