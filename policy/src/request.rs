//! What a caller asks: principal, action, resource, session facts and time.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// "May `principal` do `action` on `resource`?"
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Principal id; empty for an anonymous request (only public actions allow, R19).
    #[serde(default)]
    pub principal: String,
    /// Action name, defined by the resource type.
    pub action: String,
    /// The resource acted on.
    pub resource: Resource,
    /// Facts about the caller's session.
    #[serde(default)]
    pub session: Session,
    /// Decision time; `None` means now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

/// The resource of a request or a row of a filtered table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Resource type name.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Resource id (byte-exact).
    #[serde(default)]
    pub id: String,
    /// Owning tenant (customer account), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Attributes that deny rules may match on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// Authentication factor kinds (R8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    /// Something known; never a second factor.
    Password,
    /// WebAuthn passkey.
    Passkey,
    /// Hardware token.
    HardwareToken,
    /// Device certificate.
    DeviceCertificate,
    /// Time-based one-time password.
    Totp,
    /// Push approval.
    Push,
    /// SMS code; a second factor only where settings allow.
    Sms,
}

impl Factor {
    /// Parses a factor name as the API spells it (`totp`, `hardware_token`, ...).
    pub fn from_name(name: &str) -> Option<Factor> {
        Some(match name {
            "password" => Factor::Password,
            "passkey" => Factor::Passkey,
            "hardware_token" => Factor::HardwareToken,
            "device_certificate" => Factor::DeviceCertificate,
            "totp" => Factor::Totp,
            "push" => Factor::Push,
            "sms" => Factor::Sms,
            _ => return None,
        })
    }
}

/// Session facts the caller vouches for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// When the principal authenticated (R9 maximum age).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated_at: Option<Timestamp>,
    /// Last activity in this session (R9 idle logoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<Timestamp>,
    /// Factors used to authenticate (R8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<Factor>,
    /// Privileged role the session elevated into (R10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevated_role: Option<String>,
    /// When the elevation happened (R10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevated_at: Option<Timestamp>,
    /// Network the request comes from (R18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Second person approving a dual-control action (R13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub co_signer: Option<String>,
    /// Stated reason for emergency access (R15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass_reason: Option<String>,
    /// Customer principal being impersonated (R16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_as: Option<String>,
}

impl Session {
    /// R8: whether the session carries an approved second factor.
    pub fn has_second_factor(&self, sms_acceptable: bool) -> bool {
        self.factors.iter().any(|f| match f {
            Factor::Password => false,
            Factor::Sms => sms_acceptable,
            _ => true,
        })
    }

    /// R15: the emergency reason, when one was stated (blank reasons do not count).
    pub fn break_glass(&self) -> Option<&str> {
        self.break_glass_reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
    }
}
