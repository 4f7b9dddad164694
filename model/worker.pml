/* A worker (lib/schema_fence/worker.rb Worker#run_migration_batch over the native Runner,
 * src/runner/mod.rs) configured for database `logical`, connected to physical database d:
 * fetch, claim, run the batch, complete or fail it; killed at any point within the budget. */

/* The identity of d serves ci to this worker: fence() in runner/fence.rs gives Work with
 * gitlab_ci allowed (Idle when another database owns it; Misrouted when d does not serve it,
 * or is retired). */
#define WORKS(d, logical) (db[d].name == logical && (db[d].serves & SERVES_CI) != 0)

#define LIVE(d, k) (db[d].job[k] == J_RUN && !EXPIRED(db[d].lease[k]))
#define ABANDONED(d, k) (db[d].job[k] == J_RUN && EXPIRED(db[d].lease[k]))
/* Attempts are not counted: the limit is above the faults of the small configuration, so no
 * batch fails for good (docs/model.md). */
#define RETRYABLE(d, k) (db[d].job[k] == J_PEND || db[d].job[k] == J_FAIL || ABANDONED(d, k))

/* A killed worker: its lease stays until it expires; the restarted process is a new owner. */
#define WORKER_CRASH_POINT \
  if \
  :: atomic { worker_crashes < WORKER_CRASHES -> worker_crashes++; incarnation[me]++; \
              holding[me] = false; k = 0; e = 0; ran = false; goto top } \
  :: true \
  fi

/* batch.rs finish_if_done: with no range left to hand out, the migration is finished when every
 * job succeeded, untouched while a job is open. */
#define ALL_JOBS_DONE(d) (db[d].job[0] == J_DONE && (K < 2 || db[d].job[1] == J_DONE) && \
                          (K < 3 || db[d].job[2] == J_DONE))
inline finish_if_done(d) {
  if
  :: ALL_JOBS_DONE(d) && db[d].mig == M_ACTIVE -> db[d].mig = M_FINISHED; ship_mig(d)
  :: else
  fi
}

proctype worker(byte me; byte d; byte logical) {
  byte k, e;
  bool ran, last;
end:
top:
  /* Runner::fetch (runner/mod.rs, FETCH_WITH_IDENTITY in runner/sql.rs): the identity and
   * the executable migrations in one statement; the epoch it saw goes with the claim. */
  atomic { WORKS(d, logical) && db[d].mig == M_ACTIVE && !db[d].recovery -> e = db[d].epoch }
  WORKER_CRASH_POINT;

  /* Runner::claim_in_transaction (runner/mod.rs) and batch::claim_batch (runner/batch.rs):
   * one transaction; the identity read FOR SHARE, so a stamp waits for it. */
  atomic {
    ROOM(d, 2);
    if
    :: !WORKS(d, logical) -> goto top          /* Fence::Idle or MisroutedConnection */
    :: else
    fi;
#ifndef BUG_NO_EPOCH_CHECK
    if
    :: e != db[d].epoch -> goto top            /* Error::EpochChanged */
    :: else
    fi;
#endif
    if
    :: db[d].paused || db[d].mig != M_ACTIVE -> goto top   /* Claim::Paused, LOCK_MIGRATION */
    :: else
    fi;
    /* LOCK_MIGRATION: the first job to run again (pending, failed or abandoned with attempts
     * left), else INSERT_JOB for the next key range, else finish_if_done. */
    k = 0;
    do
    :: k < K && RETRYABLE(d, k) -> break
    :: k < K && !RETRYABLE(d, k) -> k++
    :: k == K -> break
    od;
    if
    :: k == K ->
       k = 0;
       do
       :: k < K && db[d].job[k] != J_NONE -> k++
       :: else -> break
       od
    :: else
    fi;
    if
    :: k == K -> finish_if_done(d); k = 0; goto top
    :: else
    fi;
    if
    :: e != db[d].epoch ->
       printf("INVARIANT old_epoch: worker %d claimed range %d on database %d with epoch %d, the identity has %d\n",
              me, k, d, e, db[d].epoch);
       assert(false)
    :: else
    fi;
    /* TAKE_JOB or INSERT_JOB: status running, a fresh lease of ours */
    holding[me] = true;
    expired = expired & ~(1 << OWNER(me));
    db[d].job[k] = J_RUN;
    db[d].lease[k] = OWNER(me);
    ship_job(d, k)
  }
  WORKER_CRASH_POINT;

  /* Runner::run_sql_batch / the Ruby job (runner/sql_job.rs, worker.rb #perform): the batch
   * writes its key range, refused by the fence or the write locks (SF001, 55000). */
  atomic {
    ROOM(d, 1);
    if
    :: ACCEPTS(d) ->
       if
       :: STALE(d) ->
          printf("INVARIANT stale_batch: worker %d ran range %d on database %d, whose copy of the ci table is stale\n",
                 me, k, d);
          assert(false)
       :: else
       fi;
       db[d].ranges = db[d].ranges | (1 << k);
       ship_table(d, P_RANGE, k);
       ran = true
    :: else -> ran = false
    fi
  }
  WORKER_CRASH_POINT;

  /* batch::complete (COMPLETE_JOB: only while the lease is ours) or batch::fail (FAIL_JOB). */
  atomic {
    ROOM(d, 2);
    last = false;
    if
#ifdef BUG_COMPLETE_NO_LEASE
    :: ran ->
#else
    :: ran && db[d].job[k] == J_RUN && db[d].lease[k] == OWNER(me) ->
#endif
       /* counting both sides: the job rows travel with the replication and the merge */
       if
       :: db[d].job[k] == J_DONE ->
          printf("INVARIANT completed_twice: range %d on database %d was completed under another lease, and again by worker %d\n",
                 k, d, me);
          assert(false)
       :: else
       fi;
       db[d].job[k] = J_DONE;
       db[d].lease[k] = 0;
       ship_job(d, k);
       /* the ranges handed out reach the migration's end */
       last = (db[d].job[K - 1] != J_NONE)
    :: !ran && db[d].job[k] == J_RUN && db[d].lease[k] == OWNER(me) ->
       db[d].job[k] = J_FAIL;
       db[d].lease[k] = 0;
       ship_job(d, k)
    :: else                                      /* Completion::LeaseLost */
    fi;
    /* the lease ends with the batch (lease_owner NULL) */
    expired = expired | (1 << OWNER(me));
    holding[me] = false
  }
  if
  :: last ->
     WORKER_CRASH_POINT;
     /* batch::complete's second transaction (LOCK_MIGRATION_ROW, finish_if_done) */
     atomic { ROOM(d, 1); finish_if_done(d); last = false }
  :: else
  fi;
  k = 0; e = 0; ran = false;
  goto top
}
