"""Topic building and parsing."""

from __future__ import annotations

import pytest

import contract as c
from contract import topics


@pytest.mark.parametrize(
    ("topic", "text"),
    [
        (c.status_topic("s1", "d1"), "guanjia/v1/s1/d1/status"),
        (c.heartbeat_topic("s1", "d1"), "guanjia/v1/s1/d1/heartbeat"),
        (c.event_topic("s1", "d1"), "guanjia/v1/s1/d1/event"),
        (c.snapshot_topic("s1", "d1", "snap-9"), "guanjia/v1/s1/d1/snapshot/snap-9"),
        (c.telemetry_topic("s1", "d1"), "guanjia/v1/s1/d1/telemetry"),
        (c.command_topic("s1", "d1", "ping"), "guanjia/v1/s1/d1/cmd/ping"),
        (c.command_result_topic("s1", "d1"), "guanjia/v1/s1/d1/cmd_result"),
    ],
)
def test_topic_build_and_parse(topic: c.Topic, text: str) -> None:
    assert str(topic) == text
    assert c.parse_topic(text) == topic


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("guanjia/v1/s1/d1", "is not"),
        ("other/v1/s1/d1/event", "is not"),
        ("guanjia/v2/s1/d1/event", "version 'v2'"),
        ("guanjia/v1/s1/d1/weather", "unknown channel"),
        ("guanjia/v1/s1/d1/event/extra", "takes no name"),
        ("guanjia/v1/s1/d1/cmd", "needs a name"),
        ("guanjia/v1/s1/d1/cmd/ping/x", "too many"),
        ("guanjia/v1/s 1/d1/event", "site id"),
        ("guanjia/v1/s1/+/event", "device id"),
        ("guanjia/v1/s1//event", "device id"),
    ],
)
def test_parse_topic_rejects(text: str, why: str) -> None:
    with pytest.raises(c.TopicError, match=why):
        c.parse_topic(text)


def test_build_rejects_wildcard_segment() -> None:
    with pytest.raises(c.TopicError, match="device id"):
        c.event_topic("s1", "#")


def test_subscription_filters() -> None:
    assert c.subscription(c.Channel.EVENT) == "guanjia/v1/+/+/event"
    assert c.subscription(c.Channel.CMD, site_id="s1", device_id="d1") == "guanjia/v1/s1/d1/cmd/+"
    assert c.subscription(site_id="s1") == "guanjia/v1/s1/+/#"
    with pytest.raises(c.TopicError):
        c.subscription(device_id="a/b")


def test_channel_specs_follow_contract() -> None:
    assert c.CHANNEL_SPECS[c.Channel.STATUS].retain
    assert not any(
        spec.retain for ch, spec in c.CHANNEL_SPECS.items() if ch is not c.Channel.STATUS
    )
    assert c.CHANNEL_SPECS[c.Channel.HEARTBEAT].qos == 0
    assert c.CHANNEL_SPECS[c.Channel.SNAPSHOT].binary


def test_parsed_topics_are_remembered_within_a_bound() -> None:
    text = "guanjia/v1/site-1/cam-1/event"
    assert c.parse_topic(text) is c.parse_topic(text)  # the second parse is the first's value
    for i in range(topics.PARSED_CACHE_SIZE + 10):
        assert c.parse_topic(f"guanjia/v1/site-1/cam-{i}/event").device_id == f"cam-{i}"
    assert len(topics._parsed) <= topics.PARSED_CACHE_SIZE
    for _ in range(2):  # a refused topic is refused every time, never remembered
        with pytest.raises(c.TopicError, match="unknown channel"):
            c.parse_topic("guanjia/v1/site-1/cam-1/nope")
