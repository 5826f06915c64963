//! Listings as RabbitMQ's management API pages, filters, sorts and trims them: `name` with
//! `use_regex`, `sort` and `sort_reverse`, `page` and `page_size` (then the answer is a page
//! object rather than an array), and `columns`. As in RabbitMQ 3.10, `name` filters only a page
//! (without `page` it is ignored), ignoring case, and only the listings RabbitMQ pages (queues,
//! exchanges, vhosts, connections, channels) take `page`: the others ([`respond_unpaged`]) sort
//! and trim only.

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
    shape(items, query, true)
}

/// Keeps only the `columns` of one object, as RabbitMQ trims single objects too.
pub(crate) fn trim(item: Value, query: &ListQuery) -> Value {
    match query.columns.as_deref() {
        Some(columns) => project(&item, &columns.split(',').filter(|c| !c.is_empty()).collect::<Vec<_>>()),
        None => item,
    }
}

/// Applies `sort`, `sort_reverse` and `columns` to `items`, for a listing RabbitMQ does not page
/// (`page` and `name` are ignored there).
pub(crate) fn respond_unpaged(items: Vec<Value>, query: &ListQuery) -> Result<Value, ApiError> {
    shape(items, query, false)
}

fn shape(mut items: Vec<Value>, query: &ListQuery, paged: bool) -> Result<Value, ApiError> {
    let total = items.len();
    let page = if paged { query.page } else { None };
    if let Some(name) = query.name.as_deref().filter(|n| !n.is_empty() && page.is_some()) {
        let re = if truthy(&query.use_regex) { regex_lite(name)? } else { regex_lite(&regex::escape(name))? };
        items.retain(|i| i.get("name").and_then(Value::as_str).is_some_and(|n| re.is_match(n)));
    }
    if let Some(sort) = query.sort.as_deref().filter(|s| !s.is_empty()) {
        items.sort_by(|a, b| compare(field(a, sort), field(b, sort)));
    }
    if truthy(&query.sort_reverse) {
        items.reverse();
    }
    let columns: Option<Vec<&str>> =
        query.columns.as_deref().map(|c| c.split(',').filter(|c| !c.is_empty()).collect());
    let shape = |items: Vec<Value>| -> Vec<Value> {
        match &columns {
            Some(columns) => items.iter().map(|i| project(i, columns)).collect(),
            None => items,
        }
    };
    let Some(page) = page else {
        return Ok(Value::Array(shape(items)));
    };
    let page_size = query.page_size.unwrap_or(100);
    if page == 0 || page_size == 0 || page_size > MAX_PAGE_SIZE {
        let reason = format!("Invalid pagination parameters: page number {page}, page size {page_size}");
        return Err(ApiError::bad_request_as("invalid_pagination_parameters", reason));
    }
    let filtered = items.len();
    let page_count = filtered.div_ceil(page_size);
    // As RabbitMQ: a page may start right after the last item (and be empty), not further.
    if (page - 1) * page_size > filtered {
        let reason = format!("Page out of range, page: {page} page size: {page_size}, len: {filtered}");
        return Err(ApiError::bad_request_as("page_out_of_range", reason));
    }
    let page_items: Vec<Value> = items.into_iter().skip((page - 1) * page_size).take(page_size).collect();
    Ok(json!({
        "filtered_count": filtered,
        "item_count": page_items.len(),
        "items": shape(page_items),
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    }))
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
}
