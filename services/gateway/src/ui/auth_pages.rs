//! Login and registration pages. Their forms post JSON to the API's own `/login` and
//! `/register`, so the browser gets the same session cookie an API client does.

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::auth::session::authenticate;
use crate::state::AppState;
use crate::ui::layout::{bare, form_error};
use crate::ui::page::{safe_next, PageError};

#[derive(Debug, Deserialize)]
pub struct Next {
    pub next: Option<String>,
}

/// Whether the register page should offer itself: always on a new install (the first user
/// becomes admin), afterwards only when open registration is on.
async fn registration_open(state: &AppState) -> Result<bool, PageError> {
    Ok(state.settings.auth.open_registration || heydoc_store::users::count(&state.db).await? == 0)
}

/// The sign-in page (HTML; sign in with `POST /login`).
#[utoipa::path(
    get, path = "/login", operation_id = "loginPage", tag = "auth",
    params(("next" = Option<String>, Query, description = "the page to return to afterwards")),
    responses((status = 200, description = "The sign-in page", content_type = "text/html", body = String))
)]
pub async fn login(
    State(state): State<AppState>,
    Query(next): Query<Next>,
    parts: Parts,
) -> Result<Response, PageError> {
    let next = safe_next(next.next.as_deref());
    if authenticate(&state, &parts.headers).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let open = registration_open(&state).await?;
    Ok(bare(
        "Log in",
        html! {
            section.card.narrow {
                h1 { "Log in to HeyDoc" }
                form data-api="/login" data-method="POST" data-then="next" data-next=(next) {
                    label for="username" { "Username" }
                    input #username name="username" autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    (form_error())
                    button type="submit" { "Log in" }
                }
                @if open {
                    p { "New here? " a href="/register" { "Create an account" } }
                }
            }
        },
    )
    .into_response())
}

/// The registration page (HTML; register with `POST /register`).
#[utoipa::path(
    get, path = "/register", operation_id = "registerPage", tag = "auth",
    responses((status = 200, description = "The registration page (or why registration is closed)", content_type = "text/html", body = String))
)]
pub async fn register(
    State(state): State<AppState>,
    client: crate::auth::client::Client,
) -> Result<Response, PageError> {
    let first = heydoc_store::users::count(&state.db).await? == 0;
    if !registration_open(&state).await? {
        return Ok(bare(
            "Register",
            html! {
                section.card.narrow {
                    h1 { "Registration is closed" }
                    p { "Ask an administrator of this HeyDoc to create your account." }
                    p { a href="/login" { "Log in" } }
                }
            },
        )
        .into_response());
    }
    Ok(bare(
        "Register",
        html! {
            section.card.narrow {
                h1 { "Create your account" }
                @if first {
                    p.hint { "You are the first user: this account will be the administrator." }
                }
                form data-api="/register" data-method="POST" data-then="login:/inbox" {
                    label for="username" { "Username" }
                    input #username name="username" autocomplete="username" required autofocus
                        minlength="3" maxlength="64";
                    label for="password" { "Password" }
                    input #password name="password" type="password" autocomplete="new-password" required minlength="8";
                    @if first && crate::core::setup::needed(&client) {
                        label for="setup_token" { "Setup token" }
                        p.hint { "You are not on the machine HeyDoc runs on, so its first administrator proves they run it: paste the setup token HeyDoc printed when it first started (or run " code { "heydoc admin create" } " there)." }
                        input #setup_token name="setup_token" autocomplete="off" required;
                    }
                    (form_error())
                    button type="submit" { "Create account" }
                }
                p { "Already registered? " a href="/login" { "Log in" } }
            }
        },
    )
    .into_response())
}
