//! Fetching and running batches (docs/architecture.md sections 7 and 8) on the core's own connection.
//!
//! A [`Runner`] is configured for one logical database. Every claim reads the identity of the
//! database it reached under a share lock, fences on it, fetches an executable migration of the
//! allowed schemas and claims one batch with a lease, all in one transaction. Running the batch
//! happens outside any transaction; completing or failing it checks the lease is still ours.

mod error;
pub use error::RunnerError;

mod ahead;
mod batch;
mod claim_call;
pub(crate) mod claim_function;
mod cursor;
mod cursor_split;
mod fence;
mod pace;
pub mod reach;
mod settings;
pub mod sql;
mod sql_job;
mod statements;
mod sub_batches;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::{Client, Transaction};

use statements::Statements;

pub use batch::{Batch, Completion};
pub use cursor::CursorRange;
pub use fence::{fence, Fence};
pub use pace::Decision;
pub use reach::{Place, Reach};
pub use settings::RunnerSettings;
pub use sql_job::SqlJobReport;

use crate::connect::{self, Connector};
use crate::error::{Error, Result, StoreError};
use crate::interrupt::Interrupt;
use crate::store::Identity;
use crate::topology::Topology;

/// How a runner behaves; the defaults suit production (GitLab's attempt limit of 3).
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// How long a claimed batch is ours before another worker may take it over.
    pub lease: Duration,
    /// Attempts per batch before it counts as failed for good.
    pub max_attempts: i16,
    /// Candidates the fetch considers per claim (one per table).
    pub fetch_limit: i64,
    /// Who we are, stored on claimed jobs (default: host pid and a random suffix).
    pub owner: Option<String>,
    /// How long a job running without a lease of ours (GitLab's own worker's) may stay
    /// untouched before it counts as abandoned: GitLab's stuck-job timeout, an hour.
    pub stuck_after: Duration,
    /// Bound on each bookkeeping statement (claim, complete, fail, fetch).
    pub statement_timeout: Duration,
    /// Bound on waiting for a lock in bookkeeping (another session holding a tracking row).
    pub lock_timeout: Duration,
    /// Bound on each statement of a SQL job; hitting it halves the batch.
    pub job_statement_timeout: Duration,
    /// Walk to the next batch's end on a second connection while a batch runs, so the next
    /// claim need not (`ahead.rs`).
    pub walk_ahead: bool,
}

impl RunnerOptions {
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_attempts: self.max_attempts,
            stuck_after_secs: self.stuck_after.as_secs_f64(),
        }
    }
}

/// The options the bookkeeping statements bind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_attempts: i16,
    pub stuck_after_secs: f64,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            lease: Duration::from_mins(5),
            max_attempts: 3,
            fetch_limit: 8,
            owner: None,
            stuck_after: Duration::from_hours(1),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
            job_statement_timeout: Duration::from_mins(2),
            walk_ahead: true,
        }
    }
}

/// What a claim found.
// One per claim, moved out at once: boxing the batch would buy nothing but an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// A batch to run, leased to this runner.
    Batch(Batch),
    /// The database is shared and owned by another database's worker.
    Idle { owner: String },
    /// The cutover paused claims on this database.
    Paused,
    /// Nothing executable now.
    Nothing,
}

/// An identity's name and the databases it serves.
type SeenIdentity = (String, Vec<String>);

pub struct Runner {
    url: String,
    database: String,
    topology: Topology,
    options: RunnerOptions,
    owner: String,
    client: Option<Client>,
    /// The process that opened `client`: a forked child must not use (or close) it.
    client_pid: u32,
    /// Statements prepared on `client`, by SQL text.
    statements: Statements,
    /// The parsed connection string (read on first use).
    connector: Option<Connector>,
    /// Ends waits and cancels the running query from another thread.
    interrupt: Interrupt,
    /// The registration of `client`'s cancel token with `interrupt`.
    cancel_id: Option<u64>,
    /// Where `client` is connected (read once per connection).
    place: Place,
    /// The identity (name, serves) the last fetch saw, and the allowed schemas derived from it.
    last_allowed: Option<(SeenIdentity, Vec<String>)>,
    /// The health check before a claim and the optimizer after a completion.
    pace: Arc<Mutex<pace::Pace>>,
    /// What the last claim fenced on, for the next claim's single statement to check.
    claim_fence: Option<claim_call::ClaimFence>,
    /// Whether `public.schema_fence_claim` exists here (an install before it has none).
    claim_function: bool,
    /// The thread walking to the next batch's end (started with the first batch claimed).
    ahead: Option<ahead::WalkAhead>,
}

impl Runner {
    pub fn new(url: &str, database: &str, topology: Topology, options: RunnerOptions) -> Self {
        let owner = options.owner.clone().unwrap_or_else(default_owner);
        Runner {
            url: url.to_string(),
            database: database.to_string(),
            topology,
            options,
            owner,
            client: None,
            client_pid: 0,
            statements: Statements::default(),
            connector: None,
            interrupt: Interrupt::new(),
            cancel_id: None,
            place: Place::default(),
            last_allowed: None,
            pace: Arc::default(),
            claim_fence: None,
            claim_function: true,
            ahead: None,
        }
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn options(&self) -> &RunnerOptions {
        &self.options
    }

    /// The handle another thread fires to interrupt this runner's call in progress.
    pub fn interrupt(&self) -> Interrupt {
        self.interrupt.clone()
    }

    /// The settings of every bookkeeping transaction: the generic plan (the planner's custom plan
    /// for a fetch with LIMIT 1 walks far more rows; measured 4x slower), no JIT (the generic
    /// plan's cost, estimated without the schemas, passes JIT's threshold: 1 s of compiling for a
    /// fetch of 0.3 ms, measured) and the timeouts.
    fn settings_sql(&self, scope: &str) -> String {
        format!(
            "SET {scope} plan_cache_mode = force_generic_plan; SET {scope} jit = off; \
             SET {scope} statement_timeout = {}; SET {scope} lock_timeout = {}",
            self.options.statement_timeout.as_millis().max(1),
            self.options.lock_timeout.as_millis().max(1)
        )
    }

    /// Behind a pooler: `work` in a transaction whose `BEGIN` and `SET LOCAL`s go in one round
    /// trip, committed when `work` succeeds and rolled back (its error kept) when it fails.
    /// `work` must return every failed statement's error: a `COMMIT` of an aborted transaction
    /// rolls back without one.
    fn in_local_transaction<T>(
        client: &mut Client,
        local_settings: &str,
        work: impl FnOnce(&mut Client) -> Result<T>,
    ) -> Result<T> {
        client.batch_execute(&format!("BEGIN; {local_settings}"))?;
        match work(client) {
            Ok(value) => {
                client.batch_execute("COMMIT")?;
                Ok(value)
            }
            Err(e) => {
                // A rollback that fails leaves a broken connection, which the next call replaces.
                let _ = client.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Opens a bookkeeping transaction; behind a pooler its settings are `SET LOCAL` in it.
    fn begin<'a>(
        client: &'a mut Client,
        statements: &Statements,
        local_settings: &str,
    ) -> Result<Transaction<'a>> {
        let mut tx = client.transaction()?;
        if !statements.prepared() {
            tx.batch_execute(local_settings)?;
        }
        Ok(tx)
    }

    /// The connection, opened on first use, again after a fork, and again after the server
    /// closed it (a restart).
    pub(crate) fn client(&mut self) -> Result<&mut Client> {
        self.connection().map(|(client, _)| client)
    }

    /// The connection and the statements prepared on it.
    pub(crate) fn connection(&mut self) -> Result<(&mut Client, &mut Statements)> {
        let pid = std::process::id();
        if self.client_pid != pid {
            // Inherited from the parent: closing it would end the parent's session too.
            if let Some(inherited) = self.client.take() {
                std::mem::forget(inherited);
            }
        }
        if self
            .client
            .as_ref()
            .is_some_and(postgres::Client::is_closed)
        {
            self.client = None;
        }
        if self.client.is_none() {
            self.statements.clear();
            self.claim_fence = None;
            self.claim_function = true;
            if self.connector.is_none() {
                let name = connect::application_name(&self.database, "runner");
                self.connector = Some(Connector::new(&self.url, &name)?);
            }
            self.interrupt.check("connecting")?;
            let connector = self.connector.as_ref().expect("parsed above");
            let mut client = connector.connect_with(&self.interrupt)?;
            self.statements = Statements::new(connector.prepared_statements());
            if connector.prepared_statements() {
                // A session of our own: its settings hold for the session.
                client.batch_execute(&self.settings_sql("SESSION"))?;
            }
            // One round trip, nothing prepared (safe behind a pooler too).
            let row = client.query_typed_one(reach::PLACE, &[])?;
            self.place = Place {
                system_identifier: row.get(0),
                database_oid: row.get(1),
            };
            if let Some(id) = self.cancel_id.take() {
                self.interrupt.unregister(id);
            }
            self.cancel_id = Some(self.interrupt.register(connector, &client));
            self.client = Some(client);
            self.client_pid = pid;
        }
        Ok((
            self.client.as_mut().expect("connected above"),
            &mut self.statements,
        ))
    }

    /// Runs `work`, reconnecting once if the connection was lost (a server restart).
    pub(crate) fn with_retry<T>(
        &mut self,
        mut work: impl FnMut(&mut Runner) -> Result<T>,
    ) -> Result<T> {
        match work(self) {
            Err(e) if self.interrupt.is_fired() => Err(self.interrupt.explain(e, "the call")),
            Err(Error::Database { .. })
                if self
                    .client
                    .as_ref()
                    .is_some_and(postgres::Client::is_closed) =>
            {
                self.client = None;
                work(self)
            }
            Err(Error::ConnectionLost { .. }) => {
                self.client = None;
                work(self)
            }
            other => other,
        }
    }

    /// The identity of the database this runner reaches, refused when it was stamped in another
    /// physical database (a copy).
    pub fn identity(&mut self) -> Result<Identity> {
        self.with_retry(|r| {
            let (identity, recorded) = crate::store::identity::require_with_place(r.client()?)?;
            fence::check_place(&r.database, &identity.name, recorded, r.place)?;
            Ok(identity)
        })
    }

    /// Fences on the identity without claiming anything.
    pub fn fence(&mut self) -> Result<Fence> {
        let identity = self.identity()?;
        fence(&identity, &self.database, &self.topology)
    }

    /// Fence, fetch and claim in one transaction.
    pub fn claim_next(&mut self) -> Result<Claim> {
        self.with_retry(|r| r.claim(None, None, false))
    }

    /// Claims the next batch of one migration, refused unless the identity epoch is still
    /// `expected_epoch` (the epoch the caller's fetch saw). `None` skips the epoch check.
    pub fn claim_migration(
        &mut self,
        migration_id: i64,
        expected_epoch: Option<i64>,
    ) -> Result<Claim> {
        self.with_retry(|r| r.claim(Some(migration_id), expected_epoch, false))
    }

    /// Claims the next batch of a migration being finalized: as [`Runner::claim_migration`], but
    /// a hold (`on_hold_until`) does not stop it, as GitLab's finalize does not wait for one.
    pub fn claim_to_finalize(&mut self, migration_id: i64) -> Result<Claim> {
        self.with_retry(|r| r.claim(Some(migration_id), None, true))
    }

    /// The migrations a claim would consider now, in order, without claiming: `(ids, epoch)`.
    ///
    /// One round trip: the statement reads the identity and fetches with the allowed schemas
    /// derived from the identity seen last time; if the identity it returns differs, the allowed
    /// schemas are derived again and the statement runs again.
    pub fn fetch(&mut self) -> Result<(Vec<i64>, i64)> {
        self.with_retry(|r| {
            for _ in 0..3 {
                let limit = r.options.fetch_limit;
                let allowed = r
                    .last_allowed
                    .clone()
                    .map(|(_, allowed)| allowed)
                    .unwrap_or_default();
                let local = r.settings_sql("LOCAL");
                let (client, statements) = r.connection()?;
                let fetched = if statements.prepared() {
                    statements.query_opt(client, sql::FETCH_WITH_IDENTITY, &[&allowed, &limit])
                } else {
                    // BEGIN with the SET LOCALs, the fetch, COMMIT: three round trips.
                    Runner::in_local_transaction(client, &local, |client| {
                        statements.query_opt(client, sql::FETCH_WITH_IDENTITY, &[&allowed, &limit])
                    })
                };
                let row = match fetched {
                    Err(e) if e.is_undefined_table() => {
                        return Err(Error::Store(StoreError::IdentityMissing))
                    }
                    other => other?.ok_or(Error::Store(StoreError::IdentityMissing))?,
                };
                let identity = Identity {
                    name: row.get(0),
                    serves: row.get(1),
                    epoch: row.get(2),
                    stamped_at: String::new(),
                };
                fence::check_place(
                    &r.database,
                    &identity.name,
                    recorded_place(&row, 4, 5),
                    r.place,
                )?;
                let seen = (identity.name.clone(), identity.serves.clone());
                if r.last_allowed
                    .as_ref()
                    .is_some_and(|(last, _)| *last == seen)
                {
                    return Ok((row.get(3), identity.epoch));
                }
                match fence(&identity, &r.database, &r.topology)? {
                    Fence::Idle { .. } => return Ok((vec![], identity.epoch)),
                    Fence::Work { allowed, .. } => r.last_allowed = Some((seen, allowed)),
                }
            }
            Err(Error::unexpected(
                "the identity kept changing during the fetch; try again",
            ))
        })
    }

    /// One statement when the identity is the one the last claim fenced on (the common case),
    /// else statement by statement in a transaction, which fences again.
    fn claim(
        &mut self,
        only: Option<i64>,
        expected_epoch: Option<i64>,
        finalizing: bool,
    ) -> Result<Claim> {
        let claim = if let Some(claim) =
            self.claim_in_one_statement(only, expected_epoch, finalizing)?
        {
            claim
        } else {
            let (claim, fenced) = self.claim_in_transaction(only, expected_epoch, finalizing)?;
            self.claim_fence = fenced;
            claim
        };
        if let Claim::Batch(batch) = &claim {
            self.walk_ahead_of(batch);
        }
        Ok(claim)
    }

    /// Starts the walk to the end of the batch after `batch` (see `ahead.rs`).
    fn walk_ahead_of(&mut self, batch: &Batch) {
        if !self.options.walk_ahead || !self.claim_function || self.claim_fence.is_none() {
            return;
        }
        if let Some(inherited) = self.ahead.take_if(|ahead| !ahead.is_ours()) {
            // A forked child has no walking thread: its channels are the parent's to close.
            std::mem::forget(inherited);
        }
        if self.ahead.is_none() {
            let name = connect::application_name(&self.database, "walk_ahead");
            let Ok(connector) = Connector::new(&self.url, &name) else {
                return;
            };
            self.ahead = Some(ahead::WalkAhead::start(
                connector,
                self.options.statement_timeout,
            ));
        }
        if let Some(ahead) = &self.ahead {
            ahead.after(batch);
        }
    }

    /// The last walk ahead's answer, for the next claim to check and use.
    fn walk_ahead_hint(&self) -> Option<ahead::Hint> {
        self.ahead
            .as_ref()
            .filter(|ahead| ahead.is_ours())
            .and_then(ahead::WalkAhead::latest)
    }

    /// The claim statement by statement; also returns what it fenced on when it may work.
    fn claim_in_transaction(
        &mut self,
        only: Option<i64>,
        expected_epoch: Option<i64>,
        finalizing: bool,
    ) -> Result<(Claim, Option<claim_call::ClaimFence>)> {
        let database = self.database.clone();
        let topology = self.topology.clone();
        let owner = self.owner.clone();
        let options = self.options.clone();
        let local = self.settings_sql("LOCAL");
        let pacing = self.pace.clone();
        self.connection()?;
        let place = self.place;
        let (client, statements) = self.connection()?;
        let mut tx = Runner::begin(client, statements, &local)?;
        let (seen, _, recorded) = read_identity(&mut tx, statements, false)?;
        fence::check_place(&database, &seen.name, recorded, place)?;
        if let Fence::Idle { owner } = fence(&seen, &database, &topology)? {
            return Ok((Claim::Idle { owner }, None));
        }
        let (identity, paused, recorded) = read_identity(&mut tx, statements, true)?;
        let allowed = match fence(&identity, &database, &topology)? {
            Fence::Idle { owner } => return Ok((Claim::Idle { owner }, None)),
            Fence::Work { allowed, .. } => allowed,
        };
        if let Some(expected) = expected_epoch {
            if expected != identity.epoch {
                return Err(Error::Runner(RunnerError::EpochChanged {
                    database,
                    expected,
                    found: identity.epoch,
                }));
            }
        }
        if paused {
            return Ok((Claim::Paused, None));
        }
        let fenced = claim_call::ClaimFence {
            identity: identity.clone(),
            recorded,
            allowed: allowed.clone(),
        };
        let candidates: Vec<i64> = match only {
            Some(id) => vec![id],
            None => statements
                .query(&mut tx, sql::FETCH, &[&allowed, &options.fetch_limit])?
                .iter()
                .map(|r| r.get(0))
                .collect(),
        };
        for id in candidates {
            if !finalizing && pace::lock(&pacing).held(&mut tx, statements, id)? {
                continue;
            }
            let claimant = batch::Claimant {
                allowed: &allowed,
                owner: &owner,
                epoch: identity.epoch,
                finalizing,
                fetched: only.is_none(),
            };
            let claim = batch::claim_batch(&mut tx, statements, id, &claimant, &options)?;
            if let Some(mut batch) = claim {
                tx.commit()?;
                batch.reach = Reach {
                    identity_name: identity.name.clone(),
                    epoch: identity.epoch,
                    place,
                };
                return Ok((Claim::Batch(batch), Some(fenced)));
            }
        }
        tx.commit()?;
        Ok((Claim::Nothing, Some(fenced)))
    }

    /// Marks the batch succeeded (if the lease is still ours) and the migration finished when
    /// nothing is left.
    pub fn complete(&mut self, batch: &Batch, metrics_json: &str) -> Result<Completion> {
        let recent_jobs = pace::lock(&self.pace).recent_jobs();
        let (done, recent) = self.with_retry(|r| {
            let owner = r.owner.clone();
            let max_attempts = r.options.limits();
            let local = r.settings_sql("LOCAL");
            let (client, statements) = r.connection()?;
            let job = (owner.as_str(), metrics_json, recent_jobs);
            if statements.prepared() {
                return batch::complete(client, statements, batch, job, max_attempts);
            }
            // BEGIN with the SET LOCALs, the completion, COMMIT: three round trips.
            Runner::in_local_transaction(client, &local, |client| {
                batch::complete_in(client, statements, batch, job, max_attempts)
            })
        })?;
        if let (Completion::Recorded, Some(recent)) = (done, recent) {
            self.optimize_after(batch, &recent);
        }
        Ok(done)
    }

    /// Records a failed attempt; a statement timeout halves the batch instead (both halves run
    /// later). Applies the failure ratio rule.
    pub fn fail(&mut self, batch: &Batch, error: &str, timed_out: bool) -> Result<Completion> {
        self.with_retry(|r| {
            let owner = r.owner.clone();
            let max_attempts = r.options.limits();
            let local = r.settings_sql("LOCAL");
            let (client, statements) = r.connection()?;
            let mut tx = Runner::begin(client, statements, &local)?;
            let done = batch::fail(
                &mut tx,
                statements,
                batch,
                &owner,
                error,
                timed_out,
                max_attempts,
            )?;
            tx.commit()?;
            Ok(done)
        })
    }

    /// Runs a SQL job batch entirely here: `statement` with `$1`/`$2` bound to each sub-batch.
    pub fn run_sql_batch(&mut self, batch: &Batch, statement: &str) -> Result<SqlJobReport> {
        let interrupt = self.interrupt.clone();
        let timeouts = (
            self.options.job_statement_timeout,
            self.options.statement_timeout,
            self.options.lock_timeout,
        );
        let (client, statements) = self.connection()?;
        let prepared = statements.prepared();
        sql_job::run(client, prepared, &interrupt, batch, statement, timeouts)
            .map_err(|e| interrupt.explain(e, &format!("the SQL job of batch {}", batch.job_id)))
    }

    /// Claims and runs SQL-job batches of any migration whose job class `statement_for` knows,
    /// until none is left; returns how many batches ran.
    pub fn run_sql_until_done(
        &mut self,
        statement_for: impl Fn(&str) -> Option<String>,
    ) -> Result<usize> {
        let mut ran = 0;
        loop {
            let Claim::Batch(batch) = self.claim_next()? else {
                return Ok(ran);
            };
            let Some(statement) = statement_for(&batch.job_class_name) else {
                self.fail(&batch, "no SQL statement for this job class", false)?;
                continue;
            };
            match self.run_sql_batch(&batch, &statement) {
                Ok(report) => {
                    self.complete(&batch, &report.metrics_json())?;
                }
                Err(e) => {
                    let timed_out = e.is_statement_timeout();
                    self.fail(&batch, &e.to_string(), timed_out)?;
                }
            }
            ran += 1;
        }
    }
}

/// Reads the identity; `lock` takes the share lock (not possible on a hot standby, where a
/// worker can only learn that it is to idle).
fn read_identity(
    tx: &mut Transaction<'_>,
    statements: &mut Statements,
    lock: bool,
) -> Result<(Identity, bool, Option<Place>)> {
    let sql = if lock {
        sql::IDENTITY_FOR_SHARE
    } else {
        sql::IDENTITY
    };
    let row = match statements.query_opt(tx, sql, &[]) {
        Ok(row) => row.ok_or(Error::Store(StoreError::IdentityMissing))?,
        Err(e) if e.is_undefined_table() => return Err(Error::Store(StoreError::IdentityMissing)),
        Err(e) => return Err(e),
    };
    Ok((
        Identity {
            name: row.get(0),
            serves: row.get(1),
            epoch: row.get(2),
            stamped_at: String::new(),
        },
        row.get(3),
        recorded_place(&row, 4, 5),
    ))
}

/// The place an identity row records it was stamped in (none before it was recorded).
fn recorded_place(row: &postgres::Row, sysid: usize, oid: usize) -> Option<Place> {
    let system_identifier: Option<i64> = row.get(sysid);
    let database_oid: Option<i64> = row.get(oid);
    Some(Place {
        system_identifier: system_identifier?,
        database_oid: database_oid?,
    })
}

fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "host".into(), |h| h.trim().to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}:{}:{nanos:x}", std::process::id())
}
