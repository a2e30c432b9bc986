//! A patients' records service that asks Portcullis before it answers: `GET /records/ID`
//! is guarded by Check (a record the caller may not read is "not found", R17) and
//! `GET /records` lists only the rows FilterRows allows. The caller is named by the
//! `x-user` header (a real service would take it from its session); the records are the
//! patient-portal example's, in memory, or in a PostgreSQL table with `--database URL`,
//! where the list runs FilterRows' SQL with its bind parameters (R17).
//!
//! ```sh
//! portcullis serve --bundle examples/patient-portal.yaml &
//! cargo run -p portcullis-example-service -- --portcullis http://127.0.0.1:50051 --listen 127.0.0.1:8080
//! curl -H 'x-user: pat-ann' http://127.0.0.1:8080/records
//! ```

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use portcullis_proto::v1 as pb;
use portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;

#[derive(Debug, Parser)]
struct Args {
    /// The Portcullis gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    portcullis: String,
    /// Where this service listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A check token, when the server requires one.
    #[arg(long, env = "PORTCULLIS_CHECK_TOKEN")]
    token: Option<String>,
    /// Keep the records in PostgreSQL (table `medical_records`, created and filled when
    /// missing) and list them with FilterRows' SQL.
    #[arg(long)]
    database: Option<String>,
}

/// A row of the service's table.
#[derive(Debug, Clone)]
struct Record {
    id: &'static str,
    tenant: &'static str,
    patient_id: &'static str,
    summary: &'static str,
}

const RECORDS: &[Record] = &[
    Record {
        id: "r-1",
        tenant: "clinic-north",
        patient_id: "pat-ann",
        summary: "annual check-up",
    },
    Record {
        id: "r-2",
        tenant: "clinic-south",
        patient_id: "pat-bob",
        summary: "x-ray",
    },
    Record {
        id: "r-3",
        tenant: "clinic-north",
        patient_id: "pat-ann",
        summary: "blood panel",
    },
    Record {
        id: "r-4",
        tenant: "clinic-north",
        patient_id: "pat-cy",
        summary: "vaccination",
    },
];

#[derive(Clone)]
struct App {
    portcullis: AuthorizationServiceClient<Channel>,
    token: Option<String>,
    database: Option<sqlx::PgPool>,
}

/// Creates and fills `medical_records` when it is missing.
async fn seed(db: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS medical_records (id text PRIMARY KEY, tenant_id text, patient_id text, summary text)",
    )
    .execute(db)
    .await?;
    for r in RECORDS {
        sqlx::query("INSERT INTO medical_records VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING")
            .bind(r.id)
            .bind(r.tenant)
            .bind(r.patient_id)
            .bind(r.summary)
            .execute(db)
            .await?;
    }
    Ok(())
}

/// The rows of `medical_records` that FilterRows' SQL selects, run with its parameters.
async fn select(db: &sqlx::PgPool, f: &pb::FilterRowsResponse) -> anyhow::Result<Vec<serde_json::Value>> {
    use sqlx::Row;
    let sql = format!(
        "SELECT id, tenant_id, patient_id, summary FROM medical_records WHERE {} ORDER BY id",
        f.sql
    );
    let mut query = sqlx::query(&sql);
    for p in &f.sql_params {
        query = match &p.value {
            Some(pb::sql_param::Value::Text(t)) => query.bind(t.clone()),
            Some(pb::sql_param::Value::TextArray(l)) => query.bind(l.values.clone()),
            None => anyhow::bail!("a SQL parameter without a value"),
        };
    }
    let rows = query.fetch_all(db).await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({"id": r.get::<String, _>(0), "tenant": r.get::<Option<String>, _>(1),
                   "patient_id": r.get::<Option<String>, _>(2), "summary": r.get::<Option<String>, _>(3)})
        })
        .collect())
}

impl App {
    /// `message` with the check token, when there is one.
    fn request<T>(&self, message: T) -> anyhow::Result<tonic::Request<T>> {
        let mut request = tonic::Request::new(message);
        if let Some(t) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().context("token")?);
        }
        Ok(request)
    }
}

/// The caller's session as this service vouches for it: logged in a minute ago, active now.
fn session() -> pb::Session {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    pb::Session {
        authenticated_at: Some(now - 60),
        last_activity: Some(now),
        factors: vec!["password".into()],
        ..Default::default()
    }
}

/// The caller, named by the `x-user` header.
fn user(headers: &HeaderMap) -> Option<String> {
    headers.get("x-user").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn anonymous() -> Response {
    (StatusCode::UNAUTHORIZED, "name the caller in `x-user`").into_response()
}

fn json_of(r: &Record) -> serde_json::Value {
    json!({"id": r.id, "tenant": r.tenant, "patient_id": r.patient_id, "summary": r.summary})
}

/// Portcullis could not answer: fail closed, never serve the data.
fn unavailable(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("authorization unavailable: {e}"),
    )
        .into_response()
}

async fn one(State(app): State<App>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(principal) = user(&headers) else {
        return anonymous();
    };
    let Some(record) = RECORDS.iter().find(|r| r.id == id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let check = pb::CheckRequest {
        principal,
        action: "read".into(),
        resource: Some(pb::Resource {
            r#type: "medical_record".into(),
            id: record.id.into(),
            tenant: Some(record.tenant.into()),
            attributes: [("patient_id".to_owned(), record.patient_id.to_owned())].into(),
        }),
        session: Some(session()),
        hide_forbidden: true,
        ..Default::default()
    };
    let request = match app.request(check) {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    match app.portcullis.clone().check(request).await {
        Ok(r) => match r.into_inner().decision {
            Some(d) if d.effect == pb::Effect::Allow as i32 => axum::Json(json_of(record)).into_response(),
            // R17: what the caller may not see does not exist for them.
            Some(d) if d.not_found => StatusCode::NOT_FOUND.into_response(),
            Some(d) => (StatusCode::FORBIDDEN, d.reason).into_response(),
            None => unavailable("no decision"),
        },
        Err(status) => unavailable(status.message()),
    }
}

/// Whether a row passes the filter's id-set terms (the portable form of the SQL).
fn visible(f: &pb::FilterRowsResponse, r: &Record) -> bool {
    use pb::filter_rows_response::Kind;
    let attributes: BTreeMap<&str, &str> = [("patient_id", r.patient_id)].into();
    let has = |list: &[String], v: &str| list.iter().any(|x| x == v);
    let within = |list: &Option<pb::StringList>, v: &str| list.as_ref().is_none_or(|l| has(&l.values, v));
    let allowed = match Kind::try_from(f.kind) {
        Ok(Kind::All) => true,
        Ok(Kind::Some) => {
            has(&f.tenant_ids, r.tenant)
                || has(&f.resource_ids, r.id)
                || f.pairs
                    .iter()
                    .any(|p| has(&p.tenant_ids, r.tenant) && has(&p.resource_ids, r.id))
                || f.owned.iter().any(|o| {
                    o.owner == r.patient_id && within(&o.tenant_ids, r.tenant) && within(&o.resource_ids, r.id)
                })
        }
        _ => false,
    };
    let excluded = f.exclusions.iter().any(|x| {
        (x.tenant_ids.is_empty() || has(&x.tenant_ids, r.tenant))
            && (x.resource_ids.is_empty() || has(&x.resource_ids, r.id))
            && x.when
                .iter()
                .all(|(k, v)| attributes.get(k.as_str()) == Some(&v.as_str()))
    });
    allowed && !excluded
}

async fn list(State(app): State<App>, headers: HeaderMap) -> Response {
    let Some(principal) = user(&headers) else {
        return anonymous();
    };
    let filter = pb::FilterRowsRequest {
        principal,
        action: "read".into(),
        resource_type: "medical_record".into(),
        session: Some(session()),
        ..Default::default()
    };
    let request = match app.request(filter) {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    match app.portcullis.clone().filter_rows(request).await {
        Ok(r) => {
            let f = r.into_inner();
            let rows = match &app.database {
                // The SQL form: the database does the filtering.
                Some(db) => match select(db, &f).await {
                    Ok(rows) => rows,
                    Err(e) => return unavailable(e),
                },
                // The id-set form, for rows that are not in a SQL database.
                None => RECORDS.iter().filter(|r| visible(&f, r)).map(json_of).collect(),
            };
            axum::Json(json!({"records": rows, "sql": f.sql})).into_response()
        }
        Err(status) => unavailable(status.message()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let channel = Channel::from_shared(args.portcullis.clone())?.connect_lazy();
    let database = match &args.database {
        Some(url) => {
            let db = sqlx::PgPool::connect(url)
                .await
                .with_context(|| format!("cannot connect to `{url}`"))?;
            seed(&db).await.context("cannot create the records table")?;
            Some(db)
        }
        None => None,
    };
    let app = App {
        portcullis: AuthorizationServiceClient::new(channel),
        token: args.token,
        database,
    };
    let router = axum::Router::new()
        .route("/records", get(list))
        .route("/records/{id}", get(one))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("records service on http://{}", args.listen);
    axum::serve(listener, router).await?;
    Ok(())
}
