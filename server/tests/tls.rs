//! TLS and mutual TLS through rustls, with certificates made for the test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::*;
use portcullis_proto::v1::authorization_service_client::AuthorizationServiceClient;
use portcullis_server::serve::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "portcullis test CA");
    let ca = ca_params.clone().self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let issue = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca.pem(),
        server: issue("localhost"),
        client: issue("billing-service"),
    }
}

/// The server's certificate, key and client CA, written into `dir`.
fn server_files(dir: &std::path::Path, pki: &Pki) -> TlsFiles {
    let write = |name: &str, pem: &str| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    TlsFiles {
        cert: write("server.pem", &pki.server.0),
        key: write("server.key", &pki.server.1),
        client_ca: Some(write("ca.pem", &pki.ca_pem)),
    }
}

async fn client(server: &TestServer, pki: &Pki, with_identity: bool) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if with_identity {
        tls = tls.identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    }
    Channel::from_shared(format!("https://localhost:{}", server.addr.port()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
}

#[tokio::test]
async fn mutual_tls_admits_certified_clients_only() {
    let pki = pki();
    let dir = temp_dir("tls");
    let tls = server_files(&dir, &pki);
    let server = TestServer::start_with(&dir.join("data"), Some("clinic-portal"), |c| c.tls = Some(tls)).await;

    let channel = client(&server, &pki, true).await.unwrap();
    let d = AuthorizationServiceClient::new(channel)
        .check(ann_reads())
        .await
        .unwrap()
        .into_inner()
        .decision
        .unwrap();
    assert!(is_allow(&d));

    // Without a client certificate the handshake (or the first call) fails.
    let refused = match client(&server, &pki, false).await {
        Err(_) => true,
        Ok(ch) => AuthorizationServiceClient::new(ch).check(ann_reads()).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");

    // Plaintext to a TLS port fails too.
    let plain = Channel::from_shared(server.url()).unwrap().connect().await;
    let refused = match plain {
        Err(_) => true,
        Ok(ch) => AuthorizationServiceClient::new(ch).check(ann_reads()).await.is_err(),
    };
    assert!(refused, "plaintext was served on the TLS port");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_certificate_name_maps_to_scopes_without_a_token() {
    use portcullis_server::scopes::{METHOD_SCOPES, Scope};
    let pki = pki();
    let dir = temp_dir("tls-scopes");
    let tls = server_files(&dir, &pki);
    let server = TestServer::start_with(&dir.join("data"), Some("clinic-portal"), |c| {
        c.tls = Some(tls);
        // A check token exists, so checks are not open: the certificate must carry them.
        c.credentials.add_token("other", "svc-token", &[Scope::Check]);
        c.credentials
            .add_certificate("billing", "billing-service", &[Scope::Check, Scope::Review]);
    })
    .await;
    let channel = client(&server, &pki, true).await.unwrap();
    for (path, need) in METHOD_SCOPES {
        let got = call_empty(channel.clone(), path, None).await;
        if *need == Scope::Admin {
            assert_eq!(got, tonic::Code::PermissionDenied, "{path}");
        } else {
            assert!(!refused(got), "{path}: {got:?}");
        }
        // The admin token on the same connection adds its scopes.
        assert!(
            !refused(call_empty(channel.clone(), path, Some(ADMIN_TOKEN)).await),
            "{path}"
        );
    }
    server.stop().await.unwrap();
}

/// POSTs `body` to the AuthZEN binding over HTTPS, with the client certificate when
/// `with_identity`; the status and body, or the error of the handshake or the call.
async fn authzen_over_tls(
    server: &TestServer,
    pki: &Pki,
    with_identity: bool,
    body: &str,
) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Full};
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_identity {
        let chain = vec![CertificateDer::from_pem_slice(pki.client.0.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(pki.client.1.as_bytes()).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let tcp = tokio::net::TcpStream::connect(server.http)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = hyper::Request::post("/access/v1/evaluation")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let response = send.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

#[tokio::test]
async fn authzen_over_https_admits_a_client_certificate_by_name() {
    use portcullis_server::scopes::Scope;
    let pki = pki();
    let dir = temp_dir("tls-authzen");
    let tls = server_files(&dir, &pki);
    let server = TestServer::start_with(&dir.join("data"), Some("clinic-portal"), |c| {
        c.tls = Some(tls);
        c.credentials.add_token("other", "svc-token", &[Scope::Check]);
        c.credentials
            .add_certificate("billing", "billing-service", &[Scope::Check]);
    })
    .await;
    let body = format!(
        r#"{{"subject": {{"id": "dr-ann"}}, "action": {{"name": "read"}},
            "resource": {{"type": "patient_record", "id": "p-1", "properties": {{"tenant": "clinic-north"}}}},
            "context": {{"authenticated_at": {}, "last_activity": {}}}}}"#,
        AT - 600,
        AT - 60
    );
    let (status, answer) = authzen_over_tls(&server, &pki, true, &body).await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""decision":true"#), "{answer}");
    // Without a client certificate the server refuses the handshake (mutual TLS).
    assert!(authzen_over_tls(&server, &pki, false, &body).await.is_err());
    // Plaintext to the TLS listener gets no answer.
    let plain = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let mut plain = tokio::io::BufStream::new(plain);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    plain
        .write_all(b"POST /access/v1/evaluation HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    plain.flush().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), plain.read_to_end(&mut out)).await;
    assert!(
        !String::from_utf8_lossy(&out).contains("decision"),
        "plaintext was served"
    );
    server.stop().await.unwrap();
}
