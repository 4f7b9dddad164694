/* Replication as ordered channels that lag. Physical: every commit on S that the model tracks,
 * received by the replica in order, until the promotion cuts it off (what was not received is
 * never replayed). Reverse logical (cutover/reverse.rs): the ci table and the marker, from T to
 * S, from its set-up at the promotion until the rollback drops it. */

/* A commit on database d of job row k / the migration / the ci table reaches the replica. */
inline ship_job(d, k) {
  if
  :: d == S && phys_on ->
     phys!P_JOB, k, db[S].job[k], db[S].lease[k]
  :: else
  fi
}

inline ship_mig(d) {
  if
  :: d == S && phys_on -> phys!P_MIG, db[S].mig, 0, 0
  :: else
  fi
}

/* A write to the ci table on d: physical replication from S, logical from T. */
inline ship_table(d, kind, v) {
  if
  :: d == S && phys_on -> phys!kind, v, 0, 0
  :: d == T && rev_on -> rev!(kind == P_WRITE -> R_WRITE : R_RANGE), v
  :: else
  fi
}

/* The replica's startup process replaying the WAL it received. */
proctype replica() {
  byte m, a, b, c;
end:
  do
  :: d_step {
       phys?m, a, b, c;
       if
       :: m == P_WRITE -> db[T].writes = db[T].writes | (1 << a)
       :: m == P_RANGE -> db[T].ranges = db[T].ranges | (1 << a)
       :: m == P_JOB -> db[T].job[a] = b; db[T].lease[a] = c
       :: m == P_MIG -> db[T].mig = a
       :: m == P_PAUSE -> db[T].paused = a
       :: m == P_FENCE -> db[T].fenced = a
       fi;
       if
       :: catch_up_pending > 0 -> catch_up_pending--
       :: else
       fi;
       m = 0; a = 0; b = 0; c = 0
     }
  od
}

/* The source's subscription apply worker (session_replication_role = replica: the source's
 * fence and write locks do not fire for it). */
proctype reverse() {
  byte m, a;
end:
  do
  :: d_step {
       rev?m, a;
       if
       :: m == R_WRITE -> db[S].writes = db[S].writes | (1 << a)
       :: m == R_RANGE -> db[S].ranges = db[S].ranges | (1 << a)
       :: m == R_MARK -> marks_in_flight--
       fi;
       m = 0; a = 0
     }
  od
}

/* A row on either side is running under lease l. */
#define RUNS(d, k, l) (db[d].job[k] == J_RUN && db[d].lease[k] == (l))
#define LEASED(l) (RUNS(S, 0, l) || RUNS(T, 0, l) || (K > 1 && (RUNS(S, 1, l) || RUNS(T, 1, l))) || \
                   (K > 2 && (RUNS(S, 2, l) || RUNS(T, 2, l))))

/* Time passes: a lease expires. For a lease whose holder is gone (killed), in time: the first
 * such lease, so that weak fairness lets time pass. For a holder still running its batch, a
 * stall, within the STALLS budget. */
#define ORPHAN(l) (!EXPIRED(l) && LEASED(l) && !(CURRENT(l) && holding[WORKER_OF(l)]))
#define ANY_ORPHAN (ORPHAN(1) || ORPHAN(2) || ORPHAN(3) || ORPHAN(4) || ORPHAN(5) || ORPHAN(6) || \
                    ORPHAN(7) || ORPHAN(8))
#define STALLABLE(w) (holding[w] && !EXPIRED(OWNER(w)))

proctype lease_clock() {
  byte l;
end:
  do
  :: d_step {
       ANY_ORPHAN ->
       l = 1;
       do
       :: ORPHAN(l) -> break
       :: else -> l++
       od;
       expired = expired | (1 << l);
       l = 0
     }
  :: atomic {
       stalls < STALLS && (STALLABLE(0) || STALLABLE(1) || STALLABLE(2) || STALLABLE(3)) ->
       if
       :: STALLABLE(0) -> l = OWNER(0)
       :: STALLABLE(1) -> l = OWNER(1)
       :: STALLABLE(2) -> l = OWNER(2)
       :: STALLABLE(3) -> l = OWNER(3)
       fi;
       expired = expired | (1 << l);
       stalls++;
       l = 0
     }
  od
}
