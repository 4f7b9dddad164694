//! The fence nobody forges: the identity is read schema-qualified, only the library's stamp
//! writes it, and a copy of the database (stamped elsewhere) is refused until adopted.

mod common;

use common::*;
use schema_fence::error::RunnerError;
use schema_fence::runner::{Claim, Runner, RunnerOptions};
use schema_fence::store::{self, identity};
use schema_fence::{Error, Topology};

fn topology() -> Topology {
    Topology::load(&gitlab_fixtures().join("database_connections")).unwrap()
}

fn installed(prefix: &str) -> String {
    let url = fresh_database(prefix);
    let serves = vec!["main".to_string(), "ci".to_string()];
    store::install(&mut connect(&url), "main", &serves, None).unwrap();
    url
}

fn sqlstate(e: &postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

#[test]
fn a_write_to_the_identity_other_than_the_librarys_stamp_is_refused() {
    let url = installed("identity_forged");
    let mut client = connect(&url);
    for forged in [
        "UPDATE schema_fence_identity SET serves = '{main}'",
        "DELETE FROM schema_fence_identity",
        "TRUNCATE schema_fence_identity",
        "INSERT INTO schema_fence_identity (singleton, name, serves) VALUES (true, 'x', '{x}') \
         ON CONFLICT (singleton) DO UPDATE SET name = 'x'",
    ] {
        let err = client.batch_execute(forged).unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{forged}");
    }
    // A session-wide SET of the setting allows nothing: it must be this transaction's id.
    client
        .batch_execute("SET schema_fence.stamp = '12345'")
        .unwrap();
    let err = client
        .batch_execute("UPDATE schema_fence_identity SET epoch = 99")
        .unwrap_err();
    let message = schema_fence::error::describe_pg_error(&err);
    assert!(
        message.contains("written only by schema_fence"),
        "{message}"
    );
    let identity = identity::require(&mut client).unwrap();
    assert_eq!((identity.serves.len(), identity.epoch), (2, 0));
}

#[test]
fn the_identity_is_read_schema_qualified_whatever_the_search_path() {
    let url = installed("identity_shadowed");
    let mut client = connect(&url);
    client
        .batch_execute(
            "CREATE SCHEMA shadow;
             CREATE TABLE shadow.schema_fence_identity (singleton boolean, name text, serves text[],
                 epoch bigint, stamped_at timestamptz, claims_paused boolean,
                 system_identifier bigint, database_oid bigint);
             INSERT INTO shadow.schema_fence_identity VALUES (true, 'ci', '{ci}', 7, now(), false, 1, 1);
             SET search_path = shadow, public;",
        )
        .unwrap();
    assert_eq!(identity::require(&mut client).unwrap().name, "main");
    let mut runner = Runner::new(
        &format!("{url}?options=-c%20search_path%3Dshadow,public"),
        "main",
        topology(),
        RunnerOptions::default(),
    );
    assert_eq!(runner.identity().unwrap().name, "main");
}

#[test]
fn a_template_copy_is_refused_naming_both_places_until_adopted() {
    let url = installed("identity_original");
    let original_db = url.rsplit('/').next().unwrap().to_string();
    let copy_db = format!("{original_db}_copy");
    let server = url.replace(&format!("/{original_db}"), "/postgres");
    connect(&server)
        .batch_execute(&format!(
            "CREATE DATABASE \"{copy_db}\" TEMPLATE \"{original_db}\""
        ))
        .unwrap();
    let copy = url.replace(&format!("/{original_db}"), &format!("/{copy_db}"));

    let mut on_copy = Runner::new(&copy, "main", topology(), RunnerOptions::default());
    let err = on_copy.claim_next().unwrap_err();
    assert!(
        matches!(err, Error::Runner(RunnerError::IdentityMismatch { .. })),
        "{err}"
    );
    let message = err.to_string();
    let oids: Vec<i64> = [&url, &copy]
        .iter()
        .map(|u| {
            connect(u)
                .query_one(
                    "SELECT oid::bigint FROM pg_database WHERE datname = current_database()",
                    &[],
                )
                .unwrap()
                .get(0)
        })
        .collect();
    assert!(
        message.contains(&format!("database oid {}", oids[0])),
        "{message}"
    );
    assert!(
        message.contains(&format!("database oid {}", oids[1])),
        "{message}"
    );
    assert!(on_copy.fetch().is_err());

    // The original is untouched by the copy and keeps working.
    let mut on_original = Runner::new(&url, "main", topology(), RunnerOptions::default());
    assert_eq!(on_original.claim_next().unwrap(), Claim::Nothing);

    let adopted = identity::adopt(
        &mut connect(&copy),
        "main",
        &["main".to_string(), "ci".to_string()],
    )
    .unwrap();
    assert_eq!(adopted.epoch, 1);
    let mut after = Runner::new(&copy, "main", topology(), RunnerOptions::default());
    assert_eq!(after.claim_next().unwrap(), Claim::Nothing);
}

#[test]
fn adopting_refuses_a_name_outside_what_it_serves_and_changes_nothing() {
    let url = installed("identity_adopt_bad");
    let mut client = connect(&url);
    let err = identity::adopt(&mut client, "ci", &["main".to_string()]).unwrap_err();
    assert!(
        err.to_string()
            .contains("must be one of the databases it serves"),
        "{err}"
    );
    assert_eq!(identity::require(&mut client).unwrap().epoch, 0);
}
