//! The SSE endpoint's query parsing: any query string is answered with a stream query or a
//! message (never a panic), and every valid query round-trips.

use axum::http::Uri;
use heterogen::net::sse::StreamQuery;
use proptest::prelude::*;

fn uri_of(query: &str) -> Option<Uri> {
    format!("/api/worker/logs/stream?{query}").parse().ok()
}

fn sid() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string())
}

proptest! {
    #[test]
    fn any_query_string_parses_or_is_refused(query in ".{0,200}") {
        if let Some(uri) = uri_of(&query) {
            let _ = StreamQuery::parse(&uri);
        }
    }

    #[test]
    fn near_valid_queries_parse_or_are_refused(
        sid in sid(),
        follow in prop::sample::select(vec!["true", "false", "1", "0", "", "TRUE", "%74rue", "maybe"]),
        since in prop::option::of(prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            Just("18446744073709551616".to_string()),
            Just("-1".to_string()),
            "[0-9a-z]{0,25}",
        ]),
        extra in "[a-z=&%0-9]{0,30}",
    ) {
        let mut query = format!("sid={sid}&follow={follow}&{extra}");
        if let Some(since) = &since {
            query.push_str(&format!("&since={since}"));
        }
        let uri = uri_of(&query).unwrap();
        if let Ok(parsed) = StreamQuery::parse(&uri) {
            prop_assert!(uuid::Uuid::try_parse(&parsed.sid).is_ok());
            if let Some(since) = since.as_deref().filter(|_| !extra.contains("since")) {
                prop_assert_eq!(Some(parsed.since), since.parse::<u64>().ok());
            }
        }
    }

    #[test]
    fn valid_queries_round_trip(sid in sid(), follow in any::<bool>(), since in any::<u64>()) {
        let query = StreamQuery { sid, follow, since };
        let uri = uri_of(&query.to_query()).unwrap();
        prop_assert_eq!(StreamQuery::parse(&uri), Ok(query.clone()));
        // The session parameter and others ride along without changing it.
        let uri = uri_of(&format!("session=abc&{}&x=1", query.to_query())).unwrap();
        prop_assert_eq!(StreamQuery::parse(&uri), Ok(query));
    }

    #[test]
    fn defaults_follow_and_read_everything(sid in sid()) {
        let uri = uri_of(&format!("sid={sid}")).unwrap();
        prop_assert_eq!(StreamQuery::parse(&uri), Ok(StreamQuery { sid, follow: true, since: 0 }));
    }
}
