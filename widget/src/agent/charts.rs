//! The owner's analytics page: a period picker and SVG charts drawn here (no chart library),
//! each with its numbers as text as well. The geometry is plain functions, tested natively.

use leptos::prelude::*;

use super::App;
use super::api;
use super::data::{Analytics, analytics, duration_text, percent, reason_code_text};
use crate::browser;
use crate::wire::{Json, string};

/// One week of the learning curve (`weekly` of `GET /api/v1/analytics`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Week {
    /// Its Monday, `YYYY-MM-DD`.
    pub week: String,
    pub conversations: u64,
    pub automation_rate: f64,
    /// Entries taught, questions taught live and questions approved.
    pub taught: u64,
    pub approved: u64,
}

/// The weeks of an analytics answer (none from a server without them).
pub fn weeks<J: Json>(v: &J) -> Vec<Week> {
    let n = |w: &J, k: &str| w.get(k).and_then(|x| x.number()).unwrap_or(0.0).max(0.0);
    v.get("weekly")
        .and_then(|w| w.items())
        .unwrap_or_default()
        .iter()
        .map(|w| Week {
            week: string(w, "week").unwrap_or_default(),
            conversations: n(w, "conversations") as u64,
            automation_rate: n(w, "automation_rate"),
            taught: (n(w, "new_entries") + n(w, "taught")) as u64,
            approved: n(w, "approved") as u64,
        })
        .collect()
}

/// A rectangle of a bar chart, in whole SVG units (no float formatting in the bundle).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

/// `value` of `max` as a length out of `len` (0 when there is nothing to compare with).
pub fn scale(value: f64, max: f64, len: i32) -> i32 {
    if max <= 0.0 || value <= 0.0 {
        0
    } else {
        ((value / max).min(1.0) * f64::from(len)).round() as i32
    }
}

/// Columns for `values` side by side in a `width`×`height` box, bottom-aligned, scaled to the
/// largest value.
pub fn columns(values: &[f64], width: i32, height: i32) -> Vec<Bar> {
    let slot = width / values.len().max(1) as i32;
    let w = (slot * 7 / 10).max(1);
    let max = values.iter().copied().fold(0.0, f64::max);
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let h = scale(*v, max, height);
            Bar {
                x: i as i32 * slot + (slot - w) / 2,
                y: height - h,
                w,
                h,
            }
        })
        .collect()
}

/// The `points` of a polyline through `rates` (0..=1) across a `width`×`height` box.
pub fn line(rates: &[f64], width: i32, height: i32) -> String {
    let slot = width / rates.len().max(1) as i32;
    rates
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let x = i as i32 * slot + slot / 2;
            let y = height - scale(r.clamp(0.0, 1.0), 1.0, height);
            format!("{x},{y}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

const DAY_MS: i64 = 86_400_000;

/// The periods the picker offers, in days.
const PERIODS: [(u32, &str); 4] = [
    (1, "Last 24 hours"),
    (7, "Last 7 days"),
    (30, "Last 30 days"),
    (90, "Last 90 days"),
];

/// What the analytics page shows: the period's figures and its weeks.
type Loaded = (Analytics, Vec<Week>);

#[component]
pub fn AnalyticsPage(app: App) -> impl IntoView {
    let days = RwSignal::new(30u32);
    let data: RwSignal<Option<Result<Loaded, String>>> = RwSignal::new(None);
    let generation = StoredValue::new(0u32);
    let load = move |app: App| {
        let span = i64::from(days.get_untracked()) * DAY_MS;
        let to = browser::now();
        let from = to - span;
        generation.update_value(|g| *g += 1);
        let mine = generation.get_value();
        data.set(None);
        leptos::task::spawn_local(async move {
            let path = format!("/analytics?from={from}&to={to}");
            let result = match api::call(&app, "GET", &path, None).await {
                Ok(v) => analytics(&v)
                    .map(|a| (a, weeks(&v)))
                    .ok_or_else(|| "The server's answer was unreadable.".into()),
                Err(e) if e.missing() => Err("This server does not offer analytics yet.".into()),
                Err(e) => Err(e.message),
            };
            if generation.get_value() == mine {
                data.set(Some(result));
            }
        });
    };
    load(app.clone());
    let refresh = {
        let app = app.clone();
        move |_| load(app.clone())
    };
    let pick = {
        let app = app.clone();
        move |ev| {
            if let Ok(n) = event_target_value(&ev).parse() {
                days.set(n);
                load(app.clone());
            }
        }
    };
    let options = PERIODS
        .iter()
        .map(|(n, label)| view! { <option value=n.to_string() selected=*n == 30>{*label}</option> })
        .collect_view();
    view! {
        <section class="na-console" data-testid="analytics">
            <header class="na-console-head">
                <h2>"Analytics"</h2>
                <label class="na-inline">
                    "Period "
                    <select data-testid="analytics-period" on:change=pick>{options}</select>
                </label>
                <button on:click=refresh data-testid="analytics-refresh">"Refresh"</button>
            </header>
            {move || match data.get() {
                Some(Ok((a, w))) => {
                    let html = charts_html(&a) + &weekly_html(&w);
                    view! { <div class="na-analytics" inner_html=html></div> }.into_any()
                }
                other => {
                    let note = other.and_then(Result::err).unwrap_or_else(|| "Loading…".into());
                    view! { <p class="na-muted" role="status">{note}</p> }.into_any()
                }
            }}
        </section>
    }
}

const W: i32 = 320;

/// `s` with the HTML special characters escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A chart: its title, the SVG (`height` high, `body` inside) and its numbers as text.
fn figure(out: &mut String, testid: &str, title: &str, caption: &str, height: i32, body: &str) {
    out.push_str(&format!(
        "<figure class=\"na-chart\" data-testid=\"{testid}\"><h3>{}</h3>\
         <svg viewBox=\"0 0 {W} {height}\" role=\"img\" aria-label=\"{}\">{body}</svg>\
         <figcaption data-testid=\"chart-text\">{}</figcaption></figure>",
        esc(title),
        esc(title),
        esc(caption)
    ));
}

/// SVG text at `(x, y)`.
fn text(x: i32, y: i32, anchor: &str, class: &str, t: &str) -> String {
    format!(
        "<text x=\"{x}\" y=\"{y}\" text-anchor=\"{anchor}\" class=\"{class}\">{}</text>",
        esc(t)
    )
}

fn rect(x: i32, y: i32, w: i32, h: i32, class: &str) -> String {
    format!(
        "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" rx=\"2\" class=\"{class}\"></rect>"
    )
}

/// Horizontal bars with a label and a value each; the SVG body and its height.
fn hbars(rows: &[(String, f64, String)]) -> (String, i32) {
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max);
    let mut body = String::new();
    for (i, (label, v, value)) in rows.iter().enumerate() {
        let y = i as i32 * 22;
        body.push_str(&text(0, y + 15, "start", "na-svg-label", label));
        body.push_str(&rect(
            160,
            y + 4,
            scale(*v, max, 120).max(1),
            14,
            "na-svg-bar",
        ));
        body.push_str(&text(W - 2, y + 15, "end", "na-svg-value", value));
    }
    (body, 22 * rows.len().max(1) as i32)
}

/// The analytics as markup: built as text from numbers and fixed words (nothing a visitor
/// wrote), every piece escaped, so that the charts cost the bundle one string and no
/// components.
pub fn charts_html(a: &Analytics) -> String {
    let rate = a.automation_rate;
    let escalated: u64 = a.escalations.iter().map(|e| e.1).sum();
    let mut out = format!(
        "<div class=\"na-stats\"><p data-testid=\"stat-conversations\"><strong>{}</strong> conversations</p>\
         <p data-testid=\"stat-automation\"><strong>{}</strong> automated</p>\
         <p data-testid=\"stat-escalations\"><strong>{escalated}</strong> escalated</p></div><div class=\"na-charts\">",
        a.conversations,
        percent(rate)
    );
    let gauge = format!(
        "{}{}{}",
        rect(0, 8, W, 20, "na-svg-track"),
        rect(0, 8, scale(rate, 1.0, W), 20, "na-svg-bar"),
        text(W / 2, 23, "middle", "na-svg-on", &percent(rate))
    );
    figure(
        &mut out,
        "chart-automation",
        "Automation rate",
        &format!(
            "{} of {} conversations answered by the AI alone ({} automated).",
            percent(rate),
            a.conversations,
            a.automated
        ),
        40,
        &gauge,
    );
    let reasons: Vec<(String, f64, String)> = a
        .escalations
        .iter()
        .map(|(code, n)| (reason_code_text(code), *n as f64, n.to_string()))
        .collect();
    let reasons_text = if reasons.is_empty() {
        "No escalations in this period.".to_owned()
    } else {
        reasons
            .iter()
            .map(|(l, _, n)| format!("{l}: {n}"))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let (body, h) = hbars(&reasons);
    figure(
        &mut out,
        "chart-escalations",
        "Escalations by reason",
        &format!("{escalated} escalations. {reasons_text}"),
        h,
        &body,
    );
    let mut csat = String::new();
    for (i, (b, n)) in columns(&a.csat.map(|n| n as f64), W, 80)
        .into_iter()
        .zip(a.csat)
        .enumerate()
    {
        csat.push_str(&rect(b.x, b.y + 14, b.w, b.h.max(1), "na-svg-bar"));
        csat.push_str(&text(
            b.x + b.w / 2,
            b.y + 11,
            "middle",
            "na-svg-value",
            &n.to_string(),
        ));
        csat.push_str(&text(
            b.x + b.w / 2,
            110,
            "middle",
            "na-svg-label",
            &format!("{}★", i + 1),
        ));
    }
    figure(
        &mut out,
        "chart-csat",
        "Satisfaction (CSAT)",
        &match a.csat_average {
            Some(avg) => format!(
                "Average {} of 5 from {} ratings. Ratings 1 to 5: {}.",
                super::data::tenths(avg),
                a.csat_count,
                a.csat.map(|n| n.to_string()).join(", ")
            ),
            None => "No ratings in this period.".into(),
        },
        116,
        &csat,
    );
    for (testid, title, p) in [
        (
            "chart-first-response",
            "First response time",
            a.first_response,
        ),
        ("chart-handle-time", "Handle time", a.handle_time),
    ] {
        let rows = [
            (
                "Median (p50)".to_owned(),
                p.p50.unwrap_or(0) as f64,
                duration_text(p.p50),
            ),
            (
                "Slowest 10% (p90)".to_owned(),
                p.p90.unwrap_or(0) as f64,
                duration_text(p.p90),
            ),
        ];
        let (body, h) = hbars(&rows);
        figure(
            &mut out,
            testid,
            title,
            &format!(
                "Median {}, 90th percentile {}.",
                duration_text(p.p50),
                duration_text(p.p90)
            ),
            h,
            &body,
        );
    }
    let rates: Vec<f64> = a.daily.iter().map(|d| d.automation_rate).collect();
    let taught: Vec<f64> = a.daily.iter().map(|d| d.taught as f64).collect();
    let mut curve =
        format!("<line x1=\"0\" y1=\"80\" x2=\"{W}\" y2=\"80\" class=\"na-svg-axis\"></line>");
    for b in columns(&taught, W, 40) {
        curve.push_str(&rect(b.x, b.y + 80, b.w, b.h, "na-svg-taught"));
    }
    curve.push_str(&format!(
        "<polyline points=\"{}\" class=\"na-svg-line\" fill=\"none\"></polyline>",
        line(&rates, W, 76)
    ));
    let day = |d: Option<&super::data::Day>| d.map(|d| d.day.clone()).unwrap_or_default();
    curve.push_str(&text(
        0,
        134,
        "start",
        "na-svg-label",
        &day(a.daily.first()),
    ));
    curve.push_str(&text(W, 134, "end", "na-svg-label", &day(a.daily.last())));
    let total_taught: u64 = a.daily.iter().map(|d| d.taught).sum();
    figure(
        &mut out,
        "chart-learning",
        "Learning curve",
        &format!(
            "Daily automation rate over {} days; {total_taught} answers taught.",
            a.daily.len()
        ),
        136,
        &curve,
    );
    out.push_str(
        "</div><table class=\"na-table\" data-testid=\"analytics-daily\"><caption>Day by day</caption>\
         <thead><tr><th>Day</th><th>Conversations</th><th>Automated</th><th>Escalated</th>\
         <th>Taught</th><th>Automation</th></tr></thead><tbody>",
    );
    for d in &a.daily {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.day),
            d.conversations,
            d.automated,
            d.escalated,
            d.taught,
            percent(d.automation_rate)
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// The weekly learning curve: what was taught or approved each week (columns) under the
/// automation rate (the line), and the same as a table.
pub fn weekly_html(weeks: &[Week]) -> String {
    if weeks.is_empty() {
        return String::new();
    }
    let rates: Vec<f64> = weeks.iter().map(|w| w.automation_rate).collect();
    let learned: Vec<f64> = weeks
        .iter()
        .map(|w| (w.taught + w.approved) as f64)
        .collect();
    let mut body =
        format!("<line x1=\"0\" y1=\"80\" x2=\"{W}\" y2=\"80\" class=\"na-svg-axis\"></line>");
    for b in columns(&learned, W, 40) {
        body.push_str(&rect(b.x, b.y + 80, b.w, b.h, "na-svg-taught"));
    }
    body.push_str(&format!(
        "<polyline points=\"{}\" class=\"na-svg-line\" fill=\"none\"></polyline>",
        line(&rates, W, 76)
    ));
    let first = weeks.first().map(|w| w.week.as_str()).unwrap_or_default();
    let last = weeks.last().map(|w| w.week.as_str()).unwrap_or_default();
    body.push_str(&text(0, 134, "start", "na-svg-label", first));
    body.push_str(&text(W, 134, "end", "na-svg-label", last));
    let taught: u64 = weeks.iter().map(|w| w.taught).sum();
    let approved: u64 = weeks.iter().map(|w| w.approved).sum();
    let mut out = String::from("<div class=\"na-charts\">");
    figure(
        &mut out,
        "chart-weekly",
        "Weekly learning curve",
        &format!(
            "Automation rate per week over {} weeks; {taught} taught and {approved} approved.",
            weeks.len()
        ),
        136,
        &body,
    );
    out.push_str(
        "</div><table class=\"na-table\" data-testid=\"analytics-weekly\"><caption>Week by week</caption>\
         <thead><tr><th>Week of</th><th>Conversations</th><th>Automation</th><th>Taught</th>\
         <th>Approved</th></tr></thead><tbody>",
    );
    for w in weeks {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.week),
            w.conversations,
            percent(w.automation_rate),
            w.taught,
            w.approved
        ));
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weekly_curve_lists_each_week_and_escapes() {
        let weeks = [
            Week {
                week: "2026-11-23".into(),
                conversations: 4,
                automation_rate: 0.25,
                taught: 2,
                approved: 0,
            },
            Week {
                week: "<i>".into(),
                conversations: 2,
                automation_rate: 1.0,
                taught: 0,
                approved: 3,
            },
        ];
        let html = weekly_html(&weeks);
        assert!(html.contains("over 2 weeks; 2 taught and 3 approved"));
        assert!(html.contains("<td>2026-11-23</td><td>4</td><td>25%</td><td>2</td><td>0</td>"));
        assert!(html.contains("&lt;i&gt;") && !html.contains("<i>"));
        assert_eq!(weekly_html(&[]), "");
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let bars = columns(&[0.0, 2.0, 4.0], 300, 100);
        assert_eq!(bars.len(), 3);
        assert_eq!(bars[0].h, 0);
        assert_eq!(bars[1].h, 50);
        assert_eq!(bars[2].h, 100);
        assert_eq!(bars[2].y, 0);
        assert!(bars[0].x < bars[1].x && bars[1].x < bars[2].x);
        assert!(columns(&[0.0, 0.0], 100, 10).iter().all(|b| b.h == 0));
        assert_eq!(scale(5.0, 0.0, 100), 0);
        assert_eq!(scale(1.0, 4.0, 100), 25);
    }

    #[test]
    fn the_markup_escapes_and_counts() {
        let a = Analytics {
            conversations: 3,
            automated: 2,
            automation_rate: 2.0 / 3.0,
            escalations: vec![("visitor_asked".into(), 1)],
            daily: vec![super::super::data::Day {
                day: "<b>".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let html = charts_html(&a);
        assert!(html.contains("<strong>3</strong> conversations"));
        assert!(html.contains("Visitor asked for a person: 1"));
        assert!(html.contains("&lt;b&gt;") && !html.contains("<b>"));
        assert_eq!(esc("a\"&'"), "a&quot;&amp;&#39;");
    }

    #[test]
    fn the_line_goes_up_as_the_rate_grows() {
        assert_eq!(line(&[0.0, 0.5, 1.0], 300, 100), "50,100 150,50 250,0");
        assert_eq!(line(&[], 300, 100), "");
    }
}
