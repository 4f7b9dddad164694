//! `SchemaFence::Store`: the tracking store on a Ruby `PG::Connection` (a Rails migration's own
//! connection, inside its transaction) or on a PostgreSQL URL (the core's own connection, with
//! the GVL released). The Ruby API (`Install`, `Migrations`, the migration DSL) sits on top.

use magnus::{
    function, prelude::*, Error, IntoValue, RArray, RHash, RModule, RString, Ruby, Value,
};
use schema_fence::store::{self, Db, QueueOutcome, QueueRequest, Row};

use super::dictionary::Dictionary;
use super::identity_row::{IdentityRow, InstallReport};
use super::migration_row::MigrationRow;
use super::options::Options;
use super::report::Report;
use super::topology::Topology;
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
        schema_fence::Error::unexpected(message)
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

fn install(
    ruby: &Ruby,
    conn: Value,
    name: String,
    serves: Vec<String>,
    dictionary: Option<&Dictionary>,
) -> Result<InstallReport, Error> {
    let dictionary = dictionary.map(|d| &*d.inner);
    on_connection(ruby, conn, |db| {
        store::install(db, &name, &serves, dictionary)
    })
    .map(InstallReport)
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

fn identity(ruby: &Ruby, conn: Value) -> Result<Option<IdentityRow>, Error> {
    Ok(on_connection(ruby, conn, store::identity::read)?.map(IdentityRow))
}

fn identity_table(ruby: &Ruby, conn: Value) -> Result<bool, Error> {
    on_connection(ruby, conn, store::identity::table_exists)
}

fn adopt(
    ruby: &Ruby,
    conn: Value,
    name: String,
    serves: Vec<String>,
) -> Result<IdentityRow, Error> {
    on_connection(ruby, conn, |db| store::identity::adopt(db, &name, &serves)).map(IdentityRow)
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

/// Builds the core's request from the Hash `lib/schema_fence/migration_helpers.rb` passes: the
/// key (job_class_name, table_name, column_name, job_arguments as JSON text), the restriction and
/// the queue options by name. With `gitlab_interval` true, the interval gets GitLab's default and
/// minimum.
fn request(ruby: &Ruby, call: RHash, what: &'static str) -> Result<QueueRequest, Error> {
    let mut read = Options::new(ruby, call, what);
    let job_class_name: String = read.required("job_class_name")?;
    let table_name: String = read.required("table_name")?;
    let column_name: String = read.required("column_name")?;
    let mut req = QueueRequest::new(&job_class_name, &table_name, &column_name);
    req.job_arguments = read.or("job_arguments", req.job_arguments)?;
    req.restriction = read.get("restriction")?;
    if what != "queue" {
        read.finish()?;
        return Ok(req);
    }
    let interval: Option<i64> = read.get("job_interval")?;
    req.job_interval_seconds =
        store::enqueue::job_interval(interval, read.or("gitlab_interval", false)?);
    req.batch_size = read.or("batch_size", req.batch_size)?;
    req.sub_batch_size = read.or("sub_batch_size", req.sub_batch_size)?;
    req.batch_min_value = read.or("batch_min_value", req.batch_min_value)?;
    req.batch_max_value = read.get("batch_max_value")?;
    req.max_batch_size = read.get("max_batch_size")?;
    req.pause_ms = read.or("pause_ms", req.pause_ms)?;
    req.queued_migration_version = read.get("queued_migration_version")?;
    if let Some(name) = read.get("batch_class_name")? {
        req.batch_class_name = name;
    }
    req.gitlab_schema = read.get("gitlab_schema")?;
    req.cursor_columns = read.get("cursor_columns")?;
    req.min_cursor = read.get("min_cursor")?;
    req.max_cursor = read.get("max_cursor")?;
    read.finish()?;
    Ok(req)
}

/// `[:queued | :already_queued | :finished, id, tag]`.
fn queue(ruby: &Ruby, conn: Value, dictionary: &Dictionary, call: RHash) -> Result<RArray, Error> {
    let req = request(ruby, call, "queue")?;
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

fn delete(ruby: &Ruby, conn: Value, dictionary: &Dictionary, call: RHash) -> Result<usize, Error> {
    let req = request(ruby, call, "delete")?;
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

/// The status report of the database `conn` reaches; rows are marked stale against `topology`.
fn report(ruby: &Ruby, conn: Value, topology: Option<&Topology>) -> Result<Report, Error> {
    let topology = topology.map(|t| &t.inner);
    on_connection(ruby, conn, |db| store::report::read(db, topology)).map(Report)
}

/// The tracking rows, each a `SchemaFence::Store::MigrationRow`.
fn migrations(ruby: &Ruby, conn: Value) -> Result<RArray, Error> {
    let rows = on_connection(ruby, conn, store::migrations::list)?;
    super::wrapped_list(ruby, rows.into_iter().map(MigrationRow))
}

fn status_named(ruby: &Ruby, status: &str) -> Result<store::Status, Error> {
    store::Status::from_name(status).ok_or_else(|| {
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
    call: RHash,
) -> Result<Option<i64>, Error> {
    let req = request(ruby, call, "find")?;
    let tag = schema_fence::tagging::tag(
        &dictionary.inner,
        &req.table_name,
        req.restriction.as_deref(),
    )
    .map_err(|e| errors::to_ruby(ruby, e))?;
    let arguments = req.job_arguments.as_str();
    on_connection(ruby, conn, |db| {
        store::migrations::find_id(
            db,
            &req.job_class_name,
            &req.table_name,
            &req.column_name,
            arguments,
            &tag,
        )
    })
}

pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let store = module.define_module("Store")?;
    super::migration_row::init(ruby, &store)?;
    super::identity_row::init(ruby, &store)?;
    super::report::init(ruby, &store)?;
    store.define_singleton_method("_report", function!(report, 2))?;
    store.define_singleton_method("_install", function!(install, 4))?;
    store.define_singleton_method("_identity", function!(identity, 1))?;
    store.define_singleton_method("_identity_table?", function!(identity_table, 1))?;
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
