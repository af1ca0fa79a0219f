//! `GET /metrics`: the Prometheus text of [`crate::live::metrics`].

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>) -> impl IntoResponse {
    let text = state.hub.metrics().render(
        state.store.backend(),
        state.hub.subscriptions(),
        state.store.pool_stats(),
        (state.ai.in_flight(), state.ai.capacity()),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
