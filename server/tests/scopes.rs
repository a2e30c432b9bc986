//! Least privilege for Portcullis's own API: every RPC against every kind of caller gives
//! exactly the outcome its scope calls for, refusals of `review` and `admin` calls are
//! audited, and the defaults keep reviews closed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::*;
use portcullis_server::scopes::{METHOD_SCOPES, Scope};
use prost::Message;
use tonic::Code;

const CHECK_TOKEN: &str = "svc-check-token";
const REVIEW_TOKEN: &str = "compliance-review-token";

#[test]
fn every_rpc_in_the_protos_has_a_scope() {
    let set = prost_types::FileDescriptorSet::decode(portcullis_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for m in &service.method {
                methods.push(format!("/{}.{}/{}", file.package(), service.name(), m.name()));
            }
        }
    }
    assert!(methods.len() >= 15, "{methods:?}");
    for m in &methods {
        assert!(
            METHOD_SCOPES.iter().any(|(p, _)| p == m),
            "{m} has no scope in METHOD_SCOPES: add it there and to this test's expectations"
        );
    }
    assert_eq!(
        methods.len(),
        METHOD_SCOPES.len(),
        "METHOD_SCOPES names a method the protos lack"
    );
}

/// A row of the table: who, the token sent, the scopes held (None: no valid credential).
type Caller = (&'static str, Option<&'static str>, Option<&'static [Scope]>);

/// What a caller holding `held` (None: no credential) gets on a method needing `need`:
/// `None` when admitted, else the code.
fn expected(held: Option<&[Scope]>, need: Scope) -> Option<Code> {
    let Some(held) = held else {
        return Some(Code::Unauthenticated);
    };
    let admitted = held.contains(&need) || held.contains(&Scope::Admin);
    (!admitted).then_some(Code::PermissionDenied)
}

#[tokio::test]
async fn every_rpc_admits_exactly_the_callers_whose_scope_it_needs() {
    let dir = temp_dir("scopes-table");
    let server = TestServer::start_with(&dir, Some("clinic-portal"), |cfg| {
        cfg.credentials.add_token("billing", CHECK_TOKEN, &[Scope::Check]);
        cfg.credentials.add_token("compliance", REVIEW_TOKEN, &[Scope::Review]);
    })
    .await;
    let callers: [Caller; 5] = [
        ("no credential", None, None),
        ("check token", Some(CHECK_TOKEN), Some(&[Scope::Check])),
        ("review token", Some(REVIEW_TOKEN), Some(&[Scope::Review])),
        ("admin token", Some(ADMIN_TOKEN), Some(&[Scope::Admin])),
        ("wrong token", Some("not-a-token"), None),
    ];
    let mut audited_refusals = 0;
    for (who, token, held) in callers {
        for (path, need) in METHOD_SCOPES {
            let got = call_empty(server.channel().await, path, token).await;
            match expected(held, *need) {
                Some(code) => {
                    assert_eq!(got, code, "{who} on {path}");
                    if *need != Scope::Check {
                        audited_refusals += 1;
                    }
                }
                None => assert!(!refused(got), "{who} on {path} was refused: {got:?}"),
            }
        }
    }
    // The message names the missing scope.
    let mut c = server.authz().await;
    let s = c
        .list_subjects(with_token(Default::default(), CHECK_TOKEN))
        .await
        .unwrap_err();
    assert!(s.message().contains("`review` scope"), "{}", s.message());
    audited_refusals += 1;
    server.stop().await.unwrap();

    // Every refused review or admin call is in the audit trail: who, what, from where.
    let mut refused_records = Vec::new();
    for entry in std::fs::read_dir(dir.join("audit")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            if r["kind"] == "refused" {
                refused_records.push(r);
            }
        }
    }
    assert_eq!(refused_records.len(), audited_refusals);
    let r = refused_records
        .iter()
        .find(|r| r["action"] == "/portcullis.v1.PolicyAdminService/PushSnapshot" && r["reason"] == "permission_denied")
        .expect("a refused push by the review token");
    assert!(r["client"].as_str().unwrap().starts_with("127.0.0.1:"), "{r}");
    assert!(r["client"].as_str().unwrap().contains(" token:"), "{r}");
}

#[tokio::test]
async fn by_default_checks_are_open_on_loopback_and_reviews_need_the_admin_token() {
    let dir = temp_dir("scopes-default");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    for (path, need) in METHOD_SCOPES {
        let got = call_empty(server.channel().await, path, None).await;
        if *need == Scope::Check {
            assert!(!refused(got), "{path}: {got:?}");
        } else {
            assert_eq!(got, Code::Unauthenticated, "{path}");
        }
        assert!(!refused(
            call_empty(server.channel().await, path, Some(ADMIN_TOKEN)).await
        ));
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn open_checks_on_a_public_address_need_an_explicit_yes() {
    let dir = temp_dir("scopes-public");
    let start = |allow: bool| {
        let dir = dir.clone();
        async move {
            let mut cfg = portcullis_server::serve::ServeConfig::new(dir);
            cfg.insecure = true;
            cfg.allow_open_checks = allow;
            let engine = portcullis_server::serve::prepare(&mut cfg).await.unwrap();
            let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
            portcullis_server::serve::run(cfg, engine, listener, async {}).await
        }
    };
    let err = start(false).await.unwrap_err();
    assert!(err.to_string().contains("--allow-open-checks"), "{err}");
    start(true).await.unwrap();
}

#[test]
fn config_files_name_credentials_with_their_scopes_and_bad_entries_are_refused() {
    use portcullis_server::serve::{FileConfig, ServeConfig};
    let apply = |text: &str| {
        let file: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut cfg = ServeConfig::new(temp_dir("scopes-config"));
        cfg.apply_file(file).map_err(|e| e.to_string())?;
        Ok::<_, String>(cfg)
    };
    let digest = portcullis_server::auth::digest_hex("compliance-token");
    let cfg = apply(&format!(
        "[[credentials]]\nname = \"compliance\"\ntoken_sha256 = \"{digest}\"\nscopes = [\"review\"]\n\n\
         [[credentials]]\nname = \"mesh\"\ncertificate = \"spiffe://clinic/billing\"\nscopes = [\"check\"]\n"
    ))
    .unwrap();
    let (name, scopes) = cfg.credentials.token("compliance-token").unwrap();
    assert_eq!(&**name, "compliance");
    assert!(scopes.has(Scope::Review) && !scopes.has(Scope::Check));
    assert!(
        cfg.credentials.any_for_checks(),
        "the certificate credential holds check"
    );

    for (bad, why) in [
        (
            "[[credentials]]\nname = \"x\"\ntoken_sha256 = \"00\"\nscopes = [\"root\"]\n",
            "unknown scope `root`",
        ),
        (
            "[[credentials]]\nname = \"x\"\ntoken_sha256 = \"00\"\nscopes = []\n",
            "has no scopes",
        ),
        (
            "[[credentials]]\nname = \"x\"\nscopes = [\"check\"]\n",
            "exactly one of",
        ),
        (
            "[[credentials]]\nname = \"x\"\ntoken_sha256 = \"zz\"\nscopes = [\"check\"]\n",
            "not hex",
        ),
    ] {
        let err = apply(bad).err().unwrap_or_default();
        assert!(err.contains(why) && err.contains("`x`"), "{bad:?} gave {err:?}");
    }
}
