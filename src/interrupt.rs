//! Interrupting a blocking call from another thread (Ruby's unblocking function: Thread#raise,
//! Timeout, Ctrl-C, Sidekiq's shutdown). Firing sets a flag that ends waits and sleeps at once
//! and asks the server to cancel the query each registered connection is running.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::{CancelToken, Client};

use crate::connect::Connector;
use crate::error::{Error, Result};

/// How often a fired interrupt asks again for the cancel while the call is still running (a
/// cancel that reached the server between two queries cancels nothing).
const CANCEL_RETRY: Duration = Duration::from_millis(100);
/// How long a fired interrupt keeps asking.
const CANCEL_GIVE_UP: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
pub struct Interrupt(Arc<Inner>);

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    busy: AtomicBool,
    cancelling: AtomicBool,
    next_id: AtomicU64,
    tokens: Mutex<Vec<(u64, Connector, CancelToken)>>,
    wake_lock: Mutex<()>,
    wake: Condvar,
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interrupt(fired: {})", self.is_fired())
    }
}

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Starts a call: clears an earlier firing. Waits (briefly) until the cancel requests of an
    /// earlier firing are all sent: one still on its way could cancel this call's first query
    /// (the server ignores a cancel that reaches an idle session).
    pub fn arm(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.0.cancelling.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.0.fired.store(false, Ordering::SeqCst);
        self.0.busy.store(true, Ordering::SeqCst);
    }

    /// Ends a call: a late firing cancels nothing more.
    pub fn disarm(&self) {
        self.0.busy.store(false, Ordering::SeqCst);
    }

    pub fn is_fired(&self) -> bool {
        self.0.fired.load(Ordering::SeqCst)
    }

    /// Interrupts the running call. Returns at once (safe in an unblocking function): the cancel
    /// requests are sent from a thread of their own.
    pub fn fire(&self) {
        self.0.fired.store(true, Ordering::SeqCst);
        {
            let _guard = self
                .0
                .wake_lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.0.wake.notify_all();
        }
        if self.0.cancelling.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = Arc::clone(&self.0);
        let spawned = std::thread::Builder::new()
            .name("schema_fence-cancel".into())
            .spawn(move || {
                let started = Instant::now();
                while inner.fired.load(Ordering::SeqCst)
                    && inner.busy.load(Ordering::SeqCst)
                    && started.elapsed() < CANCEL_GIVE_UP
                {
                    let tokens: Vec<(Connector, CancelToken)> = inner
                        .tokens
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .iter()
                        .map(|(_, c, t)| (c.clone(), t.clone()))
                        .collect();
                    for (connector, token) in &tokens {
                        connector.cancel(token);
                    }
                    std::thread::sleep(CANCEL_RETRY);
                }
                inner.cancelling.store(false, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.0.cancelling.store(false, Ordering::SeqCst);
        }
    }

    /// Makes the queries of `client` cancellable by [`Interrupt::fire`] until `unregister`.
    pub fn register(&self, connector: &Connector, client: &Client) -> u64 {
        let id = self.0.next_id.fetch_add(1, Ordering::SeqCst);
        self.0
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((id, connector.clone(), client.cancel_token()));
        id
    }

    pub fn unregister(&self, id: u64) {
        self.0
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(i, _, _)| *i != id);
    }

    /// Forgets every registered connection (a new call registers its own).
    pub fn forget_connections(&self) {
        self.0
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// `Err(Interrupted)` once fired.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.is_fired() {
            return Err(Error::Interrupted { what: what.into() });
        }
        Ok(())
    }

    /// Sleeps `duration`, ending early with `Err(Interrupted)` when fired.
    pub fn sleep(&self, duration: Duration, what: &str) -> Result<()> {
        let deadline = Instant::now() + duration;
        let mut guard = self
            .0
            .wake_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            self.check(what)?;
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            guard = self
                .0
                .wake
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// A cancelled query of a fired call reads as the interruption it is.
    pub fn explain(&self, error: Error, what: &str) -> Error {
        if self.is_fired() {
            return Error::Interrupted { what: what.into() };
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fired_interrupt_ends_a_sleep_at_once() {
        let interrupt = Interrupt::new();
        interrupt.arm();
        let other = interrupt.clone();
        let firing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.fire();
        });
        let started = Instant::now();
        let err = interrupt
            .sleep(Duration::from_secs(30), "the wait")
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(err.to_string(), "interrupted: the wait was cancelled");
        firing.join().unwrap();
    }

    #[test]
    fn arming_clears_an_earlier_firing() {
        let interrupt = Interrupt::new();
        interrupt.fire();
        assert!(interrupt.check("x").is_err());
        interrupt.arm();
        assert!(interrupt.check("x").is_ok());
        interrupt.sleep(Duration::from_millis(1), "x").unwrap();
    }
}
