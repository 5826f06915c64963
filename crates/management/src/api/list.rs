//! Listings as RabbitMQ's management API pages, filters, sorts and trims them: `name` with
//! `use_regex`, `sort` and `sort_reverse`, `page` and `page_size` (then the answer is a page
//! object rather than an array), and `columns`. As in RabbitMQ 3.10, `name` filters only a page
//! (without `page` it is ignored), ignoring case. Every listing takes `page`, as RabbitMQ 3.13
//! pages users too (3.10 listed users, bindings and a vhost's connections and channels whole).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::ApiError;

/// The query parameters every listing takes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    /// Keep the items whose name contains this (or matches it, with `use_regex`).
    pub(crate) name: Option<String>,
    /// `name` is a regular expression.
    pub(crate) use_regex: Option<String>,
    /// Sort by this field (a dotted path, e.g. `message_stats.publish`).
    pub(crate) sort: Option<String>,
    /// Sort in reverse.
    pub(crate) sort_reverse: Option<String>,
    /// Return this page (from 1): the answer becomes a page object.
    pub(crate) page: Option<usize>,
    /// Items per page (default 100, at most 500).
    pub(crate) page_size: Option<usize>,
    /// Keep only these fields (comma-separated dotted paths).
    pub(crate) columns: Option<String>,
}

const MAX_PAGE_SIZE: usize = 500;

fn truthy(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|v| v == "true")
}

fn field<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |v, key| v.get(key))
}

/// Orders two values as RabbitMQ's sort does: numbers by value, strings by text, missing last.
fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(_), None) => Less,
        (None, Some(_)) => Greater,
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        (None, None) => Equal,
    }
}

fn project(item: &Value, columns: &[&str]) -> Value {
    let mut out = Map::new();
    for column in columns {
        let Some(value) = field(item, column) else { continue };
        let mut keys = column.split('.').peekable();
        let mut node = &mut out;
        while let Some(key) = keys.next() {
            if keys.peek().is_none() {
                node.insert(key.to_owned(), value.clone());
            } else {
                let entry = node.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
                match entry {
                    Value::Object(map) => node = map,
                    _ => break,
                }
            }
        }
    }
    Value::Object(out)
}

/// Applies the query to `items` (each a JSON object with a `name`), for a listing RabbitMQ
/// pages.
pub(crate) fn respond(items: Vec<Value>, query: &ListQuery) -> Result<Value, ApiError> {
    respond_built(named(items), query, |item| item)
}

/// Keeps only the `columns` of one object, as RabbitMQ trims single objects too.
pub(crate) fn trim(item: Value, query: &ListQuery) -> Value {
    match query.columns.as_deref() {
        Some(columns) => project(&item, &columns.split(',').filter(|c| !c.is_empty()).collect::<Vec<_>>()),
        None => item,
    }
}

/// Applies the query to items that cost to build, each given with its name, for a listing
/// RabbitMQ pages: they are filtered by name before any is built and, when the order needs
/// nothing but names (no `sort`, or by `name`), only the asked page's are built, so a page of
/// 10,000 queues costs what its 100 do.
pub(crate) fn respond_built<T>(
    entries: Vec<(Option<String>, T)>,
    query: &ListQuery,
    build: impl FnMut(T) -> Value,
) -> Result<Value, ApiError> {
    shape(entries, query, build)
}

fn named(items: Vec<Value>) -> Vec<(Option<String>, Value)> {
    items
        .into_iter()
        .map(|item| (item.get("name").and_then(Value::as_str).map(str::to_owned), item))
        .collect()
}

fn shape<T>(
    mut entries: Vec<(Option<String>, T)>,
    query: &ListQuery,
    mut build: impl FnMut(T) -> Value,
) -> Result<Value, ApiError> {
    let total = entries.len();
    let page = query.page;
    if let Some(name) = query.name.as_deref().filter(|n| !n.is_empty() && page.is_some()) {
        let re = if truthy(&query.use_regex) { regex_lite(name)? } else { regex_lite(&regex::escape(name))? };
        entries.retain(|(n, _)| n.as_deref().is_some_and(|n| re.is_match(n)));
    }
    let sort = query.sort.as_deref().filter(|s| !s.is_empty());
    let columns: Option<Vec<&str>> =
        query.columns.as_deref().map(|c| c.split(',').filter(|c| !c.is_empty()).collect());
    let shape = |item: Value| match &columns {
        Some(columns) => project(&item, columns),
        None => item,
    };
    let filtered = entries.len();
    let page = match page {
        None => None,
        Some(page) => {
            let page_size = query.page_size.unwrap_or(100);
            if page == 0 || page_size == 0 || page_size > MAX_PAGE_SIZE {
                let reason =
                    format!("Invalid pagination parameters: page number {page}, page size {page_size}");
                return Err(ApiError::bad_request_as("invalid_pagination_parameters", reason));
            }
            // As RabbitMQ: a page may start right after the last item (and be empty), not further.
            if (page - 1) * page_size > filtered {
                let reason =
                    format!("Page out of range, page: {page} page size: {page_size}, len: {filtered}");
                return Err(ApiError::bad_request_as("page_out_of_range", reason));
            }
            Some((page, page_size, filtered.div_ceil(page_size)))
        }
    };
    let in_page = |i: usize| page.is_none_or(|(page, size, _)| (page - 1) * size <= i && i < page * size);
    let items: Vec<Value> = if sort.is_none_or(|s| s == "name") {
        if sort.is_some() {
            // Missing names last, as `compare` orders them.
            entries.sort_by(|(a, _), (b, _)| a.is_none().cmp(&b.is_none()).then_with(|| a.cmp(b)));
        }
        if truthy(&query.sort_reverse) {
            entries.reverse();
        }
        entries
            .into_iter()
            .enumerate()
            .filter(|(i, _)| in_page(*i))
            .map(|(_, (_, t))| shape(build(t)))
            .collect()
    } else {
        let sort = sort.unwrap_or_default();
        let mut built: Vec<Value> = entries.into_iter().map(|(_, t)| build(t)).collect();
        built.sort_by(|a, b| compare(field(a, sort), field(b, sort)));
        if truthy(&query.sort_reverse) {
            built.reverse();
        }
        built.into_iter().enumerate().filter(|(i, _)| in_page(*i)).map(|(_, item)| shape(item)).collect()
    };
    let Some((page, page_size, page_count)) = page else {
        return Ok(Value::Array(items));
    };
    Ok(json!({
        "filtered_count": filtered,
        "item_count": items.len(),
        "items": items,
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    }))
}

/// Orders a listing as RabbitMQ's `reply_list` does when `columns` is given without `sort`: it
/// trims the items to the columns first and then sorts them by its default keys, so the keys the
/// columns leave out (`vhost`, usually) no longer count. `rabbitmqadmin list bindings` asks for
/// `source,destination,routing_key`, and gets the bindings of every vhost by source, not vhost
/// by vhost.
pub(crate) fn order_as_projected(items: &mut [Value], query: &ListQuery, default_sorts: &[&str]) {
    let Some(columns) = query.columns.as_deref() else { return };
    if query.sort.as_deref().is_some_and(|s| !s.is_empty()) {
        return;
    }
    let kept: Vec<&str> =
        default_sorts.iter().copied().filter(|k| columns.split(',').any(|c| c == *k)).collect();
    items.sort_by(|a, b| {
        kept.iter()
            .map(|k| compare(field(a, k), field(b, k)))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

fn regex_lite(pattern: &str) -> Result<regex::Regex, ApiError> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        // RabbitMQ reports a `name` that does not compile as it reports bad paging.
        .map_err(|_| ApiError::BadRequest("Pagination parameters are invalid".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Value> {
        (1..=5).map(|i| json!({"name": format!("q{i}"), "messages": 10 - i, "nested": {"x": i}})).collect()
    }

    #[test]
    fn a_trimmed_listing_is_ordered_by_the_default_keys_it_kept() {
        let binding =
            |vhost: &str, source: &str| json!({"vhost": vhost, "source": source, "destination": "q"});
        let listed = || vec![binding("/", "x"), binding("a", ""), binding("/", "")];
        let trimmed = ListQuery { columns: Some("source,destination".into()), ..Default::default() };
        let mut items = listed();
        order_as_projected(&mut items, &trimmed, &["vhost", "source", "destination"]);
        assert_eq!(
            items,
            [binding("a", ""), binding("/", ""), binding("/", "x")],
            "by source, stable within"
        );
        let whole = ListQuery { columns: Some("vhost,source".into()), ..Default::default() };
        order_as_projected(&mut items, &whole, &["vhost", "source", "destination"]);
        assert_eq!(items, [binding("/", ""), binding("/", "x"), binding("a", "")]);
        let mut untouched = listed();
        order_as_projected(&mut untouched, &ListQuery::default(), &["vhost", "source"]);
        assert_eq!(untouched, listed(), "without columns the endpoint's order stands");
    }

    #[test]
    fn listings_filter_sort_page_and_trim_as_rabbitmq() {
        let all = respond(items(), &ListQuery::default()).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 5);
        let q = ListQuery {
            sort: Some("messages".into()),
            columns: Some("name,nested.x".into()),
            ..Default::default()
        };
        let sorted = respond(items(), &q).unwrap();
        assert_eq!(sorted[0], json!({"name": "q5", "nested": {"x": 5}}));
        let q = ListQuery { page: Some(2), page_size: Some(2), ..Default::default() };
        let page = respond(items(), &q).unwrap();
        assert_eq!((page["page_count"].clone(), page["item_count"].clone()), (json!(3), json!(2)));
        assert_eq!(page["items"][0]["name"], "q3");
        let q = ListQuery {
            name: Some("^q[12]$".into()),
            use_regex: Some("true".into()),
            page: Some(1),
            ..Default::default()
        };
        let filtered = respond(items(), &q).unwrap();
        assert_eq!(
            (filtered["filtered_count"].clone(), filtered["total_count"].clone()),
            (json!(2), json!(5))
        );
        let q = ListQuery { page: Some(9), ..Default::default() };
        assert!(respond(items(), &q).is_err());
        let q =
            ListQuery { sort: Some("name".into()), sort_reverse: Some("true".into()), ..Default::default() };
        assert_eq!(respond(items(), &q).unwrap()[0]["name"], "q5");
    }

    #[test]
    fn a_page_in_name_order_builds_only_its_own_items() {
        let entries = || (1..=250).map(|i| (Some(format!("q{i:03}")), i)).collect::<Vec<_>>();
        let mut built = 0;
        let q = ListQuery { page: Some(2), page_size: Some(100), ..Default::default() };
        let page = respond_built(entries(), &q, |i| {
            built += 1;
            json!({"name": format!("q{i:03}"), "n": i})
        })
        .unwrap();
        assert_eq!(
            (built, page["items"][0]["n"].clone(), page["total_count"].clone()),
            (100, json!(101), json!(250))
        );
        let mut built = 0;
        let q = ListQuery {
            sort: Some("n".into()),
            sort_reverse: Some("true".into()),
            page: Some(1),
            page_size: Some(10),
            ..Default::default()
        };
        let page = respond_built(entries(), &q, |i| {
            built += 1;
            json!({"name": format!("q{i:03}"), "n": i})
        })
        .unwrap();
        assert_eq!(
            (built, page["items"][0]["n"].clone()),
            (250, json!(250)),
            "any other order builds them all"
        );
    }
}
