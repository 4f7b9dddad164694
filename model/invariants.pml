/* The invariants. Those about a transition are asserted where it happens (worker.pml: a claim
 * with an old epoch, a batch on a stale copy, a range completed by two leases); those about a
 * state are watched here in every reachable state. Each names what it found in the trail. */

/* A copy of the ci table is stale when it is not the one the application's data lives in, or
 * misses a write the application was told had succeeded. */
#define STALE(d) ((d) != home || (acked & ~db[d].writes) != 0)

/* An acknowledged write is lost when it is neither in the table that keeps the data now nor on
 * its way there through the reverse replication. */
#define LOST(n) (n < NW && ((acked >> n) & 1) && !((db[home].writes >> n) & 1) && \
                 !(home == S && rev_on && rev??[R_WRITE, eval(n)]))
#define ANY_LOST (LOST(0) || LOST(1) || LOST(2))

/* A range recorded as done where the data lives, whose batch writes are not there. */
#define UNCOVERED(n) (n < K && db[home].job[n] == J_DONE && !((db[home].ranges >> n) & 1))
#define ANY_UNCOVERED (UNCOVERED(0) || UNCOVERED(1) || UNCOVERED(2))

/* The liveness goal: the migration finished where its table lives, and the application got all
 * its writes acknowledged. */
#define ALL_DONE (db[home].mig == M_FINISHED && acked == ALLW)

#ifdef LIVENESS
ltl finishes { <> ALL_DONE }
#endif

/* UNWATCHED_ONE_WRITABLE turns that watch off, so that a planted bug breaking it too is reported
 * by the lost write it leads to (model_spec.rb). */
proctype monitor() {
  byte n;
end:
  do
#ifndef UNWATCHED_ONE_WRITABLE
  :: atomic {
       (ACCEPTS(S) && ACCEPTS(T)) ->
       printf("INVARIANT one_writable: both databases accept writes to the ci table\n");
       assert(false)
     }
#endif
  :: atomic {
       ANY_LOST ->
       n = 0;
       do
       :: LOST(n) -> break
       :: else -> n++
       od;
       printf("INVARIANT lost_write: acknowledged write %d is lost: it is not on database %d, which keeps the ci table now\n",
              n, home);
       assert(false)
     }
  :: atomic {
       ANY_UNCOVERED ->
       n = 0;
       do
       :: UNCOVERED(n) -> break
       :: else -> n++
       od;
       printf("INVARIANT uncovered: range %d is recorded done on database %d without its batch writes\n", n, home);
       assert(false)
     }
  od
}
