//! Lambda's pagination of ListLayers and ListLayerVersions: `MaxItems` (1 to 50, 50
//! when absent, Lambda's range) and `Marker`, the key of the last item of the page
//! before (a layer name; a version number); the answer has `NextMarker` when more
//! follow. A marker is a place in the list's order (names ascending, versions newest
//! first), not an index, so a layer or version deleted between two pages does not
//! break the walk.

use super::errors::ApiError;
use super::request::ApiRequest;

/// Largest `MaxItems` of the layer lists, and the page size when it is absent.
pub const MAX_ITEMS: usize = 50;

/// The `MaxItems` parameter.
fn max_items(req: &ApiRequest) -> Result<usize, ApiError> {
    match req.param("MaxItems") {
        None => Ok(MAX_ITEMS),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_ITEMS).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(format!(
                "1 validation error detected: Value '{s}' at 'maxItems' failed to satisfy \
                 constraint: Member must be a whole number from 1 to {MAX_ITEMS}"
            ))),
        },
    }
}

/// How a list is ordered, and so what comes after a marker.
pub(super) enum Order {
    /// Layer names, ascending; the marker is a name.
    NamesAscending,
    /// Version numbers, newest first; the marker is a number.
    VersionsDescending,
}

/// One page of `items` (already in `order`, with `key` giving each one's marker)
/// after the request's `Marker`: (page, NextMarker).
pub(super) fn page<T>(
    req: &ApiRequest,
    items: Vec<T>,
    order: Order,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = max_items(req)?;
    let mut rest: Vec<T> = match req.param("Marker").filter(|m| !m.is_empty()) {
        None => items,
        Some(m) => match order {
            Order::NamesAscending => items.into_iter().filter(|i| key(i) > m).collect(),
            Order::VersionsDescending => {
                let at: u64 = m.parse().map_err(|_| {
                    ApiError::invalid(format!(
                        "Marker {m:?} is not from this list (a NextMarker of ListLayerVersions): start over without Marker"
                    ))
                })?;
                items
                    .into_iter()
                    .filter(|i| key(i).parse::<u64>().is_ok_and(|v| v < at))
                    .collect()
            }
        },
    };
    let next = (rest.len() > max).then(|| key(&rest[max - 1]));
    rest.truncate(max);
    Ok((rest, next))
}
