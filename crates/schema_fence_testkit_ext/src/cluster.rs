//! `SchemaFence::Cluster`: a throwaway PostgreSQL server for tests, benches and the demo. Keyword
//! arguments, settings quoting and the `at_exit` cleanup live in `lib/schema_fence/testing/cluster.rb`.

use std::sync::{Arc, Mutex};

use magnus::{function, method, prelude::*, Error, RModule, Ruby};
use schema_fence_testkit::{self as core, ClusterOptions};

use super::{errors, gvl};

/// Not `free_immediately`: dropping a live cluster stops its server, which must not run inside GC.
#[magnus::wrap(class = "SchemaFence::Cluster", size)]
pub(crate) struct Cluster {
    /// `None` once stopped. The lock is held only to clone or take the `Arc`, never across a
    /// blocking call, so no Ruby thread waits on it while holding the GVL.
    inner: Mutex<Option<Arc<core::Cluster>>>,
    port: u16,
    dir: String,
    data_dir: String,
    log_path: String,
}

impl Cluster {
    fn wrap(inner: core::Cluster) -> Self {
        Self {
            port: inner.port(),
            dir: inner.dir().display().to_string(),
            data_dir: inner.data_dir().display().to_string(),
            log_path: inner.log_path().display().to_string(),
            inner: Mutex::new(Some(Arc::new(inner))),
        }
    }

    /// `settings`: `[name, value]` pairs, values already as postgresql.conf spells them.
    fn start(ruby: &Ruby, settings: Vec<(String, String)>) -> Result<Self, Error> {
        let options = ClusterOptions {
            settings,
            ..ClusterOptions::default()
        };
        let started = gvl::without_gvl(ruby, || core::Cluster::start_with(options))?;
        Ok(Self::wrap(started.map_err(|e| errors::to_ruby(ruby, e))?))
    }

    /// Creates database `name` on the server of `server_url` (any server, e.g. `DATABASE_URL`'s).
    fn create_database_at(ruby: &Ruby, server_url: String, name: String) -> Result<(), Error> {
        gvl::without_gvl(ruby, || core::create_database(&server_url, &name))?
            .map_err(|e| errors::to_ruby(ruby, e))
    }

    fn running(ruby: &Ruby, rb_self: &Self) -> Result<Arc<core::Cluster>, Error> {
        let guard = rb_self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or_else(|| {
            errors::raise(
                ruby,
                "ClusterError",
                format!(
                    "the cluster that was on port {} ({}) is stopped and removed",
                    rb_self.port, rb_self.dir
                ),
            )
        })
    }

    /// Runs `work` on the running cluster without the GVL.
    fn blocking<R>(
        ruby: &Ruby,
        rb_self: &Self,
        work: impl FnOnce(&core::Cluster) -> core::Result<R>,
    ) -> Result<R, Error> {
        let cluster = Self::running(ruby, rb_self)?;
        gvl::without_gvl(ruby, move || work(&cluster))?.map_err(|e| errors::to_ruby(ruby, e))
    }

    fn url(ruby: &Ruby, rb_self: &Self, database: String) -> Result<String, Error> {
        Ok(Self::running(ruby, rb_self)?.url(&database))
    }

    fn create_database(ruby: &Ruby, rb_self: &Self, name: String) -> Result<(), Error> {
        Self::blocking(ruby, rb_self, |c| c.create_database(&name))
    }

    fn replica(ruby: &Ruby, rb_self: &Self) -> Result<Self, Error> {
        Self::blocking(ruby, rb_self, |c| c.replica()).map(Self::wrap)
    }

    fn is_in_recovery(ruby: &Ruby, rb_self: &Self) -> Result<bool, Error> {
        Self::blocking(ruby, rb_self, |c| c.is_in_recovery())
    }

    fn restart(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        Self::blocking(ruby, rb_self, |c| c.restart())
    }

    fn kill(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        Self::blocking(ruby, rb_self, |c| c.kill())
    }

    /// Stops the server and removes its directory; a no-op once stopped.
    fn stop(ruby: &Ruby, rb_self: &Self) -> Result<(), Error> {
        let taken = rb_self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(cluster) = taken else {
            return Ok(());
        };
        gvl::without_gvl(ruby, move || match Arc::try_unwrap(cluster) {
            Ok(cluster) => cluster.destroy(),
            // Another thread is inside a call on it: stop the server now; the last reference
            // removes the directory when that call returns.
            Err(shared) => shared.stop(),
        })?
        .map_err(|e| errors::to_ruby(ruby, e))
    }

    fn is_stopped(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn dir(&self) -> String {
        self.dir.clone()
    }

    fn data_dir(&self) -> String {
        self.data_dir.clone()
    }

    fn log_path(&self) -> String {
        self.log_path.clone()
    }
}

pub(crate) fn init(ruby: &Ruby, module: &RModule) -> Result<(), Error> {
    let class = module.define_class("Cluster", ruby.class_object())?;
    class.define_singleton_method("_start", function!(Cluster::start, 1))?;
    class.define_singleton_method(
        "_create_database_at",
        function!(Cluster::create_database_at, 2),
    )?;
    class.define_method("_url", method!(Cluster::url, 1))?;
    class.define_method("_create_database", method!(Cluster::create_database, 1))?;
    class.define_method("_replica", method!(Cluster::replica, 0))?;
    class.define_method("_stop", method!(Cluster::stop, 0))?;
    class.define_method("in_recovery?", method!(Cluster::is_in_recovery, 0))?;
    class.define_method("restart", method!(Cluster::restart, 0))?;
    class.define_method("kill", method!(Cluster::kill, 0))?;
    class.define_method("stopped?", method!(Cluster::is_stopped, 0))?;
    class.define_method("port", method!(Cluster::port, 0))?;
    class.define_method("dir", method!(Cluster::dir, 0))?;
    class.define_method("data_dir", method!(Cluster::data_dir, 0))?;
    class.define_method("log_path", method!(Cluster::log_path, 0))?;
    Ok(())
}
