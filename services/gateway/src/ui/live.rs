//! `GET /api/events`: the dashboard's server-sent events. Each event names the contacts whose
//! chats changed; the page then re-reads what it shows. Events reach every replica (see
//! `heydoc_store::live`), and the stream ends when the gateway begins to shut down.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use heydoc_store::live::{LiveEvent, LiveKind};
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiResult;
use crate::state::AppState;

/// Live chat changes as server-sent events named `message` or `status`, with data
/// `{"kind":..., "contact_ids":[...], "all":false}`; `all` means "reload everything".
#[utoipa::path(
    get, path = "/api/events", tag = "messages", security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, description = "text/event-stream of chat changes", content_type = "text/event-stream"),
              (status = 401, body = crate::error::ErrorBody))
)]
pub async fn events(
    State(state): State<AppState>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let receiver = state.live_feed().await?.subscribe();
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(event) => event,
            // This browser fell behind: it reloads what it shows instead of missing changes.
            Err(RecvError::Lagged(_)) => LiveEvent::everything(LiveKind::Message),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(to_sse(&event)), receiver))
    });
    let mut stopping = state.stopping.clone();
    let until_shutdown = async move {
        match stopping.as_mut() {
            Some(rx) => {
                let _ = rx.wait_for(|s| *s).await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    Ok(Sse::new(events.take_until(until_shutdown)).keep_alive(KeepAlive::default()))
}

fn to_sse(event: &LiveEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{\"all\":true}".into());
    Event::default().event(event.kind.as_str()).data(data)
}
