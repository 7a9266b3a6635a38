//! Who may do what: every API route and page names the permission it needs, in one table.
//! Routes not in it need `admin` (denied by default). Rules finer than a route (undoing an
//! opt-out, another user's sessions) are checked in `core`.

use axum::http::Method;
use heydoc_domain::Permission;

/// What `method` on the API route `path` (as routed, e.g. `/contacts/{phone}`, with or without
/// the `/api` prefix) needs.
pub fn api(method: &Method, path: &str) -> Permission {
    use Permission::*;
    let path = path.strip_prefix("/api").unwrap_or(path);
    let read = matches!(*method, Method::GET | Method::HEAD);
    match path {
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
        _ => Admin,
    }
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
        let agent = |m: Method, p: &str| Role::Agent.can(api(&m, p));
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
        assert!(
            !agent(Method::GET, "/api/something-new"),
            "denied by default"
        );
        assert!(Role::Manager.can(api(&Method::GET, "/api/contacts/export")));
        assert!(Role::Manager.can(api(&Method::DELETE, "/scheduled-messages/{id}")));
        assert!(!Role::Manager.can(api(&Method::GET, "/api/audit")));
        assert!(Role::Admin.can(api(&Method::GET, "/api/audit")));
        assert!(!Role::Agent.can(page("/campaigns/{id}")));
        assert!(Role::Agent.can(page("/chat/{phone}")));
        assert!(!Role::Manager.can(page("/integrations")));
    }
}
