//! The axum application of the axum example: routes, shared state, JSON,
//! a path parameter and a streamed body. Nothing here knows which runtime
//! serves it; `main.rs` serves it on gopark.
//!
//! * `GET /`: `Hello, World!`
//! * `GET /json`: `{"message":"Hello, World!"}`
//! * `POST /users` with `{"name":"..."}`: 201 and `{"id":N,"name":"..."}`
//! * `GET /users/{id}`: that user as JSON, or 404 with `{"error":"..."}`
//! * `GET /counter`: `{"count":N}`, one more on every call (shared state)
//! * `GET /stream?chunks=N&every_ms=M`: `chunk 0\n` … `chunk N-1\n`
//!   (default 10, at most 10,000), produced by a gopark task one every M
//!   ms (default 100) and sent as they come (chunked, or HTTP/2 frames).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_channel::mpsc;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};

/// The most chunks `/stream` sends.
pub const MAX_CHUNKS: u32 = 10_000;

/// What every handler shares.
#[derive(Default)]
pub struct AppState {
    hits: AtomicU64,
    next_id: AtomicU64,
    users: Mutex<HashMap<u64, User>>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
}

#[derive(Deserialize)]
pub struct NewUser {
    pub name: String,
}

#[derive(Deserialize)]
pub struct StreamParams {
    chunks: Option<u32>,
    every_ms: Option<u64>,
}

/// The application, with fresh state.
pub fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "Hello, World!" }))
        .route("/json", get(json))
        .route("/users", post(create_user))
        .route("/users/{id}", get(get_user))
        .route("/counter", get(counter))
        .route("/stream", get(stream))
        .with_state(Arc::new(AppState::default()))
}

async fn json() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "message": "Hello, World!" }))
}

async fn create_user(
    State(state): State<Arc<AppState>>,
    Json(new): Json<NewUser>,
) -> (StatusCode, Json<User>) {
    // Relaxed: only uniqueness matters; the map's lock orders the rest.
    let id = state.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let user = User { id, name: new.name };
    state.users.lock().unwrap().insert(id, user.clone());
    (StatusCode::CREATED, Json(user))
}

async fn get_user(State(state): State<Arc<AppState>>, Path(id): Path<u64>) -> Response {
    match state.users.lock().unwrap().get(&id) {
        Some(user) => Json(user.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no user {id}") })),
        )
            .into_response(),
    }
}

async fn counter(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    // Relaxed: a counter; each call sees its own increment.
    let count = state.hits.fetch_add(1, Ordering::Relaxed) + 1;
    Json(serde_json::json!({ "count": count }))
}

async fn stream(Query(params): Query<StreamParams>) -> Response {
    let chunks = params.chunks.unwrap_or(10);
    if chunks > MAX_CHUNKS {
        let msg = format!("chunks: at most {MAX_CHUNKS}");
        return (StatusCode::BAD_REQUEST, msg).into_response();
    }
    let every = Duration::from_millis(params.every_ms.unwrap_or(100).min(10_000));
    // A bounded channel: the producer waits while the client is slow, and
    // stops when the client goes away (the send fails).
    let (mut tx, rx) = mpsc::channel::<Bytes>(4);
    gopark::runtime::spawn(async move {
        for i in 0..chunks {
            if i > 0 && !every.is_zero() {
                gopark::runtime::time::sleep(every).await;
            }
            if tx.send(Bytes::from(format!("chunk {i}\n"))).await.is_err() {
                return;
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(rx.map(Ok::<_, Infallible>)),
    )
        .into_response()
}
