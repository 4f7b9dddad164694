/* The operator: `rake schema_fence:cutover:execute` (Cutover#execute, src/cutover/mod.rs), maybe
 * `rake schema_fence:cutover:rollback` (Cutover#rollback), each killed at any step within the
 * budget and run again: a run resumes after the last step the log on the source records as
 * finished (cutover/log.rs finished_steps; run_step, run_rollback_step). */

/* Steps of src/cutover/steps.rs Step::ALL and src/cutover/rollback.rs RollbackStep::ALL. */
#define C_VERIFY 0
#define C_PAUSE 1
#define C_DRAIN 2
#define C_FENCE 3
#define C_CATCH_UP 4
#define C_PROMOTE 5
#define C_STAMP 6
#define C_LOCK_WRITES 7
#define C_RESUME 8
#define C_ALL 9

#define R_VERIFY 0
#define R_PAUSE 1
#define R_DRAIN 2
#define R_FENCE 3
#define R_CATCH_UP 4
#define R_MERGE 5
#define R_SEQUENCES 6
#define R_STAMP 7
#define R_UNLOCK 8
#define R_DROP_REPLICATION 9
#define R_RESUME 10
#define R_ALL 11

/* schema_fence_cutover_log on the source */
byte cut_done;          /* steps of the cutover finished, in order */
bool promote_started;   /* started_steps contains promote */
byte cut_epoch;         /* Begun::epoch of the cutover */
byte rb_done;
byte rb_epoch;
bool rb_begun;
bool returned;          /* execute returned (every step finished) */
bool finished;          /* the operator is done: nothing more to run */
byte operator_crashes;

/* A killed run, then a run again (the same or the other command). Placed inside the steps
 * that take several transactions: a kill after a step's only transaction and before its log
 * row leaves the state of that step done, which a rerun repeats (every step is idempotent),
 * and the choice of a rollback at any moment is there between the steps anyway. */
#define OPERATOR_CRASH_POINT \
  if \
  :: atomic { operator_crashes < OPERATOR_CRASHES -> operator_crashes++; goto start } \
  :: true \
  fi

/* Something to roll back, and a rollback that is not refused at its verify. */
#define ROLLBACK_MEANINGFUL (cut_done > 0 && (!promote_started || (ROLLBACK == 2 && rev_on)))

#define NO_LIVE_LEASE(d) (!LIVE(d, 0) && (K < 2 || !LIVE(d, 1)) && (K < 3 || !LIVE(d, 2)))

proctype operator() {
  byte k;
start:
  /* a run: execute (the first, or again), or the rollback; a rollback once begun is run again
   * until it has finished */
  if
  :: finished -> goto done
  :: !finished && rb_begun -> goto rollback
  :: !rb_begun && !returned -> goto execute
  :: !rb_begun && !returned && ROLLBACK >= 1 && ROLLBACK_MEANINGFUL -> goto rollback
  :: !rb_begun && returned && ROLLBACK >= 1 -> goto rollback
  :: !rb_begun && returned -> goto done
  fi;

execute:
  do
  :: cut_done == C_ALL -> break
  :: cut_done < C_ALL && ROLLBACK >= 1 && ROLLBACK_MEANINGFUL -> goto rollback   /* between steps */
  :: cut_done < C_ALL ->
     if
     :: cut_done == C_VERIFY ->
        /* verify.rs: the target is a replica of the source with its identity; nothing changes */
        atomic { db[T].recovery; cut_epoch = db[S].epoch; cut_done++ }
     :: cut_done == C_PAUSE ->
        /* steps.rs set_paused: claims_paused, replicated */
        atomic { ROOM(S, 1); db[S].paused = true; phys!P_PAUSE, 1, 0, 0 }
        cut_done++
     :: cut_done == C_DRAIN ->
        /* steps.rs drain: no live lease on the source (an expired one does not count) */
        NO_LIVE_LEASE(S);
        cut_done++
     :: cut_done == C_FENCE ->
#ifndef BUG_OLD_ORDER
        /* steps.rs Step::Fence, cutover/fence.rs lay: application writes fail with SF001 */
        atomic { ROOM(S, 1); db[S].fenced = true; phys!P_FENCE, 1, 0, 0 }
#endif
        cut_done++
     :: cut_done == C_CATCH_UP ->
        /* steps.rs catch_up: the source's WAL position now, then wait for the replica */
        catch_up_pending = len(phys);
        catch_up_pending == 0;
        cut_done++
     :: cut_done == C_PROMOTE ->
        promote_started = true;
        OPERATOR_CRASH_POINT;
        /* steps.rs promote: pg_promote(); what the replica did not receive is never replayed */
        d_step {
          if
          :: db[T].recovery ->
             db[T].recovery = false;
             phys_on = false;
             do
             :: nempty(phys) -> phys?_, _, _, _
             :: empty(phys) -> break
             od;
             catch_up_pending = 0;
             home = T
          :: else
          fi
        }
        OPERATOR_CRASH_POINT;
        /* reverse.rs set_up: publication, slot and subscription, still fenced */
        rev_on = true;
        cut_done++
     :: cut_done == C_STAMP ->
        /* steps.rs stamp: the target (ci, [ci], epoch+1) and the end of its copy of the fence in
         * one transaction; then the source (main, [main], epoch+1) */
        atomic {
          db[T].name = CI; db[T].serves = SERVES_CI; db[T].epoch = cut_epoch + 1;
          db[T].fenced = false
        }
        OPERATOR_CRASH_POINT;
        atomic { db[S].serves = SERVES_MAIN; db[S].epoch = cut_epoch + 1 }
        cut_done++
     :: cut_done == C_LOCK_WRITES ->
        /* steps.rs Step::LockWrites: on the source the locks replace the fence in one
         * transaction (the target's locks are on main's tables, not modelled) */
        atomic { db[S].locked = true; db[S].fenced = false }
        cut_done++
     :: cut_done == C_RESUME ->
        db[S].paused = false;
        OPERATOR_CRASH_POINT;
        db[T].paused = false;
        cut_done++
     fi
  od;
  /* execute returned: the ci connection is re-pointed at the new database */
  atomic { returned = true; app_conn = T }
  if
  :: ROLLBACK >= 1 -> goto rollback
  :: true -> goto done
  fi;

rollback:
  /* Cutover#rollback_before_promotion (cutover/mod.rs): before the promotion started, lift the
   * pause and the fence and forget the log: the whole rollback */
  if
  :: !promote_started ->
     atomic {
       ROOM(S, 2);
       db[S].paused = false; db[S].fenced = false;
       if
       :: phys_on -> phys!P_PAUSE, 0, 0, 0; phys!P_FENCE, 0, 0, 0
       :: else
       fi;
       cut_done = 0; finished = true
     }
     goto done
  :: else
  fi;
  /* rollback.rs verify: the reverse replication must be on the source; without it (killed
   * inside the promote step) the runbook says: finish the promotion with execute first */
  if
  :: !rev_on -> goto execute
  :: else
  fi;
  if
  :: !rb_begun -> atomic { rb_begun = true; rb_epoch = db[S].epoch }
  :: else
  fi;
  do
  :: rb_done == R_ALL -> break
  :: rb_done < R_ALL ->
     if
     :: rb_done == R_VERIFY -> rb_done++
     :: rb_done == R_PAUSE ->
        atomic { db[S].paused = true; db[T].paused = true }
        rb_done++
     :: rb_done == R_DRAIN ->
        NO_LIVE_LEASE(S) && NO_LIVE_LEASE(T);
        rb_done++
     :: rb_done == R_FENCE ->
        /* fence::lay on the target */
        db[T].fenced = true;
        rb_done++
     :: rb_done == R_CATCH_UP ->
        /* rollback.rs catch_up: a marker written on the target, seen on the source */
        atomic { nfull(rev) -> rev!R_MARK, 0; marks_in_flight++ }
        marks_in_flight == 0;
        rb_done++
     :: rb_done == R_MERGE ->
        /* merge.rs merge: the source takes the target's migration row and jobs; running and
         * failed jobs go back to pending with fresh attempts */
        d_step {
          db[S].mig = db[T].mig;
          k = 0;
          do
          :: k == K -> break
          :: k < K ->
             db[S].job[k] = db[T].job[k];
             db[S].lease[k] = db[T].lease[k];
             if
             :: db[S].job[k] == J_RUN || db[S].job[k] == J_FAIL ->
                db[S].job[k] = J_PEND; db[S].lease[k] = 0
             :: else
             fi;
             k++
          od;
          k = 0
        }
        rb_done++
     :: rb_done == R_SEQUENCES -> rb_done++
     :: rb_done == R_STAMP ->
        /* rollback.rs stamp: the target retired, then the source serving all again */
        atomic { db[T].serves = 0; db[T].epoch = rb_epoch + 1 }
        OPERATOR_CRASH_POINT;
        atomic { db[S].serves = SERVES_MAIN | SERVES_CI; db[S].epoch = rb_epoch + 1; home = S }
        rb_done++
     :: rb_done == R_UNLOCK ->
        /* rollback.rs Unlock: lock_writes::unlock_writes and fence::lift on the source (and the
         * relock of an earlier split: none). BUG_UNLOCK_KEEPS_FENCE plants the first version's
         * bug, found by this model: a fence laid by a cutover stopped before lock_writes stayed. */
        atomic {
          db[S].locked = false;
#ifndef BUG_UNLOCK_KEEPS_FENCE
          db[S].fenced = false
#endif
        }
        rb_done++
     :: rb_done == R_DROP_REPLICATION ->
        /* reverse.rs tear_down: what the source has not applied is dropped with the slot */
        d_step {
          rev_on = false;
          do
          :: nempty(rev) -> rev?_, _
          :: empty(rev) -> break
          od;
          marks_in_flight = 0
        }
        rb_done++
     :: rb_done == R_RESUME ->
        atomic { db[S].paused = false; db[T].paused = false }
        rb_done++
     fi
  od;
  /* the rollback returned (finish_rollback): the ci connection points at the source again */
  atomic { finished = true; returned = true; app_conn = S };

done:
  finished = true
}
