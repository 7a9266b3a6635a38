//! `GET /api/events`: the dashboard's server-sent events. Each event names the contacts whose
//! chats changed; the page then re-reads what it shows. Events reach every replica (see
//! `heydoc_store::live`), and the stream ends when the gateway begins to shut down, when its
//! session ends (revoked, or its user disabled) and when its session expires.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use heydoc_store::live::{LiveEvent, LiveKind};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiResult;
use crate::state::AppState;

/// Live chat changes as server-sent events named `message`, `status` or `conversation`, with
/// data `{"kind":..., "contact_ids":[...], "all":false}` (`all` means "reload everything"), and
/// `replying` (`"by"`: the user id of someone writing a reply to those contacts).
#[utoipa::path(
    get, path = "/api/events", operation_id = "streamEvents", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "text/event-stream of chat changes", content_type = "text/event-stream"),
              (status = 401, body = crate::error::ErrorBody))
)]
pub async fn events(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let receiver = state.live_feed().await?.subscribe();
    let open = OpenStream::new(state.live_streams.clone());
    let headers_for_expiry = headers.clone();
    let who = (state.clone(), headers);
    let events = futures_util::stream::unfold(
        (receiver, open, who),
        |(mut receiver, open, who)| async move {
            let event = loop {
                match receiver.recv().await {
                    // Someone's access changed: this stream goes on only while its own
                    // session does (a disabled user stops hearing at once).
                    Ok(event) if event.kind == LiveKind::Access => {
                        let (state, headers) = &who;
                        state.sessions.clear();
                        match crate::auth::session::authenticate(state, headers).await {
                            Ok(Some(_)) => continue,
                            _ => return None,
                        }
                    }
                    Ok(event) => break event,
                    // This browser fell behind: it reloads what it shows instead of missing
                    // changes.
                    Err(RecvError::Lagged(_)) => break LiveEvent::everything(LiveKind::Message),
                    Err(RecvError::Closed) => return None,
                }
            };
            Some((Ok(to_sse(&event)), (receiver, open, who)))
        },
    );
    let mut stopping = state.stopping.clone();
    // A login session's stream ends when the session expires, as its next request would be
    // refused: nothing is heard on a session that is over.
    let expires = crate::auth::session::session_expiry(&state, &headers_for_expiry).await;
    let until_shutdown = async move {
        let expiry = async {
            match expires {
                Some(at) => {
                    let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(left).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let shutdown = async {
            match stopping.as_mut() {
                Some(rx) => {
                    let _ = rx.wait_for(|s| *s).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = expiry => {}
            () = shutdown => {}
        }
    };
    Ok(Sse::new(events.take_until(until_shutdown)).keep_alive(KeepAlive::default()))
}

/// Counts a stream while it is open (the gauge and the replica's own count): a browser that
/// keeps streams of pages it left shows here.
struct OpenStream(Arc<AtomicUsize>);

impl OpenStream {
    fn new(count: Arc<AtomicUsize>) -> Self {
        let now = count.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!(heydoc_telemetry::metrics::LIVE_STREAMS).set(now as f64);
        Self(count)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let now = self.0.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        metrics::gauge!(heydoc_telemetry::metrics::LIVE_STREAMS).set(now as f64);
    }
}

fn to_sse(event: &LiveEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{\"all\":true}".into());
    Event::default().event(event.kind.as_str()).data(data)
}
