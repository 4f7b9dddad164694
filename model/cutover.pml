/*
 * schema_fence: the claim protocol, the cutover and the rollback, as built, for Spin.
 * What it covers and leaves out: docs/model.md. Run it: model/check.
 *
 * Two physical databases: S, the source (main's, shared with ci before the split), and T, its
 * streaming replica (the new ci after the promotion). One migration of one ci table, split into
 * K key ranges; two main workers on S, two ci workers on T; an application writer writing the
 * ci table through its ci connection; the operator running the cutover and maybe a rollback;
 * crashes of any of them at any step, and a rerun.
 *
 * Planted bugs, each restoring an order or a check the code does not have (model_spec.rb):
 *   BUG_OLD_ORDER          no fence before the catch-up; write locks only after promote and stamp
 *   BUG_COMPLETE_NO_LEASE  completion ignores a lost lease
 *   BUG_NO_EPOCH_CHECK     the claim skips the epoch check
 *   BUG_UNLOCK_KEEPS_FENCE the rollback's unlock leaves a fence laid by a cutover stopped before
 *                          its lock_writes (the first version's bug, found by this model)
 */

#include "config.pml"
#include "state.pml"
#include "invariants.pml"
#include "replication.pml"
#include "worker.pml"
#include "writer.pml"
#include "operator.pml"

init {
  atomic {
    /* Before the split: S is main's database serving main and ci, T its streaming replica
     * (a copy of it, in recovery); the ci migration queued on S, so on T too. */
    db[S].name = MAIN; db[S].serves = SERVES_MAIN | SERVES_CI; db[S].mig = M_ACTIVE;
    db[T].name = MAIN; db[T].serves = SERVES_MAIN | SERVES_CI; db[T].mig = M_ACTIVE;
    db[T].recovery = true;
    run replica();
    run reverse();
    run lease_clock();
    run writer();
    run worker(0, S, MAIN);
    run worker(2, T, CI);
#if WORKERS_PER_DB > 1
    run worker(1, S, MAIN);
    run worker(3, T, CI);
#endif
    run operator();
    run monitor()
  }
}
