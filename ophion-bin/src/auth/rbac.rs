//! Roles and permissions. Which permission each API route needs is said
//! once, in the route table (`crate::api::routes::table`).

use serde::{Deserialize, Serialize};

/// A user's role within their tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads telemetry, dashboards and alerts.
    Viewer,
    /// Also manages alert rules, dashboards and playbooks.
    Editor,
    /// Also manages users, keys, channels and settings.
    Admin,
}

impl Role {
    /// The role's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// The role named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Anyone, without credentials (health, metrics, login).
    Public,
    /// Any signed-in user, whatever their role (logout, own password).
    SignedIn,
    /// Viewers and up: read telemetry.
    Read,
    /// Editors and up: change alert rules, dashboards, playbooks.
    Edit,
    /// Admins: users, keys, channels, settings, the audit log.
    Admin,
    /// Admins of the default tenant, who run the server: tenants.
    Operator,
}

impl Permission {
    /// Whether a user with `role` in a tenant (`default_tenant` when it is
    /// the server's default tenant) has this permission.
    pub fn allows(self, role: Role, default_tenant: bool) -> bool {
        match self {
            Permission::Public | Permission::SignedIn => true,
            Permission::Read => role >= Role::Viewer,
            Permission::Edit => role >= Role::Editor,
            Permission::Admin => role == Role::Admin,
            Permission::Operator => role == Role::Admin && default_tenant,
        }
    }
}
