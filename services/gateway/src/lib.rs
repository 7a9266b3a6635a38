//! The HeyDoc gateway: an axum app serving the JSON API, WhatsApp's webhooks, the OpenAPI
//! document and health checks. `run` binds and serves until the shutdown future resolves.

pub mod auth;
pub mod core;
pub mod error;
pub mod extract;
pub mod import;
pub mod media;
pub mod observe;
pub mod openapi;
pub mod routes;
mod server;
pub mod state;
pub mod ui;

use std::future::Future;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::{middleware, Router};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

pub use error::ApiError;
pub use state::{AppState, Outbox};

use auth::limiter::LoginLimiter;
use routes::{
    api_keys, auth as auth_routes, contacts, conversations, event_endpoints, health, imports,
    media as media_routes, messages, numbers, scheduled, send, tags, templates, uploads, webhooks,
};

/// Request bodies larger than this are refused with 413.
const BODY_LIMIT: usize = 1024 * 1024;

/// The whole HTTP app.
pub fn app(state: AppState) -> Router {
    heydoc_telemetry::metrics::install();
    let api = Router::new()
        .route(
            "/users",
            get(auth_routes::list_users).post(auth_routes::create_user_as_admin),
        )
        .route(
            "/users/{id}",
            axum::routing::patch(auth_routes::update_user).delete(auth_routes::delete_user),
        )
        .route("/users/{id}/password", post(auth_routes::reset_password))
        .route(
            "/users/{id}/sessions",
            get(auth_routes::sessions).delete(auth_routes::revoke_sessions),
        )
        .route("/me", get(auth_routes::me))
        .route("/me/password", put(auth_routes::change_password))
        .route("/audit", get(auth_routes::audit_log))
        .route("/numbers", get(numbers::list).post(numbers::create))
        .route("/templates", get(templates::list))
        .route("/templates/sync", post(templates::sync))
        .route("/media/{message_id}", get(media_routes::get))
        .route(
            "/media",
            post(uploads::upload).layer(DefaultBodyLimit::max(core::uploads::MAX_UPLOAD_BYTES)),
        )
        .route("/numbers/{phone_number_id}", put(numbers::update))
        .route("/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api-keys/{id}", delete(api_keys::revoke))
        .route(
            "/event-endpoints",
            get(event_endpoints::list).post(event_endpoints::create),
        )
        .route(
            "/event-endpoints/{id}",
            put(event_endpoints::update).delete(event_endpoints::delete),
        )
        .route(
            "/event-endpoints/{id}/deliveries",
            get(event_endpoints::deliveries),
        )
        .route("/contacts", get(contacts::list).post(contacts::create))
        .route("/contacts/import", post(imports::upload))
        .route("/contacts/import/preview", post(imports::preview))
        .route("/contacts/export", get(imports::export))
        .route("/imports/{id}", get(imports::get))
        .route(
            "/contacts/{phone}",
            get(contacts::get)
                .put(contacts::update)
                .delete(contacts::delete),
        )
        .route("/contacts/{phone}/tags", put(contacts::set_tags))
        .route(
            "/contacts/{phone}/tags/{tag_id}",
            post(contacts::add_tag).delete(contacts::remove_tag),
        )
        .route("/conversations", get(conversations::list))
        .route("/conversations/counts", get(conversations::counts))
        .route("/conversations/assignees", get(conversations::assignees))
        .route(
            "/conversations/{phone}",
            axum::routing::patch(conversations::change),
        )
        .route(
            "/contacts/{phone}/notes",
            get(conversations::notes).post(conversations::add_note),
        )
        .route(
            "/canned-replies",
            get(conversations::canned_replies).post(conversations::add_canned_reply),
        )
        .route(
            "/canned-replies/{id}",
            delete(conversations::delete_canned_reply),
        )
        .route("/tags", get(tags::list).post(tags::create))
        .route("/tags/{id}", put(tags::update).delete(tags::delete))
        .route("/messages/{phone}", get(messages::list))
        .route("/messages/{phone}/read", post(messages::mark_read))
        .route("/messages/{phone}/typing", post(messages::typing))
        .route("/send_message", post(send::send_message))
        .route(
            "/scheduled-messages",
            get(scheduled::list).post(scheduled::create),
        )
        .route("/scheduled-messages/pending", get(scheduled::pending))
        .route(
            "/scheduled-messages/{id}/deliveries.csv",
            get(scheduled::deliveries_csv),
        )
        .route("/scheduled-messages/preview", post(scheduled::preview))
        .route("/scheduled-messages/estimate", post(scheduled::estimate))
        .route(
            "/scheduled-messages/{id}",
            get(scheduled::get).delete(scheduled::delete),
        )
        .route(
            "/scheduled-messages/{id}/status",
            put(scheduled::update_status),
        )
        .route(
            "/scheduled-messages/{id}/deliveries",
            get(scheduled::deliveries_of),
        )
        .route("/events", get(ui::live::events))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_session,
        ));

    let public = if state.settings.metrics_on_http_addr {
        Router::new().route("/metrics", get(observe::metrics))
    } else {
        Router::new()
    };
    public
        .route(
            "/register",
            get(ui::auth_pages::register)
                .layer(middleware::map_response(ui::page_headers))
                .post(auth_routes::register),
        )
        .route(
            "/login",
            get(ui::auth_pages::login)
                .layer(middleware::map_response(ui::page_headers))
                .post(auth_routes::login),
        )
        .route(
            "/logout",
            get(auth_routes::logout_get).post(auth_routes::logout),
        )
        .route(
            "/webhooks/whatsapp",
            get(webhooks::verify).post(webhooks::receive),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .nest("/api", api)
        .merge(ui::routes())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi::ApiDoc::openapi()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ))
        .layer(middleware::map_response_with_state(
            state.clone(),
            https_headers,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal(
                "handler panicked".into(),
            ))
        }))
        .layer(middleware::from_fn(observe::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(observe::request_span)
                .on_response(observe::record_response),
        )
        .with_state(state)
}

/// Every request has `http.request_timeout_secs` from its headers to its answer (reading a
/// body included): a client that trickles a body is cut off with a 408, and the connection
/// goes. Streams (the live events, file downloads) only need their answer's head in time.
async fn request_deadline(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let limit = std::time::Duration::from_secs(state.settings.http.request_timeout_secs.max(1));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            let mut response =
                axum::response::IntoResponse::into_response(ApiError::Timeout(format!(
                    "the request took longer than {} s (sending the body included)",
                    limit.as_secs()
                )));
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// Clears this replica's session cache whenever any replica says someone's access changed
/// (or when notices may have been missed).
async fn forget_sessions_on_notice(state: AppState) {
    use tokio::sync::broadcast::error::RecvError;
    // Until the feed is up (the database may still be starting), nothing is cached for long:
    // the cache is cleared every second.
    let mut wait = std::time::Duration::from_millis(200);
    let mut receiver = loop {
        match state.live_feed().await {
            Ok(feed) => break feed.subscribe(),
            Err(e) => {
                tracing::warn!(error = %e, "access notices not heard yet; retrying");
                state.sessions.clear();
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(1));
            }
        }
    };
    loop {
        match receiver.recv().await {
            Ok(event) if event.kind == heydoc_store::live::LiveKind::Access || event.all => {
                state.sessions.clear()
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => state.sessions.clear(),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Over HTTPS, every response tells browsers to come back only over HTTPS for a year.
async fn https_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    if state.settings.auth.https || state.settings.auth.cookie_secure {
        response.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// The WhatsApp account's upkeep on every replica: media files a download left pending are
/// fetched again, deleted contacts' files leave the media store, and every `template_sync_secs` each account's template catalog is read
/// from Meta (the first time shortly after start).
async fn account_upkeep(state: AppState) {
    let every = state.settings.whatsapp.template_sync_secs;
    let mut next_sync = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                media::sweep(&state).await;
                media::expire_uploads(&state).await;
                media::remove_deleted(&state).await;
            }
            _ = tokio::time::sleep_until(next_sync), if every > 0 => {
                core::templates::sync_all(&state).await;
                core::numbers::refresh_profiles(&state).await;
                next_sync = tokio::time::Instant::now() + std::time::Duration::from_secs(every);
            }
        }
    }
}

/// Serves the app on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The environment's number is the registry's default (the sender does the same).
    if let Err(e) = heydoc_store::numbers::ensure_default(
        &state.db,
        state.business_number(),
        &state.settings.whatsapp.waba_id,
        state.settings.sender.mps,
        chrono::Utc::now(),
    )
    .await
    {
        tracing::warn!(error = %e, "cannot register the default business number");
    }
    let limiter = state.login_limiter.clone();
    let pruner = tokio::spawn(prune_login_limiter(limiter));
    let forgetter = tokio::spawn(forget_sessions_on_notice(state.clone()));
    let upkeep = tokio::spawn(account_upkeep(state.clone()));
    core::setup::announce(&state).await;
    tokio::task::spawn_blocking(import::spool::sweep_spool);
    // After the signal, in-flight requests get the grace period, then the server stops anyway.
    let grace = std::time::Duration::from_secs(state.settings.sender.shutdown_grace_secs);
    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = signalled.send(true);
    };
    let mut state = state;
    state.stopping = Some(on_signal.clone());
    let header_timeout =
        std::time::Duration::from_secs(state.settings.http.header_timeout_secs.max(1));
    let server = async move {
        server::serve_connections(listener, app(state), header_timeout, shutdown).await;
        Ok::<(), std::io::Error>(())
    };
    let deadline = async move {
        let _ = on_signal.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        r = server => r,
        () = deadline => {
            tracing::warn!("shutdown grace period over with requests in flight; stopping anyway");
            Ok(())
        }
    };
    pruner.abort();
    forgetter.abort();
    upkeep.abort();
    result
}

/// Binds `HEYDOC_HTTP_ADDR` and serves until `shutdown` resolves.
pub async fn run(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = state.settings.http_addr.clone();
    let listener = TcpListener::bind(&addr).await?;
    tracing::info!("gateway listening on http://{}", listener.local_addr()?);
    serve(listener, state, shutdown).await
}

async fn prune_login_limiter(limiter: std::sync::Arc<LoginLimiter>) {
    let mut tick = tokio::time::interval(LoginLimiter::PRUNE_EVERY);
    loop {
        tick.tick().await;
        limiter.prune();
    }
}
