"""The object-storage layer on SeaweedFS, a real store in its own process: a run while the
layer is down fails cleanly (nothing merged: the rows wait for a layer that holds their file)
and the next run, once the layer is back, covers the window in full."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from harness.s3 import make_client
from tests.di.conftest import Hub, add_users
from tests.support.seaweedfs import SeaweedS3


@pytest.fixture
def seaweed(monkeypatch: pytest.MonkeyPatch) -> Iterator[SeaweedS3]:
    with SeaweedS3() as store:
        for name, value in store.env().items():
            monkeypatch.setenv(name, value)
        make_client(store.endpoint_url).create_bucket(Bucket="layer")
        yield store


def test_a_run_while_the_layer_is_down_merges_nothing_and_the_next_covers_it(
    hub: Hub, seaweed: SeaweedS3
) -> None:
    hub.layer = replace(hub.layer, client=make_client(seaweed.endpoint_url), bucket="layer")
    with hub.source() as source:
        add_users(source, 1, 300)
    hub.define("users", cdc_column="updated_at")

    seaweed.stop(graceful=False)
    down = hub.run("users")

    assert down.status == "failed"
    assert hub.stg_rows("users") == []
    seaweed.start()
    back = hub.run("users")
    assert (back.status, back.rows, back.merged.inserted) == ("succeeded", 300, 300)
    assert hub.stg_rows("users") == hub.source_rows()
    stored = hub.layer.client.head_object(Bucket="layer", Key=back.key)
    assert stored["Metadata"]["sha256"] == back.sha256
