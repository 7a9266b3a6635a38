//! Who may do what: every API route and page names the permission it needs, in one table.
//! An API route missing from the table has no permission: the /api guard refuses it to
//! everyone and a test over the OpenAPI document fails, so a new route is decided, not
//! defaulted. Pages not in their table need `admin`. Rules finer than a route (undoing an
//! opt-out, another user's sessions) are checked in `core`.

use axum::http::Method;
use heydoc_domain::Permission;

/// What `method` on the API route `path` (as routed, e.g. `/contacts/{phone}`, with or without
/// the `/api` prefix) needs; `None` for a route the table does not name.
pub fn api(method: &Method, path: &str) -> Option<Permission> {
    use Permission::*;
    let path = path.strip_prefix("/api").unwrap_or(path);
    let read = matches!(*method, Method::GET | Method::HEAD);
    Some(match path {
        "/me" | "/me/password" | "/events" | "/users/{id}/sessions" => Inbox,
        "/contacts" | "/contacts/{phone}/tags" | "/contacts/{phone}/tags/{tag_id}" => Inbox,
        "/messages/{phone}" | "/messages/{phone}/read" | "/messages/{phone}/typing" => Inbox,
        "/send_message" => Inbox,
        "/conversations"
        | "/conversations/counts"
        | "/conversations/assignees"
        | "/conversations/{phone}"
        | "/contacts/{phone}/notes"
        | "/canned-replies" => Inbox,
        "/canned-replies/{id}" => Audience,
        "/contacts/{phone}" if *method != Method::DELETE => Inbox,
        "/contacts/{phone}" => Audience,
        "/tags" | "/numbers" | "/templates" if read => Inbox,
        "/media/{message_id}" | "/media" => Inbox,
        "/templates/sync" => Campaigns,
        "/tags"
        | "/tags/{id}"
        | "/contacts/import"
        | "/contacts/import/preview"
        | "/contacts/export"
        | "/imports/{id}" => Audience,
        p if p.starts_with("/scheduled-messages") => Campaigns,
        "/numbers" | "/numbers/{phone_number_id}" => Admin,
        "/users" | "/users/{id}" | "/users/{id}/password" | "/audit" => Admin,
        "/api-keys" | "/api-keys/{id}" => Admin,
        "/event-endpoints" | "/event-endpoints/{id}" | "/event-endpoints/{id}/deliveries" => Admin,
        _ => return None,
    })
}

/// What the page at `path` (as routed) needs.
pub fn page(path: &str) -> Permission {
    use Permission::*;
    match path {
        "/" | "/inbox" | "/chat/{phone}" | "/replies" | "/account" | "/assets/{name}" => Inbox,
        "/contacts/import" | "/tags" => Audience,
        p if p.starts_with("/campaigns") => Campaigns,
        _ => Admin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heydoc_domain::Role;

    #[test]
    fn agents_answer_chats_and_nothing_more() {
        let agent = |m: Method, p: &str| api(&m, p).is_some_and(|p| Role::Agent.can(p));
        let can = |role: Role, m: Method, p: &str| api(&m, p).is_some_and(|p| role.can(p));
        assert!(agent(Method::GET, "/api/contacts"));
        assert!(agent(Method::PUT, "/api/contacts/{phone}"));
        assert!(agent(Method::POST, "/api/send_message"));
        assert!(agent(Method::GET, "/api/tags"));
        assert!(!agent(Method::POST, "/api/tags"));
        assert!(!agent(Method::DELETE, "/api/contacts/{phone}"));
        assert!(!agent(Method::GET, "/api/contacts/export"));
        assert!(!agent(Method::GET, "/api/scheduled-messages"));
        assert!(!agent(Method::PUT, "/api/scheduled-messages/{id}/status"));
        assert!(!agent(Method::GET, "/api/users"));
        assert_eq!(api(&Method::GET, "/api/something-new"), None, "undecided");
        assert!(!can(Role::Admin, Method::GET, "/api/something-new"));
        assert!(can(Role::Manager, Method::GET, "/api/contacts/export"));
        assert!(can(
            Role::Manager,
            Method::DELETE,
            "/scheduled-messages/{id}"
        ));
        assert!(!can(Role::Manager, Method::GET, "/api/audit"));
        assert!(can(Role::Admin, Method::GET, "/api/audit"));
        assert!(!Role::Agent.can(page("/campaigns/{id}")));
        assert!(Role::Agent.can(page("/chat/{phone}")));
        assert!(!Role::Manager.can(page("/integrations")));
    }

    /// Every route the OpenAPI document lists under /api (the document is built from the same
    /// handlers `app()` serves) has a permission decided in the table.
    #[test]
    fn every_api_route_has_a_permission() {
        use utoipa::OpenApi;
        let doc = crate::openapi::ApiDoc::openapi();
        let mut undecided = Vec::new();
        let mut checked = 0;
        for (path, item) in doc
            .paths
            .paths
            .iter()
            .filter(|(p, _)| p.starts_with("/api/"))
        {
            let methods = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ];
            for (method, _) in methods.into_iter().filter(|(_, there)| *there) {
                checked += 1;
                if api(&method, path).is_none() {
                    undecided.push(format!("{method} {path}"));
                }
            }
        }
        assert!(checked > 60, "only {checked} routes read from the document");
        assert!(
            undecided.is_empty(),
            "routes with no permission: {undecided:?}"
        );
    }
}
