//! The Redis tier alone: TTL, tags (standalone and Cluster), namespaced invalidate_all.

use std::time::Duration;

use redis::AsyncCommands;
use strata::Tag;
use strata_redis::{RedisConfig, RedisTier};

use crate::{cluster, cluster_config, raw, standalone, standalone_config};

#[tokio::test]
async fn ttl_is_set_with_px_and_reported_back() {
    let Some(config) = standalone_config("ttl") else {
        return;
    };
    let tier = RedisTier::connect(config).await.unwrap();
    tier.insert(b"k", b"v", Some(Duration::from_millis(400)), &[])
        .await
        .unwrap();
    let (value, ttl) = tier.get(b"k").await.unwrap().unwrap();
    assert_eq!(value, b"v");
    let ttl = ttl.expect("a TTL");
    assert!(
        ttl <= Duration::from_millis(400) && ttl > Duration::from_millis(200),
        "{ttl:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tier.get(b"k").await.unwrap(), None);
    tier.insert(b"forever", b"f", None, &[]).await.unwrap();
    assert_eq!(
        tier.get(b"forever").await.unwrap(),
        Some((b"f".to_vec(), None))
    );
    assert!(tier.remove(b"forever").await.unwrap());
    assert!(!tier.remove(b"forever").await.unwrap());
    let stats = tier.stats();
    assert_eq!((stats.hits, stats.misses, stats.errors), (2, 1, 0));
}

async fn tags_work(config: RedisConfig) {
    let tier = RedisTier::connect(config).await.unwrap();
    let user = [Tag::from("user:7")];
    // Keys spread over many hash slots: each command touches one key, so this works in a
    // Cluster.
    for i in 0..50 {
        tier.insert(format!("page:{i}").as_bytes(), b"<html>", None, &user)
            .await
            .unwrap();
    }
    tier.insert(b"other", b"x", None, &[Tag::from("user:8")])
        .await
        .unwrap();
    assert_eq!(tier.invalidate_tag("user:7").await.unwrap(), 50);
    for i in 0..50 {
        assert_eq!(
            tier.get(format!("page:{i}").as_bytes()).await.unwrap(),
            None
        );
    }
    assert!(tier.get(b"other").await.unwrap().is_some());
    assert_eq!(tier.invalidate_tag("user:7").await.unwrap(), 0);
}

#[tokio::test]
async fn tags_standalone() {
    let Some(config) = standalone_config("tags") else {
        return;
    };
    tags_work(config).await;
}

#[tokio::test]
async fn tags_in_a_cluster() {
    let Some(config) = cluster_config("tags") else {
        return;
    };
    tags_work(config).await;
}

/// `EVALSHA` calls the nodes have served so far (from `INFO commandstats`).
async fn evalsha_calls(nodes: &[String]) -> u64 {
    let mut calls = 0;
    for url in nodes {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut raw(url).await)
            .await
            .unwrap();
        calls += info
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    calls
}

/// The tag script goes by its SHA1, and whole only to a node that lacks it: after a
/// `SCRIPT FLUSH` (or a restart) every key is still tagged, and the writes after the first
/// to each node go by `EVALSHA` again.
async fn tags_outlive_a_script_flush(config: RedisConfig, nodes: &[String]) {
    let tier = RedisTier::connect(config).await.unwrap();
    let tag = [Tag::from("flushed")];
    for url in nodes {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut raw(url).await)
            .await
            .unwrap();
    }
    for i in 0..20 {
        let key = format!("k{i}");
        tier.insert(key.as_bytes(), b"v", None, &tag).await.unwrap();
    }
    let before = evalsha_calls(nodes).await;
    for i in 20..40 {
        let key = format!("k{i}");
        tier.insert(key.as_bytes(), b"v", None, &tag).await.unwrap();
    }
    // A lower bound: other tests' writes may add to it, never take from it.
    assert!(evalsha_calls(nodes).await >= before + 20);
    assert_eq!(tier.invalidate_tag("flushed").await.unwrap(), 40);
}

#[tokio::test]
async fn tags_outlive_a_script_flush_standalone() {
    let (Some(config), Some(url)) = (standalone_config("flush"), standalone()) else {
        return;
    };
    tags_outlive_a_script_flush(config, &[url]).await;
}

#[tokio::test]
async fn tags_outlive_a_script_flush_in_a_cluster() {
    let (Some(config), Some(nodes)) = (cluster_config("flush"), cluster()) else {
        return;
    };
    tags_outlive_a_script_flush(config, &nodes).await;
}

async fn invalidate_all_is_namespaced(config: RedisConfig, foreign_url: &str) {
    let tier = RedisTier::connect(config).await.unwrap();
    for i in 0..30 {
        tier.insert(format!("k{i}").as_bytes(), b"v", None, &[Tag::from("t")])
            .await
            .unwrap();
    }
    let mut other = raw(foreign_url).await;
    let foreign = format!("foreign-{}", crate::prefix("x"));
    let _: () = other.set(&foreign, "keep me").await.unwrap();
    tier.invalidate_all().await.unwrap();
    for i in 0..30 {
        assert_eq!(tier.get(format!("k{i}").as_bytes()).await.unwrap(), None);
    }
    let kept: Option<String> = other.get(&foreign).await.unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("keep me"),
        "another application's key survives"
    );
    let _: () = other.del(&foreign).await.unwrap();
}

#[tokio::test]
async fn invalidate_all_removes_only_its_prefix() {
    let Some(config) = standalone_config("all") else {
        return;
    };
    let url = standalone().unwrap();
    invalidate_all_is_namespaced(config, &url).await;
}

#[tokio::test]
async fn invalidate_all_in_a_cluster_removes_only_its_prefix() {
    let Some(config) = cluster_config("all") else {
        return;
    };
    // The foreign key must live on a node the plain connection reaches: use a hash tag that
    // maps to the first node's slots… simpler: check through the tier of another prefix.
    let other_config = config.clone().prefix(crate::prefix("other"));
    let other = RedisTier::connect(other_config).await.unwrap();
    other.insert(b"mine", b"keep", None, &[]).await.unwrap();
    let tier = RedisTier::connect(config).await.unwrap();
    for i in 0..60 {
        tier.insert(format!("k{i}").as_bytes(), b"v", None, &[])
            .await
            .unwrap();
    }
    tier.invalidate_all().await.unwrap();
    for i in 0..60 {
        assert_eq!(tier.get(format!("k{i}").as_bytes()).await.unwrap(), None);
    }
    assert!(
        other.get(b"mine").await.unwrap().is_some(),
        "another prefix survives"
    );
}

#[tokio::test]
async fn a_malformed_url_is_an_error() {
    let err = RedisTier::connect(RedisConfig::standalone("not a url"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("redis"), "{err}");
}

/// A tag set lives as long as its longest-lived key: a tag whose keys all expire, and that
/// nobody invalidates, leaves nothing behind in Redis. A key without a TTL keeps its tag's
/// set for good.
#[tokio::test]
async fn a_tag_set_lives_as_long_as_its_longest_lived_key() {
    let Some(config) = standalone_config("tagttl") else {
        return;
    };
    let tier = RedisTier::connect(config).await.unwrap();
    let data_prefix = String::from_utf8(tier.data_prefix_for_tests()).unwrap();
    let set = |tag: &str| format!("{}:t:{tag}", data_prefix.trim_end_matches(":k:"));
    let mut raw = raw(&standalone().unwrap()).await;
    let pttl = async |raw: &mut redis::aio::MultiplexedConnection, key: String| -> i64 {
        raw.pttl(key).await.unwrap()
    };

    let expiring = [Tag::from("expiring")];
    let ms = Duration::from_millis;
    tier.insert(b"a", b"1", Some(ms(2_000)), &expiring)
        .await
        .unwrap();
    let first = pttl(&mut raw, set("expiring")).await;
    assert!((1..=2_000).contains(&first), "{first}");
    tier.insert(b"b", b"2", Some(ms(300)), &expiring)
        .await
        .unwrap();
    let shorter = pttl(&mut raw, set("expiring")).await;
    assert!(
        shorter > 1_000,
        "a shorter-lived key does not shorten it: {shorter}"
    );
    tier.insert(b"c", b"3", Some(ms(9_000)), &expiring)
        .await
        .unwrap();
    let longer = pttl(&mut raw, set("expiring")).await;
    assert!(longer > 8_000, "a longer-lived key extends it: {longer}");

    let brief = [Tag::from("brief")];
    tier.insert(b"d", b"4", Some(ms(100)), &brief)
        .await
        .unwrap();
    tokio::time::sleep(ms(300)).await;
    assert_eq!(pttl(&mut raw, set("brief")).await, -2, "gone with its key");

    let kept = [Tag::from("kept")];
    tier.insert(b"e", b"5", Some(ms(100)), &kept).await.unwrap();
    tier.insert(b"f", b"6", None, &kept).await.unwrap();
    tier.insert(b"g", b"7", Some(ms(100)), &kept).await.unwrap();
    assert_eq!(pttl(&mut raw, set("kept")).await, -1, "kept for good");
    tokio::time::sleep(ms(300)).await;
    assert_eq!(
        tier.invalidate_tag("kept").await.unwrap(),
        1,
        "f alone is left"
    );
}
