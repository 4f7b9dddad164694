//! Network namespaces joined to the test process by a veth pair, for network-fault tests
//! (docs/faults.md): a [`Link`] is a host of its own (`ip netns`) whose address the root
//! namespace reaches over a private /30; [`Link::cut`] takes the root side of the pair down, a
//! real partition (packets are lost, TCP connections hang until a timeout notices), and
//! [`Link::heal`] brings it back. Code runs "on" the host in a thread that joined the namespace
//! ([`Link::spawn`]): the sockets it opens live there.
//!
//! Needs root and iproute2's `ip`. Namespaces are named `schema_fence-PID-START-N` (their owner's
//! pid and start time); dropping a `Link` deletes its namespace (and so the pair), and every
//! [`Link::create`] first deletes those whose owner died (a test killed with SIGKILL).

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use crate::{cluster_error, owner_alive, process_start_time, Result};

/// Every namespace the testkit makes is named with this prefix; the sweep looks only at these.
pub const NAMESPACE_PREFIX: &str = "schema_fence-";
/// The private range the pairs' /30s are taken from (never routed off this machine: each /30
/// exists only between the root namespace and a namespace of ours).
const SECOND_OCTET: u8 = 213;
const NETNS_DIR: &str = "/run/netns";

/// A namespace of ours and the veth pair joining it to the root namespace.
#[derive(Debug)]
pub struct Link {
    namespace: String,
    host_interface: String,
    peer_interface: String,
    host_address: Ipv4Addr,
    namespace_address: Ipv4Addr,
    owner_pid: u32,
}

impl Link {
    /// Whether this process may make namespaces (root, and `ip` is there).
    pub fn available() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        root && Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// A new namespace with its loopback up, joined by a veth pair: the root side gets
    /// `host_address()`, the namespace side `namespace_address()`.
    pub fn create() -> Result<Link> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        sweep_orphans();
        let pid = std::process::id();
        let start = process_start_time(pid).unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let namespace = format!("{NAMESPACE_PREFIX}{pid}-{start}-{n}");
        // Interface names have at most 15 bytes.
        let host_interface = format!("sf{}h{n}", pid % 10_000_000);
        let peer_interface = format!("sf{}n{n}", pid % 10_000_000);
        let (host_address, namespace_address) = free_subnet(pid, n)?;
        let link = Link {
            namespace,
            host_interface,
            peer_interface: peer_interface.clone(),
            host_address,
            namespace_address,
            owner_pid: pid,
        };
        let ns = link.namespace.as_str();
        let (host_if, peer_if) = (link.host_interface.as_str(), peer_interface.as_str());
        let host_cidr = format!("{host_address}/30");
        let ns_cidr = format!("{namespace_address}/30");
        ip(&["netns", "add", ns])?;
        ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", ns,
        ])?;
        ip(&["addr", "add", &host_cidr, "dev", host_if])?;
        ip(&["link", "set", host_if, "up"])?;
        ip(&["-n", ns, "addr", "add", &ns_cidr, "dev", peer_if])?;
        ip(&["-n", ns, "link", "set", peer_if, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(link)
    }

    /// The root namespace's address on the pair (a server listening there is reached from the
    /// namespace over the link).
    pub fn host_address(&self) -> Ipv4Addr {
        self.host_address
    }

    /// The namespace's address on the pair.
    pub fn namespace_address(&self) -> Ipv4Addr {
        self.namespace_address
    }

    /// The /30 of the pair, for pg_hba.conf.
    pub fn subnet(&self) -> String {
        let [a, b, c, d] = self.host_address.octets();
        format!("{a}.{b}.{c}.{}/30", d & !3)
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Partitions the namespace: the root side of the pair goes down; packets either way are lost.
    pub fn cut(&self) -> Result<()> {
        ip(&["link", "set", &self.host_interface, "down"])
    }

    /// Makes a later cut silent from the namespace's side, as a partition behind a router is:
    /// the namespace's neighbour entry for the root side is made permanent, so a connection
    /// attempted from there during a cut does not fail at once with "No route to host" (the
    /// address resolution failing, which only a cable pulled from this very host gives) but
    /// waits for its timeouts.
    pub fn pin_neighbour_in_namespace(&self) -> Result<()> {
        let path = format!("/sys/class/net/{}/address", self.host_interface);
        let mac = std::fs::read_to_string(&path)
            .map_err(|e| cluster_error(format!("could not read {path}: {e}")))?;
        let address = self.host_address.to_string();
        ip(&[
            "-n",
            &self.namespace,
            "neigh",
            "replace",
            &address,
            "lladdr",
            mac.trim(),
            "dev",
            &self.peer_interface,
            "nud",
            "permanent",
        ])
    }

    /// Ends the partition (the addresses stayed; TCP connections that survived carry on), and
    /// waits (up to 5 s) until the pair carries packets again.
    pub fn heal(&self) -> Result<()> {
        ip(&["link", "set", &self.host_interface, "up"])?;
        let state = format!("/sys/class/net/{}/operstate", self.host_interface);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(&state).is_ok_and(|s| s.trim() != "up")
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Connections tried while the link was down left FAILED neighbour entries, which answer
        // "No route to host" until they age out: forget them, on both sides, so the first
        // connection after the heal resolves the peer again.
        ip(&["neigh", "flush", "dev", &self.host_interface])?;
        ip(&["-n", &self.namespace, "neigh", "flush", "all"])?;
        Ok(())
    }

    /// Runs `work` in a new thread that joined the namespace: every socket it opens is there.
    pub fn spawn<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<T>> {
        let path = format!("{NETNS_DIR}/{}", self.namespace);
        let file = std::fs::File::open(&path)
            .map_err(|e| cluster_error(format!("could not open the namespace {path}: {e}")))?;
        let (sender, joined) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            // SAFETY: setns on an open namespace file; it changes only this thread's namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            let outcome = if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error().to_string())
            };
            let failed = outcome.is_err();
            let _ = sender.send(outcome);
            if failed {
                panic!("could not join the namespace");
            }
            work()
        });
        match joined.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => Err(cluster_error(format!(
                "could not join the namespace {}: {e}",
                self.namespace
            ))),
            Err(_) => Err(cluster_error("the namespace thread died".into())),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if self.owner_pid == std::process::id() {
            // Deleting the namespace deletes the namespace side of the pair, and with it the pair.
            let _ = ip(&["netns", "del", &self.namespace]);
        }
    }
}

/// A /30 of 10.213.0.0/16 no interface has yet: (root side, namespace side).
fn free_subnet(pid: u32, n: u32) -> Result<(Ipv4Addr, Ipv4Addr)> {
    let taken = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let blocks = 256 * 64;
    let first = (pid.wrapping_mul(31).wrapping_add(n)) % blocks;
    for i in 0..blocks {
        let block = (first + i) % blocks;
        let (c, d) = ((block / 64) as u8, ((block % 64) * 4) as u8);
        let host = Ipv4Addr::new(10, SECOND_OCTET, c, d + 1);
        if !taken.contains(&format!("10.{SECOND_OCTET}.{c}.{}/", d + 1))
            && !taken.contains(&format!("10.{SECOND_OCTET}.{c}.{}/", d + 2))
        {
            return Ok((host, Ipv4Addr::new(10, SECOND_OCTET, c, d + 2)));
        }
    }
    Err(cluster_error(format!(
        "no free /30 left in 10.{SECOND_OCTET}.0.0/16"
    )))
}

/// Deletes our namespaces whose owner process is gone.
fn sweep_orphans() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX) else {
            continue;
        };
        let mut fields = rest.split('-');
        let owner = format!(
            "{} {}",
            fields.next().unwrap_or(""),
            fields.next().unwrap_or("")
        );
        if !owner_alive(&owner) {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| cluster_error(format!("could not run `ip {}`: {e}", args.join(" "))))?;
    if output.status.success() {
        return Ok(());
    }
    Err(cluster_error(format!(
        "`ip {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}
