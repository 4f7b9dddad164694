//! What the network-fault tests share (docs/faults.md): a link into a namespace of the test's
//! own, and a primary on the far side of it whose replica streams over the link, so that cutting
//! the link cuts the replication (both ways) and nothing else.

use schema_fence_testkit::netns::Link;
use schema_fence_testkit::{Cluster, ClusterOptions};

/// A link into a namespace of our own, or None (with the reason printed) where that needs what
/// this machine does not give; `SCHEMA_FENCE_NETNS=1` makes that a failure.
pub fn link_or_skip(test: &str) -> Option<Link> {
    if Link::available() {
        return Some(Link::create().expect("make a network namespace"));
    }
    let reason = "network namespaces need root and iproute2's ip";
    assert!(
        std::env::var("SCHEMA_FENCE_NETNS").as_deref() != Ok("1"),
        "SCHEMA_FENCE_NETNS=1, but {reason}"
    );
    eprintln!("skipping {test}: {reason}");
    None
}

/// Server-side keepalives and a TCP user timeout, so a backend whose client vanished is ended in
/// seconds, and `pg_hba` trust for the link's /30.
pub fn fault_options(listen: &[String], link: &Link) -> ClusterOptions {
    let setting = |name: &str, value: &str| (name.to_string(), value.to_string());
    ClusterOptions {
        settings: vec![
            setting("listen_addresses", &format!("'{}'", listen.join(","))),
            setting("tcp_keepalives_idle", "1"),
            setting("tcp_keepalives_interval", "1"),
            setting("tcp_keepalives_count", "2"),
            setting("tcp_user_timeout", "3000"),
        ],
        trusted_networks: vec![link.subnet()],
        ..ClusterOptions::default()
    }
}

/// A primary "on another host" (started in the link's namespace, so it listens there) and its
/// streaming replica on this side: the physical replication runs replica → primary over the
/// link, and a reverse subscription primary → replica too. The test reaches the primary through
/// its Unix socket and the replica on this side, so a cut parts only the two servers.
pub struct ReplicatedPair {
    pub source: Cluster,
    pub target: Cluster,
    /// The source through its socket (never cut).
    pub source_url: String,
    /// The target at the link's root-side address: from this side it never crosses the link;
    /// the source's reverse subscription, given this URL, does.
    pub target_url: String,
}

/// `seed` runs on the source (through its socket) before the replica is copied.
pub fn replicated_pair(link: &Link, seed: impl FnOnce(&mut postgres::Client)) -> ReplicatedPair {
    // Each server binds what exists where it runs and warns about the other address.
    let listen = vec![
        "127.0.0.1".to_string(),
        link.host_address().to_string(),
        link.namespace_address().to_string(),
    ];
    let options = fault_options(&listen, link);
    let source = link
        .spawn(move || {
            let source = Cluster::start_with(options).expect("start the far primary");
            super::connect(&source.socket_url("postgres"))
                .batch_execute("CREATE DATABASE app")
                .unwrap();
            source
        })
        .unwrap()
        .join()
        .unwrap();
    let source_url = source.socket_url("app");
    seed(&mut super::connect(&source_url));
    let target = source
        .replica_via(&link.namespace_address().to_string())
        .expect("a replica streaming over the link");
    let target_url = format!(
        "postgres://postgres@{}:{}/app?connect_timeout=3&keepalives_idle=1&keepalives_interval=1&keepalives_count=2",
        link.host_address(),
        target.port()
    );
    ReplicatedPair {
        source,
        target,
        source_url,
        target_url,
    }
}

/// What a failed check of the reverse replication needs to be understood: the subscription's
/// state on the source and the server's log lines about it.
pub fn reverse_replication_report(source_url: &str, source: &Cluster) -> String {
    let state = super::connect(source_url)
        .query(
            "SELECT s.subname::text, s.subenabled, st.pid, st.received_lsn::text, \
                    st.last_msg_receipt_time::text \
             FROM pg_subscription s LEFT JOIN pg_stat_subscription st ON st.subid = s.oid",
            &[],
        )
        .map_or_else(
            |e| e.to_string(),
            |rows| {
                rows.iter()
                    .map(|r| {
                        format!(
                            "{} enabled={} pid={:?} received={:?} last={:?}",
                            r.get::<_, String>(0),
                            r.get::<_, bool>(1),
                            r.get::<_, Option<i32>>(2),
                            r.get::<_, Option<String>>(3),
                            r.get::<_, Option<String>>(4)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        );
    let log = std::fs::read_to_string(source.log_path()).unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("logical replication") || l.contains("subscription"))
        .collect();
    format!("subscriptions: {state}\nsource log:\n{}", lines.join("\n"))
}
