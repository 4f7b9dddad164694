//! The claim in one round trip: `public.schema_fence_claim`, a PL/pgSQL function the install
//! creates, runs the fetch, the locks, the key-range walk and the new job of a claim on the
//! server, in one statement and so in one transaction.
//!
//! It holds no rule of its own. Its statements are the runner's own texts (`sql.rs`), with
//! their parameters renamed to the function's; what they decide stays in Rust:
//! - the fence: the caller passes the identity it fenced on last (name, serves, epoch and the
//!   place recorded), and the function answers `identity` unless the row, read under the share
//!   lock, is still that one, claims not paused;
//! - the health check: the caller passes the migrations whose fresh verdict is "go" (NULL: no
//!   health check), and the function answers `check` with the first candidate not among them;
//! - cursor migrations, names that are not valid identifiers and standbys: `fallback`, and the
//!   caller claims in its own transaction, statement by statement, as without the function.
//!
//! Otherwise it answers `batch` with the claimed batch, or `nothing`.

use super::sql;

/// The function's parameters, in order: what `$n` of the runner's statements become.
const PARAMETERS: &str = "p_name text, p_serves text[], p_epoch bigint, \
    p_system_identifier bigint, p_database_oid bigint, p_allowed text[], p_only bigint, \
    p_finalizing boolean, p_owner text, p_lease double precision, p_max_attempts smallint, \
    p_stuck_after double precision, p_fetch_limit bigint, p_checked bigint[], p_ahead bigint[]";

/// The function's signature before it took `p_ahead`, which an install replaces.
pub(crate) const DROP_BEFORE_AHEAD: &str =
    "DROP FUNCTION IF EXISTS public.schema_fence_claim(text, \
    text[], bigint, bigint, bigint, text[], bigint, boolean, text, double precision, smallint, \
    double precision, bigint, bigint[])";

/// The call, with its 15 parameters bound.
pub(super) const CALL: &str = "SELECT * FROM public.schema_fence_claim($1::text, $2::text[], \
    $3::bigint, $4::bigint, $5::bigint, $6::text[], $7::bigint, $8::boolean, $9::text, \
    $10::float8, $11::int2, $12::float8, $13::bigint, $14::bigint[], $15::bigint[])";

/// `sql` with each `$n` replaced by `names[n - 1]`.
fn renamed(sql: &str, names: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let n: usize = digits
            .parse()
            .expect("every $ of a runner statement is a parameter");
        out.push_str(names[n - 1]);
        rest = &rest[at + 1 + digits.len()..];
    }
    out.push_str(rest);
    out
}

/// A walk's text as a `format()` template: `%1$s` the quoted column, `%2$s` the quoted table.
fn template(walk: fn(&str, &str) -> String) -> String {
    walk("%2$s", "%1$s")
}

/// What `sql::LOCK_MIGRATION`'s parameters are called in the function.
const LOCK_MIGRATION_NAMES: [&str; 6] = [
    "v_id",
    "p_allowed",
    "p_max_attempts",
    "p_finalizing",
    "p_stuck_after",
    "(p_only IS NULL)",
];

/// The install's statement: creates or replaces the function.
pub(crate) fn create_sql() -> String {
    let fetch = renamed(sql::FETCH, &["p_allowed", "p_fetch_limit"]);
    let lock_candidate = renamed(sql::LOCK_CANDIDATE, &["v_id"]);
    // Run by the runner, the lock's "still due" test is a statement of its own and reads the time
    // it starts; in the function every statement would read the call's start instead, and a
    // migration whose batch another worker claimed since (at an interval of 0) would not be due
    // yet: an empty claim (5.9% of them with 8 workers in bench/claims_bench.rb).
    let lock_migration = renamed(sql::LOCK_MIGRATION, &LOCK_MIGRATION_NAMES)
        .replace("statement_timestamp()", "clock_timestamp()");
    let take_job = renamed(
        sql::TAKE_JOB,
        &["o_job_id", "p_owner", "p_lease", "p_epoch"],
    );
    let insert_job = renamed(
        sql::INSERT_JOB,
        &[
            "v_id",
            "o_min_value",
            "o_max_value",
            "o_batch_size",
            "o_sub_batch_size",
            "o_pause_ms",
            "p_owner",
            "p_lease",
            "p_epoch",
        ],
    );
    let unfinished = renamed(
        sql::UNFINISHED_JOBS,
        &["v_id", "p_max_attempts", "p_stuck_after"],
    );
    let fail_abandoned = renamed(
        sql::FAIL_ABANDONED_JOBS,
        &["v_id", "p_max_attempts", "p_stuck_after"],
    );
    let set_status = renamed(sql::SET_MIGRATION_STATUS, &["v_id", "v_status"]);
    let nth_key = template(sql::nth_key_text);
    let first_key = template(sql::first_key_text);
    let loose_range = template(sql::loose_key_range_text);
    format!(
        r#"
CREATE OR REPLACE FUNCTION public.schema_fence_claim({PARAMETERS})
RETURNS TABLE (o_outcome text, o_migration_id bigint, o_job_id bigint, o_job_class_name text,
               o_table_name text, o_column_name text, o_job_arguments text, o_gitlab_schema text,
               o_min_value bigint, o_max_value bigint, o_batch_size integer,
               o_sub_batch_size integer, o_pause_ms integer, o_attempts smallint,
               o_dense boolean, o_batch_class_name text)
LANGUAGE plpgsql AS $claim$
DECLARE
    v_identity record;
    v_candidates bigint[];
    v_id bigint;
    v_locked bigint;
    v_min bigint;
    v_max bigint;
    v_retry bigint;
    v_retry_min bigint;
    v_retry_max bigint;
    v_retry_batch integer;
    v_retry_sub integer;
    v_retry_pause integer;
    v_retry_attempts smallint;
    v_last bigint;
    v_start bigint;
    v_end bigint;
    v_first bigint;
    v_count bigint;
    v_column text;
    v_table text;
    v_open bigint;
    v_failed bigint;
    v_status smallint;
BEGIN
    -- A standby cannot take the share lock: the caller's own path says what it is to do.
    IF pg_is_in_recovery() THEN
        o_outcome := 'fallback';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT i.name, i.serves, i.epoch, i.claims_paused, i.system_identifier, i.database_oid
    INTO v_identity
    FROM public.schema_fence_identity i WHERE i.singleton FOR SHARE;
    IF NOT FOUND OR (v_identity.name, v_identity.serves, v_identity.epoch,
                     v_identity.claims_paused, v_identity.system_identifier,
                     v_identity.database_oid)
                    IS DISTINCT FROM (p_name, p_serves, p_epoch, false, p_system_identifier,
                                      p_database_oid) THEN
        o_outcome := 'identity';
        RETURN NEXT;
        RETURN;
    END IF;

    IF p_only IS NULL THEN
        v_candidates := ARRAY({fetch});
    ELSE
        v_candidates := ARRAY[p_only];
    END IF;

    FOREACH v_id IN ARRAY v_candidates LOOP
        IF p_checked IS NOT NULL AND NOT p_finalizing AND NOT v_id = ANY (p_checked) THEN
            o_outcome := 'check';
            o_migration_id := v_id;
            RETURN NEXT;
            RETURN;
        END IF;
        {lock_candidate} INTO v_locked;
        CONTINUE WHEN NOT FOUND;
        {lock_migration} INTO o_migration_id, o_job_class_name, o_table_name, o_column_name,
            o_job_arguments, o_gitlab_schema, v_min, v_max, o_batch_size, o_sub_batch_size,
            o_pause_ms, v_retry, v_retry_min, v_retry_max, v_retry_batch, v_retry_sub,
            v_retry_pause, v_retry_attempts, v_last, o_batch_class_name;
        CONTINUE WHEN NOT FOUND;
        IF v_min IS NULL OR v_max IS NULL THEN
            o_outcome := 'fallback';
            RETURN NEXT;
            RETURN;
        END IF;
        o_attempts := 1;
        o_dense := false;
        IF v_retry IS NOT NULL THEN
            o_job_id := v_retry;
            o_min_value := v_retry_min;
            o_max_value := v_retry_max;
            o_batch_size := v_retry_batch;
            o_sub_batch_size := v_retry_sub;
            o_pause_ms := v_retry_pause;
            o_attempts := v_retry_attempts + 1;
            {take_job};
            o_outcome := 'batch';
            RETURN NEXT;
            RETURN;
        END IF;

        v_start := CASE WHEN v_last IS NULL THEN v_min
                        WHEN v_last = 9223372036854775807 THEN v_last
                        ELSE v_last + 1 END;
        v_end := NULL;
        IF v_start <= v_max THEN
            -- The names as the runner quotes them (sql::quote_table); others are its to refuse.
            IF octet_length(o_column_name) NOT BETWEEN 1 AND 63
               OR octet_length(split_part(o_table_name, '.', 1)) NOT BETWEEN 1 AND 63
               OR (strpos(o_table_name, '.') > 0
                   AND octet_length(substr(o_table_name, strpos(o_table_name, '.') + 1))
                       NOT BETWEEN 1 AND 63) THEN
                o_outcome := 'fallback';
                RETURN NEXT;
                RETURN;
            END IF;
            v_column := '"' || replace(o_column_name, '"', '""') || '"';
            v_table := CASE WHEN strpos(o_table_name, '.') > 0
                THEN '"' || replace(split_part(o_table_name, '.', 1), '"', '""') || '"."'
                     || replace(substr(o_table_name, strpos(o_table_name, '.') + 1), '"', '""')
                     || '"'
                ELSE '"' || replace(o_table_name, '"', '""') || '"' END;
            IF o_batch_class_name = 'PrimaryKeyBatchingStrategy' THEN
                -- The walk ahead (ahead.rs): migration, start, batch size and the end found.
                IF p_ahead IS NOT NULL AND p_ahead[1] = v_id AND p_ahead[2] = v_start
                   AND p_ahead[3] = o_batch_size AND p_ahead[4] BETWEEN v_start AND v_max THEN
                    v_end := p_ahead[4];
                ELSE
                    EXECUTE format($walk${nth_key}$walk$, v_column, v_table)
                        INTO v_end USING v_start, v_max, o_batch_size::bigint;
                END IF;
                IF v_end IS NOT NULL THEN
                    o_dense := v_end::numeric - v_start = o_batch_size - 1;
                ELSE
                    EXECUTE format($walk${first_key}$walk$, v_column, v_table)
                        INTO v_first USING v_start, v_max;
                    IF v_first IS NOT NULL THEN
                        v_end := v_max;
                    END IF;
                END IF;
            ELSE
                EXECUTE format($walk${loose_range}$walk$, v_column, v_table)
                    INTO v_first, v_end, v_count USING v_start, v_max, o_batch_size::bigint;
                IF v_end IS NOT NULL AND v_count < o_batch_size THEN
                    v_end := v_max;
                END IF;
            END IF;
        END IF;

        IF v_end IS NULL THEN
            -- Every range is handed out: finished once none is open (batch::finish_if_done).
            {unfinished} INTO v_open, v_failed;
            IF v_open = 0 THEN
                IF v_failed > 0 THEN
                    {fail_abandoned};
                END IF;
                v_status := CASE WHEN v_failed > 0 THEN 4 ELSE 3 END;
                {set_status};
            END IF;
            CONTINUE;
        END IF;

        o_min_value := v_start;
        o_max_value := v_end;
        {insert_job} INTO o_job_id;
        o_outcome := 'batch';
        RETURN NEXT;
        RETURN;
    END LOOP;
    o_outcome := 'nothing';
    RETURN NEXT;
END
$claim$;
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renamed_from_the_highest_digit_run() {
        assert_eq!(
            renamed(
                "a = $1 AND b = $10 AND c = $2::int",
                &["x", "y", "", "", "", "", "", "", "", "z"]
            ),
            "a = x AND b = z AND c = y::int"
        );
    }

    #[test]
    fn the_function_keeps_no_parameter_of_the_runners_statements() {
        let body = create_sql();
        let claim = body.split("$claim$").nth(1).expect("a body");
        for walk in claim.split("$walk$").step_by(2) {
            assert!(!walk.contains("$1"), "{walk}");
        }
    }

    #[test]
    fn the_migrations_lock_reads_the_clock_not_the_calls_start() {
        let lock_migration = renamed(sql::LOCK_MIGRATION, &LOCK_MIGRATION_NAMES);
        assert!(lock_migration.contains("statement_timestamp()"));
        let body = create_sql();
        assert!(
            body.contains(&lock_migration.replace("statement_timestamp()", "clock_timestamp()"))
        );
        assert!(!body.contains(&lock_migration));
    }
}
