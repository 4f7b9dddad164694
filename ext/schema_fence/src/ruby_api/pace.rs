//! The pace methods of `SchemaFence::Runner`: the health thresholds and optimizer options from a
//! Hash, the application's stop signal, and the decisions as Hashes for the Ruby events.

use magnus::{method, prelude::*, Error, RArray, RClass, RHash, Ruby};
use schema_fence::health::{HealthOptions, HealthSettings, OptimizerSettings, Signal};
use schema_fence::optimizer::OptimizerOptions;
use schema_fence::runner::Decision;

use super::errors;
use super::options::Options;
use super::runner::Runner;

fn health_options(ruby: &Ruby, hash: RHash) -> Result<HealthOptions, Error> {
    let mut read = Options::new(ruby, hash, "health");
    let settings = HealthSettings {
        enabled: read.get("enabled")?,
        cache_seconds: read.get("cache")?,
        hold_for_seconds: read.get("hold_for")?,
        autovacuum: read.get("autovacuum")?,
        max_replication_lag_bytes: read.get("max_replication_lag_bytes")?,
        max_replication_lag_seconds: read.get("max_replication_lag")?,
        max_wal_receiver_backlog_bytes: read.get("max_wal_receiver_backlog_bytes")?,
        max_wal_rate_bytes: read.get("max_wal_rate_bytes")?,
        max_archive_backlog: read.get("max_archive_backlog")?,
        max_transaction_age_seconds: read.get("max_transaction_age")?,
    };
    read.finish()?;
    settings.options().map_err(|e| errors::to_ruby(ruby, e))
}

fn optimizer_options(ruby: &Ruby, hash: RHash) -> Result<OptimizerOptions, Error> {
    let mut read = Options::new(ruby, hash, "optimizer");
    let settings = OptimizerSettings {
        enabled: read.get("enabled")?,
        min_batch_size: read.get("min_batch_size")?,
        max_batch_size: read.get("max_batch_size")?,
    };
    read.finish()?;
    settings.options().map_err(|e| errors::to_ruby(ruby, e))
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
