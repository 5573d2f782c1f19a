//! The todo example's HTTP API: plain axum, with every answer in JSON.
//!
//! * `POST /todos` with `{"title": "...", "done": false}` (`done` may be
//!   left out): 201, the new row and a `Location` header.
//! * `GET /todos`: every row, by id.
//! * `GET /todos/{id}`: the row, or 404.
//! * `PUT /todos/{id}` with `{"title": "...", "done": true}`: replaces
//!   the row (a missing `done` is `false`); 200 and the row, or 404.
//! * `PATCH /todos/{id}` with either field or both: changes those; 200 and
//!   the row, or 404.
//! * `DELETE /todos/{id}`: 204, or 404.
//! * `GET /healthz`: 200 while a database connection is up, else 503.
//!
//! Errors are `{"error": "..."}`: 400 for a body that is not JSON, has a
//! field of the wrong type, a field it should not, or a bad title, and for
//! an id that is not a number; 415 without `Content-Type:
//! application/json`; 503 with `Retry-After` while the database is down
//! or slow; 500 for anything else the database refuses.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_postgres::Row;

use crate::db::{Db, DbError};

/// The longest title accepted, in characters.
pub const MAX_TITLE: usize = 1000;

/// One row of the table, as the API shows it.
#[derive(Serialize)]
pub struct Todo {
    id: i64,
    title: String,
    done: bool,
}

impl From<Row> for Todo {
    fn from(row: Row) -> Todo {
        Todo {
            id: row.get(0),
            title: row.get(1),
            done: row.get(2),
        }
    }
}

/// The body of `POST` and `PUT`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTodo {
    title: String,
    #[serde(default)]
    done: bool,
}

/// The body of `PATCH`: the fields to change.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TodoPatch {
    title: Option<String>,
    done: Option<bool>,
}

/// The application over a database pool.
pub fn app(db: Arc<Db>) -> Router {
    Router::new()
        .route("/todos", get(list).post(create))
        .route(
            "/todos/{id}",
            get(fetch).put(replace).patch(patch).delete(remove),
        )
        .route("/healthz", get(health))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .with_state(db)
}

async fn create(
    State(db): State<Arc<Db>>,
    JsonBody(new): JsonBody<NewTodo>,
) -> Result<Response, ApiError> {
    check_title(&new.title)?;
    let conn = db.conn()?;
    let row = db
        .run(
            conn.client
                .query_one(&conn.stmts.insert, &[&new.title, &new.done]),
        )
        .await?;
    let todo = Todo::from(row);
    let location = format!("/todos/{}", todo.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(todo),
    )
        .into_response())
}

async fn list(State(db): State<Arc<Db>>) -> Result<Json<Vec<Todo>>, ApiError> {
    let conn = db.conn()?;
    let rows = db.run(conn.client.query(&conn.stmts.list, &[])).await?;
    Ok(Json(rows.into_iter().map(Todo::from).collect()))
}

async fn fetch(State(db): State<Arc<Db>>, Path(id): Path<String>) -> Result<Json<Todo>, ApiError> {
    let id = parse_id(&id)?;
    let conn = db.conn()?;
    let row = db
        .run(conn.client.query_opt(&conn.stmts.get, &[&id]))
        .await?;
    found(id, row)
}

async fn replace(
    State(db): State<Arc<Db>>,
    Path(id): Path<String>,
    JsonBody(new): JsonBody<NewTodo>,
) -> Result<Json<Todo>, ApiError> {
    let id = parse_id(&id)?;
    check_title(&new.title)?;
    let conn = db.conn()?;
    let row = db
        .run(
            conn.client
                .query_opt(&conn.stmts.replace, &[&id, &new.title, &new.done]),
        )
        .await?;
    found(id, row)
}

async fn patch(
    State(db): State<Arc<Db>>,
    Path(id): Path<String>,
    JsonBody(change): JsonBody<TodoPatch>,
) -> Result<Json<Todo>, ApiError> {
    let id = parse_id(&id)?;
    if let Some(title) = &change.title {
        check_title(title)?;
    }
    let conn = db.conn()?;
    let row = db
        .run(
            conn.client
                .query_opt(&conn.stmts.patch, &[&id, &change.title, &change.done]),
        )
        .await?;
    found(id, row)
}

async fn remove(State(db): State<Arc<Db>>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let conn = db.conn()?;
    match db
        .run(conn.client.execute(&conn.stmts.delete, &[&id]))
        .await?
    {
        0 => Err(missing(id)),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

async fn health(State(db): State<Arc<Db>>) -> Response {
    let (up, size) = (db.up(), db.size());
    let body = Json(json!({ "connections_up": up, "pool_size": size }));
    if up > 0 {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// The row, or a 404 for `id`.
fn found(id: i64, row: Option<Row>) -> Result<Json<Todo>, ApiError> {
    row.map(|row| Json(Todo::from(row)))
        .ok_or_else(|| missing(id))
}

fn missing(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no todo {id}"))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("id: expected an integer, got {id:?}"),
        )
    })
}

/// A title is one to [`MAX_TITLE`] characters, none of them NUL (which a
/// PostgreSQL `text` cannot hold).
fn check_title(title: &str) -> Result<(), ApiError> {
    let problem = if title.trim().is_empty() {
        "title: must not be empty"
    } else if title.chars().count() > MAX_TITLE {
        "title: longer than 1000 characters"
    } else if title.contains('\0') {
        "title: must not contain NUL characters"
    } else {
        return Ok(());
    };
    Err(ApiError::new(StatusCode::BAD_REQUEST, problem))
}

/// An error answer: a status and `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::Unavailable(message) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
            }
            DbError::Failed(message) => {
                // The details are for the operator; the client learns that
                // it was not its fault.
                eprintln!("todo: {message}");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "database error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.message }));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            (self.status, [(header::RETRY_AFTER, "1")], body).into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

/// axum's `Json` with its rejections as [`ApiError`]s: a body that is not
/// JSON (axum's 400) and one of the wrong shape (axum's 422) are both a
/// 400 here, with serde's message; a missing content type stays a 415.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => {
                let status = match &rejection {
                    JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_) => {
                        StatusCode::BAD_REQUEST
                    }
                    other => other.status(),
                };
                Err(ApiError::new(status, rejection.body_text()))
            }
        }
    }
}
