//! The admin API's route table, as data: the router matches against it and
//! the OpenAPI document is checked against it.

/// Path prefix of every admin API route.
pub const API_PREFIX: &str = "/api/v1";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials (read-only data).
    Public,
    /// A bearer token, or a client certificate with the `admin-api` right.
    Authenticated,
}

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

use Access::{Authenticated as Auth, Public};
use Endpoint as E;

/// Every admin API route.
pub const ROUTES: &[Route] = &[
    route("GET", "/openapi.json", E::OpenApi, Public),
    route("GET", "/organisations", E::ListOrganisations, Auth),
    route("POST", "/organisations", E::CreateOrganisation, Auth),
    route("GET", "/organisations/{cvr}", E::GetOrganisation, Auth),
    route("PATCH", "/organisations/{cvr}", E::UpdateOrganisation, Auth),
    route("POST", "/organisations/{cvr}/tokens", E::CreateToken, Auth),
    route("GET", "/organisations/{cvr}/tokens", E::ListTokens, Auth),
    route(
        "GET",
        "/organisations/{cvr}/email-validations",
        E::EmailValidations,
        Auth,
    ),
    route(
        "DELETE",
        "/organisations/{cvr}/tokens/{id}",
        E::RevokeToken,
        Auth,
    ),
    route("GET", "/tokens", E::ListOperatorTokens, Auth),
    route("POST", "/tokens", E::CreateOperatorToken, Auth),
    route("DELETE", "/tokens/{id}", E::RevokeOperatorToken, Auth),
    route("GET", "/profiles", E::SearchProfiles, Auth),
    route("POST", "/profiles", E::CreateProfile, Auth),
    route("GET", "/profiles/{id}", E::GetProfile, Auth),
    route("PATCH", "/profiles/{id}", E::UpdateProfile, Auth),
    route(
        "GET",
        "/profiles/{id}/certificates.csv",
        E::ProfileCertificatesCsv,
        Auth,
    ),
    route("GET", "/export.csv", E::ExportCsv, Auth),
    route("GET", "/profiles.csv", E::ProfilesCsv, Auth),
    route("GET", "/orders", E::ListOrders, Auth),
    route("POST", "/orders", E::CreateOrder, Auth),
    route("GET", "/orders/{reference}", E::GetOrder, Auth),
    route("DELETE", "/orders/{reference}", E::DeleteOrder, Auth),
    route("POST", "/orders/{reference}/approve", E::ApproveOrder, Auth),
    route("POST", "/orders/{reference}/reject", E::RejectOrder, Auth),
    route("POST", "/orders/{reference}/code", E::NewCode, Auth),
    route("GET", "/certificates/{serial}", E::GetCertificate, Auth),
    route(
        "POST",
        "/certificates/{serial}/renew",
        E::RenewCertificate,
        Auth,
    ),
    route(
        "POST",
        "/certificates/{serial}/revoke",
        E::RevokeCertificate,
        Auth,
    ),
    route(
        "POST",
        "/certificates/{serial}/block",
        E::BlockCertificate,
        Auth,
    ),
    route("GET", "/audit", E::AuditLog, Auth),
    route("GET", "/notifications", E::Notifications, Auth),
    route("GET", "/public/certificates", E::PublicCertificates, Public),
    route("GET", "/crl", E::GetCrl, Auth),
    route("POST", "/crl", E::RegenerateCrl, Auth),
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
