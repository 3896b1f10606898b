//! The admin API's route table, as data: the router matches against it and
//! the OpenAPI document is checked against it.

/// Path prefix of every admin API route.
pub const API_PREFIX: &str = "/api/v1";

use crate::model::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials (read-only data, login, activation).
    Public,
    /// Whoever holds one of these roles: a person logged in with a session,
    /// or a machine credential (a bearer token, or a client certificate with
    /// the `admin-api` right: an organisation's holds its three roles, an
    /// operator token [`Role::Operator`]).
    Roles(&'static [Role]),
    /// A person logged in with a session, acting on their own account and
    /// certificates (no machine credential).
    Person,
}

/// Every role: reading an organisation's data.
pub const ANY_ROLE: &[Role] = &[
    Role::UserAdmin,
    Role::OrgAdmin,
    Role::RightsAdmin,
    Role::Operator,
];
/// People, orders and certificates: user administrators.
pub const USER_ADMIN: &[Role] = &[Role::UserAdmin, Role::Operator];
/// The organisation's certificate settings and profiles: organisation administrators.
pub const ORG_ADMIN: &[Role] = &[Role::OrgAdmin, Role::Operator];
/// The server: operators only.
pub const OPERATOR: &[Role] = &[Role::Operator];

/// What a route does; one variant per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /openapi.json`.
    OpenApi,
    /// `GET /organisations`.
    ListOrganisations,
    /// `POST /organisations`.
    CreateOrganisation,
    /// `GET /organisations/{cvr}`.
    GetOrganisation,
    /// `PATCH /organisations/{cvr}`.
    UpdateOrganisation,
    /// `POST /organisations/{cvr}/tokens`.
    CreateToken,
    /// `GET /organisations/{cvr}/tokens`.
    ListTokens,
    /// `DELETE /organisations/{cvr}/tokens/{id}`.
    RevokeToken,
    /// `GET /organisations/{cvr}/email-validations`.
    EmailValidations,
    /// `POST /tokens`.
    CreateOperatorToken,
    /// `GET /tokens`.
    ListOperatorTokens,
    /// `DELETE /tokens/{id}`.
    RevokeOperatorToken,
    /// `GET /profiles`.
    SearchProfiles,
    /// `POST /profiles`.
    CreateProfile,
    /// `GET /profiles/{id}`.
    GetProfile,
    /// `PATCH /profiles/{id}`.
    UpdateProfile,
    /// `GET /profiles/{id}/certificates.csv`.
    ProfileCertificatesCsv,
    /// `GET /export.csv`.
    ExportCsv,
    /// `GET /profiles.csv`.
    ProfilesCsv,
    /// `GET /orders`.
    ListOrders,
    /// `POST /orders`.
    CreateOrder,
    /// `GET /orders/{reference}`.
    GetOrder,
    /// `DELETE /orders/{reference}`.
    DeleteOrder,
    /// `POST /orders/{reference}/approve`.
    ApproveOrder,
    /// `POST /orders/{reference}/reject`.
    RejectOrder,
    /// `POST /orders/{reference}/code`.
    NewCode,
    /// `GET /certificates/{serial}`.
    GetCertificate,
    /// `POST /certificates/{serial}/renew`.
    RenewCertificate,
    /// `POST /certificates/{serial}/revoke`.
    RevokeCertificate,
    /// `POST /certificates/{serial}/block`.
    BlockCertificate,
    /// `GET /audit`.
    AuditLog,
    /// `GET /notifications`.
    Notifications,
    /// `GET /public/certificates`.
    PublicCertificates,
    /// `GET /crl`.
    GetCrl,
    /// `POST /crl`.
    RegenerateCrl,
    /// `POST /backup`.
    WriteBackup,
    /// `GET /organisations/{cvr}/people`.
    ListPeople,
    /// `POST /organisations/{cvr}/people`.
    InvitePerson,
    /// `GET /operators`.
    ListOperators,
    /// `POST /operators`.
    InviteOperator,
    /// `GET /people/{id}`.
    GetPerson,
    /// `POST /people/{id}/deactivate`.
    DeactivatePerson,
    /// `POST /people/{id}/invitation`.
    Reinvite,
    /// `GET /activation`.
    GetActivation,
    /// `POST /activation`.
    Activate,
    /// `POST /login`.
    Login,
    /// `POST /logout`.
    Logout,
    /// `GET /session`.
    GetSession,
    /// `GET /terms`.
    Terms,
    /// `GET /me/orders`.
    MyOrders,
    /// `POST /me/orders/{reference}/pkcs12`.
    IssuePkcs12,
    /// `POST /me/orders/{reference}/csr`.
    IssueFromCsr,
    /// `GET /me/certificates`.
    MyCertificates,
    /// `GET /me/certificates/{serial}`.
    MyCertificate,
    /// `POST /me/certificates/{serial}/block`.
    BlockMyCertificate,
    /// `POST /me/certificates/{serial}/renew`.
    RenewMyCertificate,
    /// `GET /me/history`.
    MyHistory,
    /// `GET /me/tasks`.
    MyTasks,
}

impl Endpoint {
    /// Name for logs and the metrics label (a bounded set).
    pub fn log_name(self) -> &'static str {
        use Endpoint::*;
        match self {
            OpenApi => "api-openapi",
            ListOrganisations | CreateOrganisation | GetOrganisation | UpdateOrganisation
            | EmailValidations => "api-organisations",
            CreateToken | ListTokens | RevokeToken | CreateOperatorToken | ListOperatorTokens
            | RevokeOperatorToken => "api-tokens",
            SearchProfiles | CreateProfile | GetProfile | UpdateProfile => "api-profiles",
            ProfileCertificatesCsv | ExportCsv | ProfilesCsv => "api-export",
            ListOrders | CreateOrder | GetOrder | DeleteOrder | ApproveOrder | RejectOrder
            | NewCode => "api-orders",
            GetCertificate | RenewCertificate | RevokeCertificate | BlockCertificate => {
                "api-certificates"
            }
            AuditLog => "api-audit",
            Notifications => "api-notifications",
            PublicCertificates => "api-public",
            GetCrl | RegenerateCrl => "api-crl",
            WriteBackup => "api-backup",
            ListPeople | InvitePerson | ListOperators | InviteOperator | GetPerson
            | DeactivatePerson | Reinvite => "api-people",
            GetActivation | Activate | Login | Logout | GetSession | Terms => "api-login",
            MyOrders | IssuePkcs12 | IssueFromCsr | MyCertificates | MyCertificate
            | BlockMyCertificate | RenewMyCertificate | MyHistory | MyTasks => "api-me",
        }
    }
}

/// One route: method, path template under [`API_PREFIX`] (`{name}` matches
/// one path segment), what it does and who may call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path template, e.g. `/orders/{reference}`.
    pub template: &'static str,
    /// The handler.
    pub endpoint: Endpoint,
    /// Who may call it.
    pub access: Access,
}

const fn route(
    method: &'static str,
    template: &'static str,
    endpoint: Endpoint,
    access: Access,
) -> Route {
    Route {
        method,
        template,
        endpoint,
        access,
    }
}

use Access::{Person as Me, Public, Roles as R};
use Endpoint as E;

/// Every admin API route.
pub const ROUTES: &[Route] = &[
    route("GET", "/openapi.json", E::OpenApi, Public),
    route("GET", "/organisations", E::ListOrganisations, R(ANY_ROLE)),
    route("POST", "/organisations", E::CreateOrganisation, R(OPERATOR)),
    route(
        "GET",
        "/organisations/{cvr}",
        E::GetOrganisation,
        R(ANY_ROLE),
    ),
    route(
        "PATCH",
        "/organisations/{cvr}",
        E::UpdateOrganisation,
        R(ORG_ADMIN),
    ),
    route(
        "POST",
        "/organisations/{cvr}/tokens",
        E::CreateToken,
        R(OPERATOR),
    ),
    route(
        "GET",
        "/organisations/{cvr}/tokens",
        E::ListTokens,
        R(ANY_ROLE),
    ),
    route(
        "GET",
        "/organisations/{cvr}/email-validations",
        E::EmailValidations,
        R(ANY_ROLE),
    ),
    route(
        "DELETE",
        "/organisations/{cvr}/tokens/{id}",
        E::RevokeToken,
        R(ORG_ADMIN),
    ),
    route(
        "GET",
        "/organisations/{cvr}/people",
        E::ListPeople,
        R(ANY_ROLE),
    ),
    route(
        "POST",
        "/organisations/{cvr}/people",
        E::InvitePerson,
        R(USER_ADMIN),
    ),
    route("GET", "/operators", E::ListOperators, R(OPERATOR)),
    route("POST", "/operators", E::InviteOperator, R(OPERATOR)),
    route("GET", "/people/{id}", E::GetPerson, R(ANY_ROLE)),
    route(
        "POST",
        "/people/{id}/deactivate",
        E::DeactivatePerson,
        R(USER_ADMIN),
    ),
    route(
        "POST",
        "/people/{id}/invitation",
        E::Reinvite,
        R(USER_ADMIN),
    ),
    route("GET", "/tokens", E::ListOperatorTokens, R(OPERATOR)),
    route("POST", "/tokens", E::CreateOperatorToken, R(OPERATOR)),
    route(
        "DELETE",
        "/tokens/{id}",
        E::RevokeOperatorToken,
        R(OPERATOR),
    ),
    route("GET", "/profiles", E::SearchProfiles, R(ANY_ROLE)),
    route("POST", "/profiles", E::CreateProfile, R(ORG_ADMIN)),
    route("GET", "/profiles/{id}", E::GetProfile, R(ANY_ROLE)),
    route("PATCH", "/profiles/{id}", E::UpdateProfile, R(ORG_ADMIN)),
    route(
        "GET",
        "/profiles/{id}/certificates.csv",
        E::ProfileCertificatesCsv,
        R(ANY_ROLE),
    ),
    route("GET", "/export.csv", E::ExportCsv, R(ANY_ROLE)),
    route("GET", "/profiles.csv", E::ProfilesCsv, R(ANY_ROLE)),
    route("GET", "/orders", E::ListOrders, R(ANY_ROLE)),
    route("POST", "/orders", E::CreateOrder, R(USER_ADMIN)),
    route("GET", "/orders/{reference}", E::GetOrder, R(ANY_ROLE)),
    route(
        "DELETE",
        "/orders/{reference}",
        E::DeleteOrder,
        R(USER_ADMIN),
    ),
    route(
        "POST",
        "/orders/{reference}/approve",
        E::ApproveOrder,
        R(USER_ADMIN),
    ),
    route(
        "POST",
        "/orders/{reference}/reject",
        E::RejectOrder,
        R(USER_ADMIN),
    ),
    route(
        "POST",
        "/orders/{reference}/code",
        E::NewCode,
        R(USER_ADMIN),
    ),
    route(
        "GET",
        "/certificates/{serial}",
        E::GetCertificate,
        R(ANY_ROLE),
    ),
    route(
        "POST",
        "/certificates/{serial}/renew",
        E::RenewCertificate,
        R(USER_ADMIN),
    ),
    route(
        "POST",
        "/certificates/{serial}/revoke",
        E::RevokeCertificate,
        R(USER_ADMIN),
    ),
    route(
        "POST",
        "/certificates/{serial}/block",
        E::BlockCertificate,
        R(USER_ADMIN),
    ),
    route("GET", "/audit", E::AuditLog, R(ANY_ROLE)),
    route("GET", "/notifications", E::Notifications, R(ANY_ROLE)),
    route("GET", "/public/certificates", E::PublicCertificates, Public),
    route("GET", "/crl", E::GetCrl, R(ANY_ROLE)),
    route("POST", "/crl", E::RegenerateCrl, R(OPERATOR)),
    route("POST", "/backup", E::WriteBackup, R(OPERATOR)),
    route("GET", "/terms", E::Terms, Public),
    route("GET", "/activation", E::GetActivation, Public),
    route("POST", "/activation", E::Activate, Public),
    route("POST", "/login", E::Login, Public),
    route("POST", "/logout", E::Logout, Me),
    route("GET", "/session", E::GetSession, Me),
    route("GET", "/me/orders", E::MyOrders, Me),
    route("POST", "/me/orders/{reference}/pkcs12", E::IssuePkcs12, Me),
    route("POST", "/me/orders/{reference}/csr", E::IssueFromCsr, Me),
    route("GET", "/me/certificates", E::MyCertificates, Me),
    route("GET", "/me/certificates/{serial}", E::MyCertificate, Me),
    route(
        "POST",
        "/me/certificates/{serial}/block",
        E::BlockMyCertificate,
        Me,
    ),
    route(
        "POST",
        "/me/certificates/{serial}/renew",
        E::RenewMyCertificate,
        Me,
    ),
    route("GET", "/me/history", E::MyHistory, Me),
    route("GET", "/me/tasks", E::MyTasks, Me),
];

/// The result of matching a path against [`ROUTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// A route matched; its path parameters in template order.
    Found(Route, Vec<String>),
    /// The path exists but not with this method; the methods it has.
    WrongMethod(Vec<&'static str>),
    /// No route has this path.
    NoSuchPath,
}

fn match_template(template: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut want = template.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return None;
                }
                params.push(g.to_owned());
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return None,
        }
    }
}

/// Finds the route for `method` and `path` (the part after [`API_PREFIX`]).
pub fn find(method: &str, path: &str) -> RouteMatch {
    let mut methods = Vec::new();
    for r in ROUTES {
        if let Some(params) = match_template(r.template, path) {
            if r.method == method {
                return RouteMatch::Found(*r, params);
            }
            methods.push(r.method);
        }
    }
    if methods.is_empty() {
        RouteMatch::NoSuchPath
    } else {
        RouteMatch::WrongMethod(methods)
    }
}

/// Who may call the route of `endpoint` (the portal checks its pages
/// against the API route they stand beside).
pub fn access_of(endpoint: Endpoint) -> Access {
    ROUTES
        .iter()
        .find(|r| r.endpoint == endpoint)
        .map(|r| r.access)
        // Every endpoint has a route (a test checks it); none is refused.
        .unwrap_or(Access::Roles(OPERATOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_segments() {
        match find("GET", "/orders/123456789012") {
            RouteMatch::Found(r, p) => {
                assert_eq!(r.endpoint, Endpoint::GetOrder);
                assert_eq!(p, vec!["123456789012".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        match find("GET", "/profiles/abc/certificates.csv") {
            RouteMatch::Found(r, _) => assert_eq!(r.endpoint, Endpoint::ProfileCertificatesCsv),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            find("PUT", "/orders/1"),
            RouteMatch::WrongMethod(vec!["GET", "DELETE"])
        );
        match find("GET", "/profiles.csv") {
            RouteMatch::Found(r, p) => {
                assert_eq!(r.endpoint, Endpoint::ProfilesCsv);
                assert!(p.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(find("GET", "/orders/"), RouteMatch::NoSuchPath);
        assert_eq!(find("GET", "/orders/1/x"), RouteMatch::NoSuchPath);
        assert_eq!(find("GET", ""), RouteMatch::NoSuchPath);
    }

    #[test]
    fn routes_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.template == b.template),
                    "{} {} twice",
                    a.method,
                    a.template
                );
            }
        }
    }
}
