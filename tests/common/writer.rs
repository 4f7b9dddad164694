//! An application writer: inserts one new key after another into a table of the moving schema,
//! on whichever side takes the write, and remembers each write the server acknowledged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The keys each side acknowledged, and how many writes were refused (fence, write lock, a
/// replica in recovery).
#[derive(Debug, Default)]
pub struct Acknowledged {
    pub on_source: Vec<i64>,
    pub on_target: Vec<i64>,
    pub refused: u64,
}

impl Acknowledged {
    pub fn all(&self) -> Vec<i64> {
        let mut all: Vec<i64> = self
            .on_source
            .iter()
            .chain(&self.on_target)
            .copied()
            .collect();
        all.sort_unstable();
        all
    }
}

pub struct Writer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Acknowledged>,
}

impl Writer {
    /// Writes `INSERT INTO table (id)` with fresh keys from `first_key` on, about every 5 ms,
    /// trying the side that took the last write first.
    pub fn start(source_url: &str, target_url: &str, table: &str, first_key: i64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let urls = [source_url.to_string(), target_url.to_string()];
        let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut acked = Acknowledged::default();
            let mut clients: [Option<postgres::Client>; 2] = [None, None];
            let (mut side, mut key) = (0usize, first_key);
            while !stopping.load(Ordering::Relaxed) {
                if clients[side]
                    .as_ref()
                    .is_none_or(postgres::Client::is_closed)
                {
                    clients[side] = postgres::Client::connect(&urls[side], postgres::NoTls).ok();
                }
                let written = clients[side]
                    .as_mut()
                    .map(|client| client.execute(insert.as_str(), &[&key]).is_ok());
                if written == Some(true) {
                    [&mut acked.on_source, &mut acked.on_target][side].push(key);
                } else {
                    acked.refused += 1;
                    side = 1 - side;
                }
                key += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            acked
        });
        Writer { stop, thread }
    }

    pub fn stop(self) -> Acknowledged {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The keys of `keys` that `table` at `url` lacks.
pub fn missing_keys(url: &str, table: &str, keys: &[i64]) -> Vec<i64> {
    let rows = super::connect(url)
        .query(
            &format!("SELECT k FROM unnest($1::bigint[]) k WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE id = k) ORDER BY k"),
            &[&keys],
        )
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// Waits (up to `timeout`) until `table` at `url` holds every key of `keys`; returns those
/// still missing then.
pub fn wait_for_keys(url: &str, table: &str, keys: &[i64], timeout: Duration) -> Vec<i64> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let missing = missing_keys(url, table, keys);
        if missing.is_empty() || std::time::Instant::now() >= deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The keys of `table` at `url` that `table` at `other_url` lacks (writes one side took and the
/// other has not received).
pub fn keys_only_on(url: &str, other_url: &str, table: &str) -> Vec<i64> {
    let keys: Vec<i64> = super::connect(url)
        .query(&format!("SELECT id FROM {table} ORDER BY id"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    missing_keys(other_url, table, &keys)
}
