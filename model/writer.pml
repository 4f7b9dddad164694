/* The application writing the ci table through its ci connection (the rollback and cutover
 * specs' writer): a refused write (SF001 from the fence, 55000 from the write locks, a read-only
 * replica) is retried until a database accepts it; an accepted one is acknowledged. The
 * operator re-points the connection once the cutover, or the rollback, has returned. */
proctype writer() {
  byte w;
  do
  :: w == NW -> break
  :: w < NW ->
     atomic {
       ROOM(app_conn, 1) && ACCEPTS(app_conn) ->
       db[app_conn].writes = db[app_conn].writes | (1 << w);
       ship_table(app_conn, P_WRITE, w);
       acked = acked | (1 << w);
       w++
     }
  od
}
