//! `SchemaFence::Store`: the tracking store on a Ruby `PG::Connection` (a Rails migration's own
//! connection, inside its transaction) or on a PostgreSQL URL (the core's own connection, with
//! the GVL released). The Ruby API (`Install`, `Migrations`, the migration DSL) sits on top.

use magnus::{function, prelude::*, Error, IntoValue, RArray, RModule, RString, Ruby, Value};
use schema_fence::store::{self, Db, QueueOutcome, QueueRequest, Row};

use super::dictionary::Dictionary;
use super::{errors, gvl};

/// [`Db`] over a Ruby `PG::Connection`: `exec_params` with text parameters, text results.
/// A Ruby exception is kept and re-raised as itself, so callers see `PG::Error`s unchanged.
struct RubyConnection<'a> {
    ruby: &'a Ruby,
    conn: Value,
    raised: Option<Error>,
}

impl RubyConnection<'_> {
    fn all_strings(&self) -> Result<Value, Error> {
        let pg: RModule = self.ruby.class_object().const_get("PG")?;
        let class: magnus::RClass = pg.const_get("TypeMapAllStrings")?;
        class.new_instance(())
    }

    fn keep(&mut self, e: Error) -> schema_fence::Error {
        let message = e.to_string();
        self.raised = Some(e);
        schema_fence::Error::Database {
            message,
            sqlstate: None,
        }
    }
}

impl Db for RubyConnection<'_> {
    fn query(&mut self, sql: &str, params: &[Option<&str>]) -> schema_fence::Result<Vec<Row>> {
        let args = self.ruby.ary_new_capa(params.len());
        for p in params {
            let value = match p {
                Some(s) => self.ruby.str_new(s).as_value(),
                None => self.ruby.qnil().as_value(),
            };
            args.push(value).map_err(|e| self.keep(e))?;
        }
        let result: Value = self
            .conn
            .funcall("exec_params", (sql, args))
            .map_err(|e| self.keep(e))?;
        // ActiveRecord gives its connection a result type map (booleans, integers decoded);
        // the store reads every column as the text PostgreSQL sent.
        let all_strings = self.all_strings().map_err(|e| self.keep(e))?;
        let _: Value = result
            .funcall("type_map=", (all_strings,))
            .map_err(|e| self.keep(e))?;
        let values: Result<Vec<Vec<Option<String>>>, Error> = result.funcall("values", ());
        let _: Result<Value, Error> = result.funcall("clear", ());
        values.map_err(|e| self.keep(e))
    }

    fn batch(&mut self, sql: &str) -> schema_fence::Result<()> {
        let result: Value = self
            .conn
            .funcall("exec", (sql,))
            .map_err(|e| self.keep(e))?;
        let _: Result<Value, Error> = result.funcall("clear", ());
        Ok(())
    }
}

/// Runs `work` on the connection: a URL gets the core's own connection (in a transaction, GVL
/// released); anything else is taken to be a `PG::Connection` already in the caller's transaction.
pub(crate) fn on_connection<T: Send>(
    ruby: &Ruby,
    conn: Value,
    work: impl FnOnce(&mut dyn Db) -> schema_fence::Result<T> + Send,
) -> Result<T, Error> {
    if let Some(url) = RString::from_value(conn) {
        let url = url.to_string()?;
        let interrupt = schema_fence::interrupt::Interrupt::new();
        let outcome = gvl::interruptible(ruby, &interrupt, || {
            let connector = schema_fence::connect::Connector::new(
                &url,
                &schema_fence::connect::application_name(&database_of(&url), "store"),
            )?;
            let mut client = connector.connect_with(&interrupt)?;
            let id = interrupt.register(&connector, &client);
            let outcome = (|| {
                let mut tx = client.transaction()?;
                let value = work(&mut tx)?;
                tx.commit()?;
                Ok(value)
            })();
            interrupt.unregister(id);
            outcome.map_err(|e| interrupt.explain(e, "the store call"))
        })?;
        return outcome.map_err(|e| errors::to_ruby(ruby, e));
    }
    let mut db = RubyConnection {
        ruby,
        conn,
        raised: None,
    };
    let outcome = work(&mut db);
    match (outcome, db.raised) {
        (Ok(value), _) => Ok(value),
        (Err(_), Some(raised)) => Err(raised),
        (Err(e), None) => Err(errors::to_ruby(ruby, e)),
    }
}

/// The PostgreSQL database a URL names (for the application_name).
fn database_of(url: &str) -> String {
    schema_fence::connect::Conninfo::parse(url)
        .ok()
        .and_then(|info| info.get("dbname").map(str::to_string))
        .unwrap_or_default()
}

fn identity_fields(ruby: &Ruby, identity: &store::Identity) -> RArray {
    ruby.ary_new_from_values(&[
        ruby.str_new(&identity.name).as_value(),
        ruby.ary_from_vec(identity.serves.clone()).as_value(),
        ruby.integer_from_i64(identity.epoch).as_value(),
        ruby.str_new(&identity.stamped_at).as_value(),
    ])
}

/// `[name, serves, epoch, stamped_at, backfilled, mistagged]` (mistagged nil without a dictionary).
fn install(
    ruby: &Ruby,
    conn: Value,
    name: String,
    serves: Vec<String>,
    dictionary: Option<&Dictionary>,
) -> Result<RArray, Error> {
    let dictionary = dictionary.map(|d| &*d.inner);
    let report = on_connection(ruby, conn, |db| {
        store::install(db, &name, &serves, dictionary)
    })?;
    let fields = identity_fields(ruby, &report.identity);
    fields.push(report.backfilled)?;
    fields.push(report.mistagged)?;
    Ok(fields)
}

/// `[changes, unresolved, applied]`: changes as `[id, table_name, from, to]`, unresolved as
/// `[id, table_name]`.
fn retag(ruby: &Ruby, conn: Value, dictionary: &Dictionary, apply: bool) -> Result<RArray, Error> {
    let dict = &dictionary.inner;
    let report = on_connection(ruby, conn, |db| store::retag(db, dict, apply))?;
    let changes = ruby.ary_new_capa(report.changes.len());
    for c in &report.changes {
        changes.push((c.id, c.table_name.clone(), c.from.clone(), c.to.clone()))?;
    }
    let unresolved = ruby.ary_new_capa(report.unresolved.len());
    for (id, table) in &report.unresolved {
        unresolved.push((*id, table.clone()))?;
    }
    Ok(ruby.ary_new_from_values(&[
        changes.as_value(),
        unresolved.as_value(),
        report.applied.into_value_with(ruby),
    ]))
}

/// `[name, serves, epoch, stamped_at]`, or nil before the install.
fn identity(ruby: &Ruby, conn: Value) -> Result<Option<RArray>, Error> {
    let found = on_connection(ruby, conn, store::identity::read)?;
    Ok(found.map(|i| identity_fields(ruby, &i)))
}

/// `[name, serves, epoch, stamped_at]` after adopting the database as `name` serving `serves`.
fn adopt(ruby: &Ruby, conn: Value, name: String, serves: Vec<String>) -> Result<RArray, Error> {
    let adopted = on_connection(ruby, conn, |db| store::identity::adopt(db, &name, &serves))?;
    Ok(identity_fields(ruby, &adopted))
}

fn schema_sql(ruby: &Ruby) -> RArray {
    ruby.ary_from_vec(vec![
        store::schema::CREATE_IDENTITY,
        store::schema::CREATE_MIGRATIONS,
        store::schema::CREATE_JOBS,
        store::schema::CREATE_TRANSITION_LOGS,
        store::schema::CREATE_EXTRAS,
        store::transition_log::CREATE_TRIGGERS,
    ])
}

/// Builds the core's request from the fixed-arity call `lib/schema_fence/migration_helpers.rb`
/// makes: `options` is `[interval?, batch_size, sub_batch_size, min, max?, max_batch_size?,
/// pause_ms, version?, batch_class_name?, gitlab_schema?, gitlab_interval?]`; the last three may
/// be left out. With `gitlab_interval` true, the interval gets GitLab's default and minimum.
fn request(
    ruby: &Ruby,
    (job_class_name, table, column): (String, String, String),
    arguments_json: String,
    restriction: Option<String>,
    options: RArray,
) -> Result<QueueRequest, Error> {
    if !(8..=11).contains(&options.len()) {
        return Err(errors::raise(
            ruby,
            "InvalidArgumentError",
            format!("expected 8 to 11 queue options, got {}", options.len()),
        ));
    }
    let v: Vec<Value> = (0..11)
        .map(|i| options.entry::<Value>(i as isize))
        .collect::<Result<_, _>>()?;
    let mut req = QueueRequest::new(&job_class_name, &table, &column);
    req.job_arguments = parse_arguments(ruby, &arguments_json)?;
    req.restriction = restriction;
    req.job_interval_seconds =
        store::enqueue::job_interval(Option::<i64>::try_convert(v[0])?, v[10].to_bool());
    req.batch_size = i64::try_convert(v[1])?;
    req.sub_batch_size = i64::try_convert(v[2])?;
    req.batch_min_value = i64::try_convert(v[3])?;
    req.batch_max_value = Option::<i64>::try_convert(v[4])?;
    req.max_batch_size = Option::<i64>::try_convert(v[5])?;
    req.pause_ms = i64::try_convert(v[6])?;
    req.queued_migration_version = Option::<String>::try_convert(v[7])?;
    if let Some(name) = Option::<String>::try_convert(v[8])? {
        req.batch_class_name = name;
    }
    req.gitlab_schema = Option::<String>::try_convert(v[9])?;
    Ok(req)
}

fn parse_arguments(ruby: &Ruby, json: &str) -> Result<serde_json::Value, Error> {
    serde_json::from_str(json).map_err(|e| {
        errors::raise(
            ruby,
            "InvalidJobArgumentsError",
            format!("job arguments are not valid JSON: {e}"),
        )
    })
}

/// `[:queued | :already_queued | :finished, id, tag]`.
fn queue(
    ruby: &Ruby,
    conn: Value,
    dictionary: &Dictionary,
    call: (String, String, String, String, Option<String>, RArray),
) -> Result<RArray, Error> {
    let (job_class_name, table, column, arguments_json, restriction, options) = call;
    let req = request(
        ruby,
        (job_class_name, table, column),
        arguments_json,
        restriction,
        options,
    )?;
    let dict = &dictionary.inner;
    let outcome = on_connection(ruby, conn, |db| store::queue(db, dict, &req))?;
    let (kind, id, tag) = match outcome {
        QueueOutcome::Queued {
            id,
            tag,
            finished: false,
        } => ("queued", id, tag),
        QueueOutcome::Queued {
            id,
            tag,
            finished: true,
        } => ("finished", id, tag),
        QueueOutcome::AlreadyQueued { id, tag } => ("already_queued", id, tag),
    };
    Ok(ruby.ary_new_from_values(&[
        ruby.to_symbol(kind).as_value(),
        ruby.integer_from_i64(id).as_value(),
        ruby.to_symbol(&tag).as_value(),
    ]))
}

fn delete(
    ruby: &Ruby,
    conn: Value,
    dictionary: &Dictionary,
    call: (String, String, String, String, Option<String>),
) -> Result<usize, Error> {
    let (job_class_name, table, column, arguments_json, restriction) = call;
    let mut req = QueueRequest::new(&job_class_name, &table, &column);
    req.job_arguments = parse_arguments(ruby, &arguments_json)?;
    req.restriction = restriction;
    let dict = &dictionary.inner;
    on_connection(ruby, conn, |db| store::enqueue::delete(db, dict, &req))
}

fn tag(
    ruby: &Ruby,
    dictionary: &Dictionary,
    table: String,
    restriction: Option<String>,
) -> Result<magnus::Symbol, Error> {
    schema_fence::tagging::tag(&dictionary.inner, &table, restriction.as_deref())
        .map(|t| ruby.to_symbol(t))
        .map_err(|e| errors::to_ruby(ruby, e))
}

/// One Array per tracking row, fields in the order of `SchemaFence::Migration`'s members.
fn migrations(ruby: &Ruby, conn: Value) -> Result<RArray, Error> {
    let rows = on_connection(ruby, conn, store::migrations::list)?;
    let list = ruby.ary_new_capa(rows.len());
    for m in rows {
        let fields = ruby.ary_new_from_values(&[
            ruby.integer_from_i64(m.id).as_value(),
            ruby.str_new(&m.job_class_name).as_value(),
            ruby.str_new(&m.table_name).as_value(),
            ruby.str_new(&m.column_name).as_value(),
            ruby.str_new(&m.job_arguments).as_value(),
            ruby.to_symbol(&m.gitlab_schema).as_value(),
            ruby.to_symbol(m.status.name()).as_value(),
            ruby.float_from_f64(m.progress()).as_value(),
            m.min_value.into_value_with(ruby),
            m.max_value.into_value_with(ruby),
            ruby.integer_from_i64(m.batch_size).as_value(),
            ruby.integer_from_i64(m.sub_batch_size).as_value(),
            ruby.integer_from_i64(m.interval_seconds).as_value(),
            ruby.integer_from_i64(m.pause_ms).as_value(),
            ruby.integer_from_i64(m.jobs_succeeded).as_value(),
            ruby.integer_from_i64(m.jobs_failed).as_value(),
            ruby.str_new(&m.created_at).as_value(),
            ruby.str_new(&m.batch_class_name).as_value(),
            m.min_cursor.clone().into_value_with(ruby),
            m.max_cursor.clone().into_value_with(ruby),
            m.not_runnable.clone().into_value_with(ruby),
            waiting_fields(ruby, &m).as_value(),
        ]);
        list.push(fields)?;
    }
    Ok(list)
}

/// `[kind, until, hold_reason, behind, retryable, now]`: why the row waits (kind nil when it
/// does not), the time it waits for (epoch seconds), and the database's clock.
fn waiting_fields(ruby: &Ruby, m: &store::MigrationRow) -> RArray {
    let waiting = m.waiting();
    let s = &m.schedule;
    ruby.ary_new_from_values(&[
        waiting
            .as_ref()
            .map(|w| ruby.to_symbol(w.kind()))
            .into_value_with(ruby),
        waiting
            .as_ref()
            .and_then(|w| w.until())
            .into_value_with(ruby),
        s.hold_reason.clone().into_value_with(ruby),
        s.behind.into_value_with(ruby),
        ruby.integer_from_i64(s.retryable).as_value(),
        ruby.float_from_f64(s.now).as_value(),
    ])
}

fn status_named(ruby: &Ruby, status: &str) -> Result<store::Status, Error> {
    [
        store::Status::Paused,
        store::Status::Active,
        store::Status::Finished,
        store::Status::Failed,
        store::Status::Finalizing,
        store::Status::Finalized,
    ]
    .into_iter()
    .find(|s| s.name() == status)
    .ok_or_else(|| {
        errors::raise(
            ruby,
            "InvalidArgumentError",
            format!("unknown status {status:?}"),
        )
    })
}

/// Sets a migration's status by name (`"paused"`, `"active"`, `"finalized"`, ...).
fn set_status(ruby: &Ruby, conn: Value, id: i64, status: String) -> Result<bool, Error> {
    let status = status_named(ruby, &status)?;
    on_connection(ruby, conn, |db| {
        store::migrations::set_status(db, id, status)
    })
}

/// Moves a migration from the status the caller read to another; false when it was no longer
/// that status.
fn change_status(
    ruby: &Ruby,
    conn: Value,
    id: i64,
    from: String,
    to: String,
) -> Result<bool, Error> {
    let (from, to) = (status_named(ruby, &from)?, status_named(ruby, &to)?);
    on_connection(ruby, conn, |db| {
        store::steering::change_status(db, id, from, to)
    })
}

/// `{status:, batches:}` after putting failed batches back to pending; nil when the migration
/// was no longer `from`.
fn retry_failed(ruby: &Ruby, conn: Value, id: i64, from: String) -> Result<Value, Error> {
    let from = status_named(ruby, &from)?;
    let retried = on_connection(ruby, conn, |db| store::steering::retry_failed(db, id, from))?;
    let Some(retried) = retried else {
        return Ok(ruby.qnil().as_value());
    };
    let hash = ruby.hash_new();
    hash.aset(
        ruby.to_symbol("status"),
        ruby.to_symbol(retried.status.name()),
    )?;
    hash.aset(ruby.to_symbol("batches"), retried.batches)?;
    Ok(hash.as_value())
}

/// The id of the migration with this key, tagged as the restriction dictates; nil when none.
fn find_id(
    ruby: &Ruby,
    conn: Value,
    dictionary: &Dictionary,
    call: (String, String, String, String, Option<String>),
) -> Result<Option<i64>, Error> {
    let (job_class_name, table, column, arguments_json, restriction) = call;
    let tag = schema_fence::tagging::tag(&dictionary.inner, &table, restriction.as_deref())
        .map_err(|e| errors::to_ruby(ruby, e))?;
    let arguments = parse_arguments(ruby, &arguments_json)?.to_string();
    on_connection(ruby, conn, |db| {
        store::migrations::find_id(db, &job_class_name, &table, &column, &arguments, &tag)
    })
}

pub(crate) fn init(_ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let store = module.define_module("Store")?;
    store.define_singleton_method("_install", function!(install, 4))?;
    store.define_singleton_method("_identity", function!(identity, 1))?;
    store.define_singleton_method("_retag", function!(retag, 3))?;
    store.define_singleton_method("_schema_sql", function!(schema_sql, 0))?;
    store.define_singleton_method("_adopt", function!(adopt, 3))?;
    store.define_singleton_method("_queue", function!(queue, 3))?;
    store.define_singleton_method("_delete", function!(delete, 3))?;
    store.define_singleton_method("_tag", function!(tag, 3))?;
    store.define_singleton_method("_migrations", function!(migrations, 1))?;
    store.define_singleton_method("_set_status", function!(set_status, 3))?;
    store.define_singleton_method("_change_status", function!(change_status, 4))?;
    store.define_singleton_method("_retry_failed", function!(retry_failed, 3))?;
    store.define_singleton_method("_find_id", function!(find_id, 3))?;
    Ok(())
}
