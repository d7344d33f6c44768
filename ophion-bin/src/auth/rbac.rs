//! Roles, permissions, and the one table that says which permission each
//! API route needs. The authorization middleware reads it for every
//! request; a route missing from it is refused. The RBAC tests iterate it.

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

/// Every route: method, path pattern (as the router spells it), permission.
pub const ROUTES: &[(&str, &str, Permission)] = &[
    ("GET", "/healthz", Permission::Public),
    ("GET", "/readyz", Permission::Public),
    ("GET", "/metrics", Permission::Public),
    ("GET", "/api/v1/openapi.json", Permission::Public),
    ("POST", "/api/v1/ai/analyze", Permission::Read),
    ("GET", "/api/v1/ai/insights", Permission::Read),
    ("GET", "/api/v1/version", Permission::Public),
    ("POST", "/api/v1/auth/login", Permission::Public),
    ("POST", "/api/v1/auth/refresh", Permission::Public),
    ("POST", "/api/v1/auth/logout", Permission::SignedIn),
    ("POST", "/api/v1/auth/password", Permission::SignedIn),
    ("GET", "/api/v1/auth/me", Permission::SignedIn),
    ("POST", "/api/v1/query", Permission::Read),
    ("GET", "/api/v1/traces", Permission::Read),
    ("GET", "/api/v1/traces/{trace_id}", Permission::Read),
    ("GET", "/api/v1/services", Permission::Read),
    (
        "GET",
        "/api/v1/services/{name}/operations",
        Permission::Read,
    ),
    ("GET", "/api/v1/service-graph", Permission::Read),
    ("GET", "/api/v1/logs", Permission::Read),
    ("GET", "/api/v1/logs/tail", Permission::Read),
    ("GET", "/api/v1/metrics", Permission::Read),
    ("GET", "/api/v1/metrics/query", Permission::Read),
    ("GET", "/api/v1/status", Permission::Read),
    ("GET", "/api/v1/users", Permission::Admin),
    ("POST", "/api/v1/users", Permission::Admin),
    ("PATCH", "/api/v1/users/{id}", Permission::Admin),
    ("GET", "/api/v1/audit", Permission::Admin),
    ("GET", "/api/v1/audit/verify", Permission::Admin),
    ("POST", "/api/v1/tenants", Permission::Operator),
    ("GET", "/api/v1/keys", Permission::Admin),
    ("POST", "/api/v1/keys", Permission::Admin),
    ("DELETE", "/api/v1/keys/{id}", Permission::Admin),
];

/// The permission `method` on route `path` needs; `None` for a route
/// missing from the table (refused).
pub fn permission(method: &str, path: &str) -> Option<Permission> {
    ROUTES
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, perm)| *perm)
}
