//! A long transaction holds back the xmin horizon: nothing a batch updates can be vacuumed
//! while it lasts, so every batch is bloat.

use super::{HealthOptions, Reading, Signal};

pub(super) fn evaluate(reading: &Reading, options: &HealthOptions) -> Option<Signal> {
    let (pid, age, state) = reading.oldest_transaction.as_ref()?;
    let max = options.max_transaction_age?.as_secs_f64();
    (*age > max).then(|| {
        Signal::new(
            "long_transaction",
            format!(
                "transaction of pid {pid} ({}) has been open {age:.0} s, holding back the xmin \
                 horizon (limit {max:.0} s)",
                state.as_deref().unwrap_or("unknown state")
            ),
        )
    })
}
