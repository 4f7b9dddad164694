/* The state of both databases, the leases, and the ghost variables the invariants read. */

/* Job statuses as in batched_background_migration_jobs (0 pending, 1 running, 2 failed,
 * 3 succeeded), shifted by one so that 0 means "no job row for this range yet". */
#define J_NONE 0
#define J_PEND 1
#define J_RUN 2
#define J_FAIL 3
#define J_DONE 4

#define M_ACTIVE 1
#define M_FINISHED 3
#define M_FAILED 4

#define SERVES_MAIN 1
#define SERVES_CI 2

typedef Database {
  /* schema_fence_identity (store/identity.rs) */
  byte name;            /* MAIN or CI */
  byte serves;          /* SERVES_* bits; 0: retired */
  byte epoch;
  bool paused;          /* claims_paused */
  bool recovery;        /* pg_is_in_recovery(): a replica takes no write */
  /* triggers on the ci table */
  bool fenced;          /* cutover/fence.rs: SF001 on every write */
  bool locked;          /* cutover/lock_writes.rs */
  /* the ci table: which application writes and which key ranges' batch writes it holds */
  byte writes;
  byte ranges;
  /* batched_background_migrations and _jobs, this database's copy */
  byte mig;
  byte job[K];
  byte lease[K];        /* lease_owner (0: none) */
};

Database db[2];

/* Leases. A worker runs one batch at a time, so its owner string (runner/mod.rs default_owner:
 * host, pid and a random suffix) names its lease: owner = worker + 1 + 4 * incarnation, a
 * restarted worker being a new owner. Time is global: a lease expires on every copy of its row
 * at once; a claim starts a fresh one. */
#define OWNER(w) ((w) + 1 + 4 * incarnation[w])
#define WORKER_OF(h) (((h) - 1) % 4)
#define CURRENT(h) ((h) != 0 && OWNER(WORKER_OF(h)) == (h))
unsigned expired : 9;
#define EXPIRED(l) ((expired >> (l)) & 1)

bool holding[4];        /* the worker is between its claim and its completion */
byte incarnation[4];
byte worker_crashes;
byte stalls;

/* Replication: physical (S to T) until the promotion, reverse logical (T to S) after it. */
#define P_WRITE 1
#define P_RANGE 2
#define P_JOB 3
#define P_MIG 4
#define P_PAUSE 5
#define P_FENCE 6
chan phys = [PCAP] of { byte, byte, byte, byte };
bool phys_on = true;
byte catch_up_pending;  /* commits sent before the catch-up read the source's WAL position */

#define R_WRITE 1
#define R_RANGE 2
#define R_MARK 3
chan rev = [RCAP] of { byte, byte };
bool rev_on;
byte marks_in_flight;

/* Ghosts: writes acknowledged to the application; the database that keeps the ci table (S,
 * then T from the promotion, then S again from the rollback's stamp of the source). */
byte acked;
byte home = S;
byte app_conn = S;      /* where the application's ci connection points */

#define ACCEPTS(d) (!db[d].recovery && !db[d].fenced && !db[d].locked)
/* A commit on d waits while its replication channel has no room for its n messages: the lag
 * is bounded by the channel's capacity. */
#define ROOM(d, n) (((d) != S || !phys_on || len(phys) + (n) <= PCAP) && \
                    ((d) != T || !rev_on || len(rev) + (n) <= RCAP))

