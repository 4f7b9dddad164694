/* The small configuration: every bound the state space depends on. Each can be set with -D. */

#ifndef K
#define K 2            /* key ranges of the ci table's migration */
#endif
#ifndef NW
#define NW 2           /* application writes to the ci table */
#endif
#ifndef WORKERS_PER_DB
#define WORKERS_PER_DB 2   /* main workers on S, ci workers on T */
#endif
#ifndef PCAP
#define PCAP 2         /* physical replication lag, in commits not yet received by the replica */
#endif
#ifndef RCAP
#define RCAP 2         /* reverse logical replication lag, in commits not yet applied on S */
#endif
#ifndef WORKER_CRASHES
#define WORKER_CRASHES 1   /* worker processes killed (lease left live until it expires) */
#endif
#ifndef STALLS
#define STALLS 1       /* leases that expire under a worker still running its batch */
#endif
#ifndef OPERATOR_CRASHES
#define OPERATOR_CRASHES 1 /* cutover or rollback processes killed, then run again */
#endif

/* ROLLBACK: 0 never; 1 before the promotion started or once the cutover returned; 2 at any
 * moment, inside the cutover after the promotion too */
#ifndef ROLLBACK
#define ROLLBACK 2
#endif
#if K > 3 || NW > 3
#error "the invariants are written out for at most 3 key ranges and 3 writes"
#endif

#define S 0
#define T 1
#define MAIN 1
#define CI 2

#define ALLW ((1 << NW) - 1)
#define ALLK ((1 << K) - 1)
