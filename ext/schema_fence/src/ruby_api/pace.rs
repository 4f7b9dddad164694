//! The pace methods of `SchemaFence::Runner`: the health thresholds and optimizer options from a
//! Hash, the application's stop signal, and the decisions as Hashes for the Ruby events.

use std::time::Duration;

use magnus::{method, prelude::*, Error, RArray, RClass, RHash, Ruby, TryConvert};
use schema_fence::health::{HealthOptions, Signal};
use schema_fence::optimizer::OptimizerOptions;
use schema_fence::runner::Decision;

use super::errors;
use super::runner::Runner;

/// A value of `hash` at `key`, nil when absent.
fn get<T: TryConvert>(ruby: &Ruby, hash: RHash, key: &str) -> Result<Option<T>, Error> {
    hash.lookup::<_, Option<T>>(ruby.to_symbol(key))
}

fn invalid(ruby: &Ruby, key: &str, problem: String) -> Error {
    errors::raise(
        ruby,
        "InvalidArgumentError",
        format!("invalid {key}: {problem}"),
    )
}

/// Seconds (a positive number, nil for none) as a Duration.
fn seconds(ruby: &Ruby, hash: RHash, key: &str) -> Result<Option<Duration>, Error> {
    match get::<f64>(ruby, hash, key)? {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(invalid(ruby, key, format!("must be seconds >= 0, got {s}"))),
    }
}

fn positive<T: TryConvert + PartialOrd + Default + std::fmt::Display>(
    ruby: &Ruby,
    hash: RHash,
    key: &str,
) -> Result<Option<T>, Error> {
    match get::<T>(ruby, hash, key)? {
        Some(v) if v <= T::default() => {
            Err(invalid(ruby, key, format!("must be positive, got {v}")))
        }
        other => Ok(other),
    }
}

fn health_options(ruby: &Ruby, hash: RHash) -> Result<HealthOptions, Error> {
    let defaults = HealthOptions::default();
    Ok(HealthOptions {
        enabled: get(ruby, hash, "enabled")?.unwrap_or(defaults.enabled),
        cache: seconds(ruby, hash, "cache")?.unwrap_or(defaults.cache),
        hold_for: seconds(ruby, hash, "hold_for")?.unwrap_or(defaults.hold_for),
        autovacuum: get(ruby, hash, "autovacuum")?.unwrap_or(defaults.autovacuum),
        max_replication_lag_bytes: positive(ruby, hash, "max_replication_lag_bytes")?,
        max_replication_lag: seconds(ruby, hash, "max_replication_lag")?,
        max_wal_receiver_backlog_bytes: positive(ruby, hash, "max_wal_receiver_backlog_bytes")?,
        max_wal_rate_bytes: positive(ruby, hash, "max_wal_rate_bytes")?,
        max_archive_backlog: positive(ruby, hash, "max_archive_backlog")?,
        max_transaction_age: seconds(ruby, hash, "max_transaction_age")?,
    })
}

fn optimizer_options(ruby: &Ruby, hash: RHash) -> Result<OptimizerOptions, Error> {
    let defaults = OptimizerOptions::default();
    let options = OptimizerOptions {
        enabled: get(ruby, hash, "enabled")?.unwrap_or(defaults.enabled),
        min_batch_size: positive(ruby, hash, "min_batch_size")?.unwrap_or(defaults.min_batch_size),
        max_batch_size: positive(ruby, hash, "max_batch_size")?.unwrap_or(defaults.max_batch_size),
        ..defaults
    };
    if options.min_batch_size > options.max_batch_size {
        return Err(invalid(
            ruby,
            "min_batch_size",
            format!(
                "{} is above max_batch_size {}",
                options.min_batch_size, options.max_batch_size
            ),
        ));
    }
    Ok(options)
}

fn set_pace(ruby: &Ruby, rb_self: &Runner, health: RHash, optimizer: RHash) -> Result<(), Error> {
    let (health, optimizer) = (
        health_options(ruby, health)?,
        optimizer_options(ruby, optimizer)?,
    );
    rb_self.core().set_pace(health, optimizer);
    Ok(())
}

/// `[indicator, reason]`, or nil when the application's indicators say go.
fn set_external_signal(rb_self: &Runner, signal: Option<(String, String)>) {
    let signal = signal.map(|(indicator, reason)| Signal { indicator, reason });
    rb_self.core().set_external_signal(signal);
}

fn take_decisions(ruby: &Ruby, rb_self: &Runner) -> Result<RArray, Error> {
    let array = ruby.ary_new();
    for decision in rb_self.core().take_decisions() {
        let hash = ruby.hash_new();
        match decision {
            Decision::Held {
                migration_id,
                table_name,
                signal,
                until,
            } => {
                hash.aset(ruby.to_symbol("kind"), ruby.to_symbol("held"))?;
                hash.aset(ruby.to_symbol("migration_id"), migration_id)?;
                hash.aset(ruby.to_symbol("table_name"), table_name)?;
                hash.aset(
                    ruby.to_symbol("indicator"),
                    ruby.to_symbol(&signal.indicator),
                )?;
                hash.aset(ruby.to_symbol("reason"), signal.reason)?;
                hash.aset(ruby.to_symbol("on_hold_until"), until)?;
            }
            Decision::Optimized {
                migration_id,
                job_id,
                efficiency,
                from,
                to,
            } => {
                hash.aset(ruby.to_symbol("kind"), ruby.to_symbol("optimized"))?;
                hash.aset(ruby.to_symbol("migration_id"), migration_id)?;
                hash.aset(ruby.to_symbol("job_id"), job_id)?;
                hash.aset(ruby.to_symbol("efficiency"), efficiency)?;
                hash.aset(ruby.to_symbol("from"), from)?;
                hash.aset(ruby.to_symbol("to"), to)?;
            }
            Decision::OptimizerFailed {
                migration_id,
                error,
            } => {
                hash.aset(ruby.to_symbol("kind"), ruby.to_symbol("optimizer_failed"))?;
                hash.aset(ruby.to_symbol("migration_id"), migration_id)?;
                hash.aset(ruby.to_symbol("error"), error)?;
            }
        }
        array.push(hash)?;
    }
    Ok(array)
}

pub(crate) fn init(runner: &RClass) -> Result<(), Error> {
    runner.define_method("_set_pace", method!(set_pace, 2))?;
    runner.define_method("_set_external_signal", method!(set_external_signal, 1))?;
    runner.define_method("_take_decisions", method!(take_decisions, 0))?;
    Ok(())
}
