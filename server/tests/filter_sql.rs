//! Row filters proven on a real database (R17): random bundles are pushed to a real
//! server, random rows go into a real PostgreSQL table, and for random principals,
//! actions and sessions the SQL FilterRows returns, run with its bind parameters through
//! sqlx, selects exactly the rows whose Check allows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::pg::Postgres;
use common::*;
use portcullis_policy::synth::{random_bundle, random_request, random_row, rng};
use portcullis_policy::{Factor, Request, Resource};
use portcullis_proto::v1 as pb;
use sqlx::Row;
use std::collections::BTreeSet;

/// Cases to run (at least 1,000 per CI run) and the most random bundles to draw them from.
const CASES: usize = 1_200;
const MAX_BUNDLES: u64 = 60;
const CASES_PER_BUNDLE: usize = 100;
const ROWS: usize = 120;
/// Every column a random bundle's filter can name: the tenant, the id (random types call
/// it `id` or `uid`), both owner attributes random types use, and the attributes random
/// deny rules match on.
const COLUMNS: &[&str] = &["tenant_id", "id", "uid", "owner", "patient", "kind", "vip"];

fn wire_check(r: &Request, row: &Resource) -> pb::CheckRequest {
    let mut request = wire_request(r);
    request.resource = Some(pb::Resource {
        r#type: r.resource.resource_type.clone(),
        id: row.id.clone(),
        tenant: row.tenant.clone(),
        attributes: row.attributes.clone().into_iter().collect(),
    });
    request
}

/// The random rows, as a table `rows(n, tenant_id, id, uid, owner, patient, kind, vip)`.
async fn load_rows(db: &sqlx::PgPool, rows: &[Resource]) {
    sqlx::query("DROP TABLE IF EXISTS rows").execute(db).await.unwrap();
    let columns: Vec<String> = COLUMNS.iter().map(|c| format!("\"{c}\" text")).collect();
    sqlx::query(&format!(
        "CREATE TABLE rows (n int PRIMARY KEY, {})",
        columns.join(", ")
    ))
    .execute(db)
    .await
    .unwrap();
    for (n, row) in rows.iter().enumerate() {
        let mut q = sqlx::query("INSERT INTO rows VALUES ($1, $2, $3, $4, $5, $6, $7, $8)").bind(n as i32);
        q = q.bind(row.tenant.clone()).bind(row.id.clone()).bind(row.id.clone());
        for c in &COLUMNS[3..] {
            q = q.bind(row.attributes.get(*c).cloned());
        }
        q.execute(db).await.unwrap();
    }
}

/// The rows the filter's SQL selects, by number.
async fn selected(db: &sqlx::PgPool, f: &pb::FilterRowsResponse) -> BTreeSet<usize> {
    let sql = format!("SELECT n FROM rows WHERE {} ORDER BY n", f.sql);
    let mut q = sqlx::query(&sql);
    for p in &f.sql_params {
        q = match &p.value {
            Some(pb::sql_param::Value::Text(t)) => q.bind(t.clone()),
            Some(pb::sql_param::Value::TextArray(list)) => q.bind(list.values.clone()),
            None => panic!("a parameter without a value in {f:?}"),
        };
    }
    let found = q
        .fetch_all(db)
        .await
        .unwrap_or_else(|e| panic!("{sql} with {:?}: {e}", f.sql_params));
    found.iter().map(|r| r.get::<i32, _>(0) as usize).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_of_a_row_filter_selects_exactly_the_rows_check_allows() {
    let pg = Postgres::start();
    let db = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let dir = temp_dir("filter-sql");
    let server = TestServer::start_with(&dir, None, |c| c.audit = None).await;
    let (mut admin_api, mut authz) = (server.admin().await, server.authz().await);
    let (mut cases, mut with_rows, mut with_exclusions) = (0, 0, 0);
    for seed in 0..MAX_BUNDLES {
        if cases >= CASES {
            break;
        }
        let bundle = random_bundle(seed);
        let pushed = admin_api
            .push_snapshot(admin(pb::PushSnapshotRequest {
                bundle: serde_json::to_vec(&bundle).unwrap(),
                format: pb::BundleFormat::Json as i32,
                author: "filter-sql".into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let mut rng = rng(seed ^ 0xf1);
        let rows: Vec<Resource> = (0..ROWS).map(|_| random_row(&bundle, &mut rng)).collect();
        load_rows(&db, &rows).await;
        for i in 0..CASES_PER_BUNDLE {
            let mut r = random_request(&bundle, &mut rng);
            if i % 3 != 0 {
                // Most random sessions fail before any grant is looked at (idle, no second
                // factor); give two cases in three a fresh session with MFA, so the filters
                // select rows and the comparison has something to compare.
                let at = r.at.unwrap();
                r.session.authenticated_at = Some(portcullis_policy::Timestamp(at.0 - 60));
                r.session.last_activity = Some(at);
                r.session.factors = vec![Factor::Password, Factor::Totp];
            }
            // Asked as an admin, so the random decision time is honoured (what-if).
            let filter = authz
                .filter_rows(admin(pb::FilterRowsRequest {
                    principal: r.principal.clone(),
                    action: r.action.clone(),
                    resource_type: r.resource.resource_type.clone(),
                    session: Some(wire_session(&r.session)),
                    at: r.at.map(|t| t.0),
                    min_version: pushed.version,
                    ..Default::default()
                }))
                .await;
            let filter = match filter {
                Ok(f) => f.into_inner(),
                // A random session may be impossible (activity before authentication, ...):
                // the server refuses it for filters and checks alike.
                Err(s) if s.code() == tonic::Code::InvalidArgument => continue,
                Err(s) => panic!("{s}"),
            };
            let checks = authz
                .batch_check(admin(pb::BatchCheckRequest {
                    requests: rows.iter().map(|row| wire_check(&r, row)).collect(),
                    min_version: pushed.version,
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner();
            let allowed: BTreeSet<usize> = checks
                .decisions
                .iter()
                .enumerate()
                .filter(|(_, d)| is_allow(d))
                .map(|(n, _)| n)
                .collect();
            let got = selected(&db, &filter).await;
            assert_eq!(
                got,
                allowed,
                "bundle seed {seed}, request {}\nsql {} with {:?}",
                serde_json::to_string(&r).unwrap(),
                filter.sql,
                filter.sql_params
            );
            cases += 1;
            with_rows += usize::from(!allowed.is_empty());
            with_exclusions += usize::from(!filter.exclusions.is_empty());
        }
    }
    eprintln!("{cases} filters run on PostgreSQL: {with_rows} selected rows, {with_exclusions} had deny exclusions");
    assert!(cases >= 1_000, "only {cases} cases ran");
    // The comparison means something only if the filters select rows, and not all of them.
    assert!(
        with_rows >= cases / 8,
        "{with_rows} of {cases} filters selected any row"
    );
    assert!(with_exclusions > 0, "no filter had a deny exclusion");
    server.stop().await.unwrap();
}
