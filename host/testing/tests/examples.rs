//! Each example of `examples/` in the harness, as its author would test it
//! (`examples/order-payment` has its own, in `harness.rs`).

mod common;

use std::time::Duration;

use common::component;
use serde_json::json;
use wasmflow_testing::{ErrorKind, Harness, HarnessError, HistoryEvent, RunStatus};

async fn harness(example: &str) -> Harness {
    Harness::new(component(example)).await.expect("a harness")
}

/// `examples/hello`: `Greeter` greets by name, in two activations.
mod hello {
    use super::*;

    #[tokio::test]
    async fn greets_by_name() {
        let mut h = harness("hello").await;
        h.start("Greeter", "greet-ada", json!({"name": "Ada"}))
            .await
            .unwrap();
        assert_eq!(h.result::<String>("greet-ada").await.unwrap(), "Hello, Ada");
        assert_eq!(
            h.store_value::<String>("greet-ada", "name").await.unwrap(),
            Some("Ada".to_owned())
        );
        let handlers: Vec<String> = h
            .history("greet-ada")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| match r.event {
                HistoryEvent::ActivationCompleted { handler, .. } => Some(handler),
                _ => None,
            })
            .collect();
        assert_eq!(handlers, ["start", "greet"]);
        h.shutdown().await;
    }

    #[tokio::test]
    async fn a_name_that_is_not_a_string_is_refused_before_the_run_starts() {
        let mut h = harness("hello").await;
        let refused = h
            .start("Greeter", "greet-42", json!({"name": 42}))
            .await
            .unwrap_err();
        let HarnessError::Host(e) = &refused else {
            panic!("the host refuses it: {refused}");
        };
        assert_eq!(e.kind(), Some(ErrorKind::InvalidPayload), "{refused}");
        assert!(refused.to_string().contains("`name`"), "{refused}");
        assert!(h.run("greet-42").await.is_err(), "no run was stored");
        h.shutdown().await;
    }
}

/// `examples/counter`: one durable step per count.
mod counter {
    use super::*;

    #[tokio::test]
    async fn counts_to_n_one_step_each_and_survives_a_crash() {
        let mut h = harness("counter").await;
        h.crash_after(3); // the start, two ticks, then a crash
        h.start("Counter", "count-5", json!({"n": 5}))
            .await
            .unwrap();
        assert_eq!(h.restarts(), 1);
        assert_eq!(h.result::<u64>("count-5").await.unwrap(), 5);
        let ticks = h
            .history("count-5")
            .await
            .unwrap()
            .into_iter()
            .filter(|r| matches!(&r.event, HistoryEvent::ActivationCompleted { handler, .. } if handler == "tick"))
            .count();
        assert_eq!(
            ticks, 6,
            "five increments and the completing tick, once each"
        );
        h.shutdown().await;
    }
}

/// `examples/failing`: `Checkout` fails on purpose, with details.
mod failing {
    use super::*;

    #[tokio::test]
    async fn a_cart_under_the_limit_completes_with_its_total() {
        let mut h = harness("failing").await;
        h.start("Checkout", "cart-1", json!({"items": [100, 250]}))
            .await
            .unwrap();
        assert_eq!(h.result::<u64>("cart-1").await.unwrap(), 350);
        h.shutdown().await;
    }

    #[tokio::test]
    async fn over_the_limit_and_empty_carts_fail_with_their_reasons() {
        let mut h = harness("failing").await;
        h.start("Checkout", "cart-2", json!({"items": [9_000, 2_000]}))
            .await
            .unwrap();
        assert_eq!(h.status("cart-2").await.unwrap(), RunStatus::Failed);
        let error = h.error("cart-2").await.unwrap().expect("an error");
        assert_eq!(error.kind, ErrorKind::Application);
        assert_eq!(error.message, "total 11000 is over the limit of 10000");
        assert_eq!(
            error.details,
            Some(json!({"total": 11_000, "limit": 10_000}))
        );

        h.start("Checkout", "cart-3", json!({"items": []}))
            .await
            .unwrap();
        let error = h.error("cart-3").await.unwrap().expect("an error");
        assert!(
            error.message.contains("cannot charge an empty cart"),
            "{error}"
        );
        let not_completed = h.result::<u64>("cart-3").await.unwrap_err();
        assert!(
            matches!(
                not_completed,
                HarnessError::NotCompleted {
                    status: RunStatus::Failed,
                    ..
                }
            ),
            "{not_completed}"
        );
        h.shutdown().await;
    }
}

/// `examples/fan-out`: `FanOut` starts `n` `Square` children and sums what
/// they report.
mod fan_out {
    use super::*;

    #[tokio::test]
    async fn sums_the_squares_its_children_report() {
        let mut h = harness("fan-out").await;
        h.start("FanOut", "fan", json!({"n": 10})).await.unwrap();
        assert_eq!(h.result::<u64>("fan").await.unwrap(), 285);
        let children = h.children("fan").await.unwrap();
        assert_eq!(children.len(), 10);
        assert!(
            children.iter().all(|c| c.status == RunStatus::Completed),
            "{children:?}"
        );
        assert_eq!(h.result::<u64>("fan-square-7").await.unwrap(), 49);
        assert_eq!(
            h.store_value::<u64>("fan", "reported").await.unwrap(),
            Some(10)
        );
        h.shutdown().await;
    }

    #[tokio::test]
    async fn a_crash_while_children_report_counts_each_once() {
        let mut h = harness("fan-out").await;
        h.crash_after(6);
        h.start("FanOut", "fan", json!({"n": 5})).await.unwrap();
        assert_eq!(h.restarts(), 1);
        assert_eq!(h.result::<u64>("fan").await.unwrap(), 30);
        assert_eq!(
            h.store_value::<u64>("fan", "reported").await.unwrap(),
            Some(5)
        );
        h.advance(Duration::from_secs(1)).await.unwrap();
        assert_eq!(h.children("fan").await.unwrap().len(), 5);
        h.shutdown().await;
    }
}
