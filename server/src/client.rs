//! Client side for the command line: connecting (plaintext or TLS) and bearer tokens.

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// How the command line reaches a server.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Server URL.
    #[arg(
        long,
        default_value = "http://127.0.0.1:50051",
        env = "PORTCULLIS_SERVER",
        global = true
    )]
    pub server: String,
    /// Bearer token (default: $PORTCULLIS_TOKEN, then the file given by --token-file).
    #[arg(long, env = "PORTCULLIS_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// File holding the token.
    #[arg(long, default_value = "data/admin-token", global = true)]
    pub token_file: PathBuf,
    /// CA certificate (PEM) to trust for https URLs.
    #[arg(long, global = true)]
    pub ca: Option<PathBuf>,
}

impl Remote {
    /// Opens a channel to the server.
    pub async fn channel(&self) -> Result<Channel> {
        let mut endpoint =
            Channel::from_shared(self.server.clone()).with_context(|| format!("bad server URL `{}`", self.server))?;
        if self.server.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &self.ca {
                let pem = std::fs::read(ca).with_context(|| format!("cannot read `{}`", ca.display()))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to {}", self.server))
    }

    /// The token to send, if one is available.
    pub fn token(&self) -> Option<String> {
        self.token.clone().or_else(|| {
            std::fs::read_to_string(&self.token_file)
                .ok()
                .map(|t| t.trim().to_owned())
        })
    }

    /// A request carrying the bearer token.
    pub fn request<T>(&self, message: T) -> Result<tonic::Request<T>> {
        let mut req = tonic::Request::new(message);
        if let Some(token) = self.token() {
            let value: MetadataValue<_> = format!("Bearer {token}")
                .parse()
                .context("token is not a valid header value")?;
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}
