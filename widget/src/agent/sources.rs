//! The owner console's Articles page: knowledge sources besides Q&A entries. Add a web page
//! or a sitemap by URL, paste text or upload an HTML, Markdown or text file; the list shows
//! each source's passage count, last fetch and last error, with refresh, delete and its
//! passages. Text from the server is only ever rendered as text nodes.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use wasm_bindgen::JsValue;

use super::App;
use super::api::{self, JsObj};
use super::data::{SourceItem, changes_text, passage, source_item};
use crate::wire::{Json, string};

/// The last fetch as the browser's local date and time.
fn when(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => {
            let date = js_sys::Date::new(&JsValue::from_f64(ms as f64));
            format!(
                "last read {}",
                String::from(date.to_locale_string("default", &JsValue::UNDEFINED))
            )
        }
        None => "never read".into(),
    }
}

/// What an add or a refresh answered, in words (with the pages a sitemap skipped).
fn result_text(what: &str, v: &JsValue) -> String {
    let skipped = v
        .get("skipped")
        .and_then(|s| s.items())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            format!(
                "\nSkipped {}: {}",
                string(s, "url").unwrap_or_default(),
                string(s, "message").unwrap_or_default()
            )
        })
        .collect::<String>();
    format!("{what}: {}{skipped}", changes_text(v))
}

/// A source whose passages are shown: its id and its passages' `(title, body)`.
type OpenSource = (String, Vec<(String, String)>);

#[component]
pub fn SourcesPage(app: App) -> impl IntoView {
    let items: RwSignal<Option<Result<Vec<SourceItem>, String>>> = RwSignal::new(None);
    let load = {
        let app = app.clone();
        move || {
            let app = app.clone();
            leptos::task::spawn_local(async move {
                let result = api::call(&app, "GET", "/sources", None)
                    .await
                    .map(|v| api::items(&v, source_item))
                    .map_err(|e| e.message);
                items.set(Some(result));
            });
        }
    };
    load();

    // One status line for every action: Ok(text) or Err(text).
    let status: RwSignal<Option<Result<String, String>>> = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let send = {
        let app = app.clone();
        let load = load.clone();
        move |method: &'static str, path: String, body: Option<JsValue>, what: String| {
            let app = app.clone();
            let load = load.clone();
            busy.set(true);
            status.set(Some(Ok(format!("{what}…"))));
            leptos::task::spawn_local(async move {
                let body = body.as_ref().and_then(api::json);
                let result = api::call(&app, method, &path, body).await;
                busy.set(false);
                match result {
                    Ok(_) if method == "DELETE" => status.set(Some(Ok(format!("{what}: done.")))),
                    Ok(v) => status.set(Some(Ok(result_text(&what, &v)))),
                    Err(e) => status.set(Some(Err(format!("{what}: {}", e.message)))),
                }
                load();
            });
        }
    };

    // The add form.
    let kind = RwSignal::new("url".to_owned());
    let url = RwSignal::new(String::new());
    let title = RwSignal::new(String::new());
    let content = RwSignal::new(String::new());
    let submit = {
        let send = send.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            let k = kind.get_untracked();
            let body = JsObj::new().set("kind", k.as_str());
            let (body, what) = if k == "paste" {
                let (t, c) = (title.get_untracked(), content.get_untracked());
                if t.trim().is_empty() || c.trim().is_empty() {
                    status.set(Some(Err("Give the article a title and its text.".into())));
                    return;
                }
                let link = url.get_untracked();
                let body = body.set("title", t.trim()).set("content", c.as_str());
                let body = if link.trim().is_empty() {
                    body
                } else {
                    body.set("url", link.trim())
                };
                (body, format!("Adding {}", t.trim()))
            } else {
                let u = url.get_untracked();
                if u.trim().is_empty() {
                    status.set(Some(Err("Give the URL to fetch.".into())));
                    return;
                }
                (body.set("url", u.trim()), format!("Fetching {}", u.trim()))
            };
            send("POST", "/sources".into(), Some(body.value()), what);
        }
    };
    let upload = {
        let send = send.clone();
        move |ev: leptos::ev::Event| {
            let Some(input) = ev.target() else { return };
            let input: JsValue = input.into();
            let again = input.clone();
            let send = send.clone();
            api::read_picked(&input, move |name, text| {
                let _ = js_sys::Reflect::set(&again, &"value".into(), &"".into());
                let Some(text) = text else {
                    status.set(Some(Err(format!("{name} could not be read."))));
                    return;
                };
                let body = JsObj::new()
                    .set("kind", "file")
                    .set("title", name.as_str())
                    .set("content", text.as_str())
                    .value();
                send(
                    "POST",
                    "/sources".into(),
                    Some(body),
                    format!("Uploading {name}"),
                );
            });
        }
    };

    // Passages of one source, shown under it.
    let open: RwSignal<Option<OpenSource>> = RwSignal::new(None);
    let show = {
        let app = app.clone();
        move |id: String| {
            if open.with_untracked(|o| o.as_ref().is_some_and(|o| o.0 == id)) {
                open.set(None);
                return;
            }
            let app = app.clone();
            leptos::task::spawn_local(async move {
                let path = format!("/sources/{}/passages", api::segment(&id));
                match api::call(&app, "GET", &path, None).await {
                    Ok(v) => open.set(Some((id, api::items(&v, passage)))),
                    Err(e) => status.set(Some(Err(e.message))),
                }
            });
        }
    };
    let confirming: RwSignal<Option<String>> = RwSignal::new(None);

    let list_view = move || {
        match items.get() {
        None => view! { <p class="na-muted" role="status">"Loading…"</p> }.into_any(),
        Some(Err(e)) => view! { <p class="na-field-error" role="alert">{e}</p> }.into_any(),
        Some(Ok(v)) if v.is_empty() => {
            view! { <p class="na-muted" data-testid="sources-empty">"No articles yet."</p> }
                .into_any()
        }
        Some(Ok(v)) => v
            .into_iter()
            .map(|s| {
                let (send_refresh, send_delete, show) = (send.clone(), send.clone(), show.clone());
                let (id, id_del, id_show, id_label, id_open) =
                    (s.id.clone(), s.id.clone(), s.id.clone(), s.id.clone(), s.id.clone());
                let title_refresh = s.title.clone();
                let title_delete = s.title.clone();
                let passages = move || {
                    open.get()
                        .filter(|o| o.0 == id_open)
                        .map(|o| {
                            o.1.into_iter()
                                .map(|(t, b)| view! { <li data-testid="passage"><strong>{t}</strong><p class="na-body">{b}</p></li> })
                                .collect_view()
                        })
                };
                view! {
                    <li class="na-kb-item" data-testid="source" data-id=s.id.clone()>
                        <div>
                            <strong data-testid="source-title">{s.title.clone()}</strong>
                            <p class="na-muted" data-testid="source-url" hidden=s.url.is_none()>{s.url.clone().unwrap_or_default()}</p>
                            <p class="na-muted" data-testid="source-summary">{format!("{} · {}", s.summary(), when(s.fetched_at))}</p>
                            <p class="na-field-error" role="alert" data-testid="source-error" hidden=s.last_error.is_none()>
                                {format!("Last refresh failed: {}", s.last_error.clone().unwrap_or_default())}
                            </p>
                            <ul class="na-kb">{passages}</ul>
                        </div>
                        <div class="na-actions">
                            <button type="button" class="na-plain" data-testid="source-passages" on:click=move |_| show(id_show.clone())>"Passages"</button>
                            <button type="button" class="na-plain" data-testid="source-refresh" hidden=!s.refreshable() disabled=busy
                                on:click=move |_| send_refresh("POST", format!("/sources/{}/refresh", api::segment(&id)), None, format!("Refreshing {title_refresh}"))>
                                "Refresh"
                            </button>
                            <button type="button" class="na-danger" data-testid="source-delete" on:click=move |_| {
                                if confirming.get_untracked().as_deref() != Some(id_del.as_str()) {
                                    confirming.set(Some(id_del.clone()));
                                    return;
                                }
                                confirming.set(None);
                                send_delete("DELETE", format!("/sources/{}", api::segment(&id_del)), None, format!("Deleting {title_delete}"));
                            }>
                                {move || if confirming.get().as_deref() == Some(id_label.as_str()) { "Confirm delete" } else { "Delete" }}
                            </button>
                        </div>
                    </li>
                }
            })
            .collect_view()
            .into_any(),
    }
    };

    view! {
        <section class="na-console" data-testid="sources">
            <header class="na-console-head">
                <h2>"Articles"</h2>
            </header>
            <p class="na-muted">"Help-centre articles, product pages and policies the AI answers from, with a link to the page. Each article is split into passages at its headings."</p>
            <form class="na-card na-form" data-testid="source-form" on:submit=submit>
                <label>"Add"
                    <select data-testid="source-kind" prop:value=move || kind.get() on:change=move |ev| kind.set(event_target_value(&ev))>
                        <option value="url">"A web page (URL)"</option>
                        <option value="sitemap">"Every page of a sitemap"</option>
                        <option value="paste">"Pasted text"</option>
                    </select>
                </label>
                <label hidden=move || kind.get() != "paste">"Title"<input data-testid="source-title-input" prop:value=move || title.get() on:input=move |ev| title.set(event_target_value(&ev)) /></label>
                <label>{move || if kind.get() == "paste" { "Link (optional)" } else { "URL" }}
                    <input type="url" data-testid="source-url-input" placeholder="https://" prop:value=move || url.get() on:input=move |ev| url.set(event_target_value(&ev)) />
                </label>
                <label hidden=move || kind.get() != "paste">"Text (Markdown headings split it)"<textarea data-testid="source-content" prop:value=move || content.get() on:input=move |ev| content.set(event_target_value(&ev))></textarea></label>
                <div class="na-actions">
                    <button type="submit" data-testid="source-add" disabled=busy>"Add"</button>
                    <label class="na-plain">"Or upload an .html, .md or .txt file "
                        <input type="file" accept=".html,.htm,.md,.markdown,.txt" data-testid="source-file" on:change=upload />
                    </label>
                </div>
            </form>
            <p class="na-lines" role="status" data-testid="source-status"
                class:na-ok=move || status.with(|s| matches!(s, Some(Ok(_))))
                class:na-field-error=move || status.with(|s| matches!(s, Some(Err(_))))
                hidden=move || status.with(Option::is_none)>
                {move || status.get().map(|s| s.unwrap_or_else(|e| e)).unwrap_or_default()}
            </p>
            <ul class="na-kb" data-testid="source-list">{list_view}</ul>
        </section>
    }
}
