//! The one error type of HTTP handlers: a stable code and a message, never internals.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{
    BytesRejection, JsonRejection, PathRejection, QueryRejection, StringRejection,
};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nexus_shared::{ErrorBody, ErrorCode};

use crate::store::{StoreError, store_error_body};

#[derive(Debug)]
pub struct AppError(pub ErrorBody);

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ErrorBody::new(code, message))
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found."))
    }
}

/// The HTTP status for an error code: the one of the code's table (`nexus_shared::ErrorCode`).
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (status_of(self.0.code), Json(self.0)).into_response()
    }
}

impl From<ErrorBody> for AppError {
    fn from(body: ErrorBody) -> Self {
        Self(body)
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        Self(store_error_body(&err))
    }
}

/// `Json` whose rejection has the same error shape as every other error.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        if body_timed_out(&rejection) {
            return Self::request_timeout();
        }
        Self::new(ErrorCode::Validation, rejection.body_text())
    }
}

impl AppError {
    /// The body did not arrive within the body timeout (`serve` in `lib.rs`).
    pub fn request_timeout() -> Self {
        Self::new(
            ErrorCode::RequestTimeout,
            "The request's body did not arrive in time. Send it again.",
        )
    }
}

/// Whether reading a request's body failed because it did not arrive within the body timeout.
pub fn body_timed_out(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<crate::BodyTimedOut>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// A raw body (`Bytes`) whose rejection (a body too large, or cut off by the body timeout) is
/// a `{code, message}` body too.
#[derive(Debug)]
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(Self)
            .map_err(AppError::from)
    }
}

impl From<BytesRejection> for AppError {
    fn from(rejection: BytesRejection) -> Self {
        if body_timed_out(&rejection) {
            return Self::request_timeout();
        }
        Self::new(ErrorCode::Validation, rejection.body_text())
    }
}

/// A text body (`String`) whose rejection is a `{code, message}` body too (see [`ApiBytes`]).
#[derive(Debug)]
pub struct ApiText(pub String);

impl<S: Send + Sync> FromRequest<S> for ApiText {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        String::from_request(req, state)
            .await
            .map(Self)
            .map_err(AppError::from)
    }
}

impl From<StringRejection> for AppError {
    fn from(rejection: StringRejection) -> Self {
        if body_timed_out(&rejection) {
            return Self::request_timeout();
        }
        Self::new(ErrorCode::Validation, rejection.body_text())
    }
}

/// `Path` whose rejection (a malformed id in the URL) is a `{code, message}` body too.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> Self {
        Self::new(ErrorCode::Validation, rejection.body_text())
    }
}

/// `Query` whose rejection (a bad query string) is a `{code, message}` body too.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(ErrorCode::Validation, rejection.body_text())
    }
}
