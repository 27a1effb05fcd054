"""Submitting, following, listing, cancelling, retrying and deleting batches
on the real stack."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import httpx
import pytest
from conftest import Stack, User, held, memories

from memory_batch import BatchMemoryClient, BatchMemoryError, BatchWaitTimeoutError


def test_add_waits_for_the_batch_and_answers_every_result(client: BatchMemoryClient) -> None:
    answer = client.add(memories(40), namespace="py-json")
    assert answer.http_status == 200
    assert answer.replayed is False
    assert isinstance(answer, dict)
    assert answer["status"] == "completed"
    assert (answer["success"], answer["total"], answer["processed"], answer["failed"]) == (
        True,
        40,
        40,
        0,
    )
    assert [r["index"] for r in answer["results"]] == list(range(40))


def test_add_with_the_same_idempotency_key_replays_the_batch(
    client: BatchMemoryClient,
) -> None:
    key = f"py-{uuid.uuid4()}"
    first = client.add(memories(5), idempotency_key=key)
    again = client.add(memories(5), idempotency_key=key)
    assert again.replayed is True
    assert again["batch_id"] == first["batch_id"]


def test_add_ndjson_streams_a_generator_of_thousands_of_memories(
    client: BatchMemoryClient,
) -> None:
    def lines() -> Iterator[Dict[str, Any]]:
        yield from memories(3000)

    accepted = client.add_ndjson(lines(), namespace="py-ndjson", wait=False)
    assert accepted.http_status == 202
    assert accepted["total"] == 3000
    final = client.wait(accepted["batch_id"])
    assert (final["status"], final["processed"], final["failed"]) == ("completed", 3000, 0)


def test_add_ndjson_streams_a_file(client: BatchMemoryClient, tmp_path: Path) -> None:
    path = tmp_path / "memories.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in memories(2500)), encoding="utf-8")
    with path.open("rb") as file:
        answer = client.add_ndjson(file)
    assert answer.http_status in (200, 202)
    final = client.wait(answer["batch_id"])
    assert (final["status"], final["total"], final["processed"]) == ("completed", 2500, 2500)


def test_add_ndjson_sends_gzip_in_chunks_as_it_reads(local_server: Any) -> None:
    answer = {
        "success": True,
        "batch_id": "b1",
        "status": "pending",
        "total": 3,
        "processed": 0,
        "failed": 0,
        "results": [],
    }
    server = local_server(status=202, body=json.dumps(answer).encode())
    client = BatchMemoryClient(server.url, master_key="mk", user_id="u1")
    accepted = client.add_ndjson(
        iter(["a", '{"content": "b"}\n', b'{"content": "c"}']), namespace="n"
    )
    assert accepted.http_status == 202 and accepted["batch_id"] == "b1"
    target, headers, body = server.requests[0]
    assert target.startswith("POST /api/v1/memory/batch?")
    assert "namespace=n" in target and "user_id=u1" in target
    assert headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in headers
    assert (headers["Content-Encoding"], headers["Content-Type"]) == (
        "gzip",
        "application/x-ndjson",
    )
    assert gzip.decompress(body) == b'a\n{"content": "b"}\n{"content": "c"}\n'


def test_metadata_and_custom_ids_round_trip_through_add_and_add_ndjson(
    client: BatchMemoryClient,
) -> None:
    metadata = {"project": "py", "source": {"export": 3}}
    items = [{"content": f"memory {i}", "custom_id": f"py-{i}"} for i in range(3)]
    by_json = client.add(items, metadata=metadata)
    by_ndjson = client.add_ndjson(iter(items), metadata=metadata, wait=True)
    for answer in (by_json, by_ndjson):
        assert client.get(answer["batch_id"])["metadata"] == metadata
        assert [r["custom_id"] for r in client.results(answer["batch_id"])] == ["py-0", "py-1", "py-2"]


def test_get_answers_the_batch_status(client: BatchMemoryClient) -> None:
    batch_id = client.add(memories(3))["batch_id"]
    status = client.get(batch_id)
    assert status["batch_id"] == batch_id
    assert status["status"] == "completed"
    assert status["results_url"] == f"/api/v1/memory/batch/{batch_id}/results"
    assert {"created_at", "updated_at", "total", "processed", "failed"} <= status.keys()


def test_wait_calls_on_progress_with_every_status_until_the_end(
    client: BatchMemoryClient,
) -> None:
    accepted = client.add(memories(600), wait=False)
    seen: List[Dict[str, Any]] = []
    final = client.wait(accepted["batch_id"], on_progress=seen.append)
    assert final["status"] == "completed"
    assert seen and seen[-1] == final
    processed = [status["processed"] for status in seen]
    assert processed == sorted(processed)


def test_wait_by_polling(client: BatchMemoryClient) -> None:
    accepted = client.add(memories(200), wait=False)
    seen: List[Dict[str, Any]] = []
    final = client.wait(
        accepted["batch_id"], via="poll", poll_interval=0.2, on_progress=seen.append
    )
    assert final["status"] == "completed" and final["processed"] == 200
    assert seen[-1] == final


def test_wait_that_runs_out_raises_while_the_batch_keeps_running(
    client: BatchMemoryClient,
) -> None:
    batch_id = client.add(held(200), wait=False)["batch_id"]
    try:
        with pytest.raises(BatchWaitTimeoutError) as raised:
            client.wait(batch_id, timeout=1.5)
        assert raised.value.batch_id == batch_id
        assert raised.value.timeout == 1.5
        assert client.get(batch_id)["status"] in ("pending", "processing")
    finally:
        client.cancel(batch_id)


def test_results_iterate_every_item_in_order(client: BatchMemoryClient) -> None:
    batch_id = client.add(memories(250))["batch_id"]
    results = list(client.results(batch_id))
    assert [r["index"] for r in results] == list(range(250))
    assert all(r["success"] and isinstance(r["memory_id"], str) for r in results)


def test_results_keep_failed_or_succeeded_items_only(client: BatchMemoryClient) -> None:
    rejected = {3, 17, 42}
    batch = client.add(
        memories(60, lambda i: {"test_reject": "no thanks"} if i in rejected else {})
    )
    assert batch.http_status == 207 and batch["failed"] == 3
    failed = list(client.results(batch["batch_id"], status="failed"))
    assert [r["index"] for r in failed] == sorted(rejected)
    assert all(not r["success"] and r["code"] == "rejected" for r in failed)
    succeeded = list(client.results(batch["batch_id"], status="succeeded"))
    assert len(succeeded) == 57 and all(r["success"] for r in succeeded)


def test_results_are_ranged_by_the_server(client: BatchMemoryClient) -> None:
    batch = client.add(memories(30))
    ranged = list(client.results(batch["batch_id"], "succeeded", after=9, limit=5))
    assert [r["index"] for r in ranged] == [10, 11, 12, 13, 14]


def test_results_refuse_an_unknown_status_filter(client: BatchMemoryClient) -> None:
    with pytest.raises(ValueError):
        client.results("abc", status="pending")


def test_list_pages_through_the_users_batches_newest_first(client: BatchMemoryClient) -> None:
    ids = [client.add(memories(1))["batch_id"] for _ in range(3)]
    first = client.list(limit=2)
    assert [b["batch_id"] for b in first["batches"]] == ids[::-1][:2]
    assert first["next_offset"] == 2
    rest = client.list(offset=first["next_offset"])
    assert [b["batch_id"] for b in rest["batches"]] == ids[:1]
    assert "next_offset" not in rest


def test_list_follows_the_cursor_and_filters(client: BatchMemoryClient) -> None:
    ids = [client.add(memories(1), namespace="py-list")["batch_id"] for _ in range(3)]
    client.add(memories(1), namespace="py-other")
    first = client.list(namespace="py-list", limit=2)
    assert [b["batch_id"] for b in first["batches"]] == ids[::-1][:2]
    rest = client.list(namespace="py-list", limit=2, after=first["next_cursor"])
    assert [b["batch_id"] for b in rest["batches"]] == ids[:1]
    assert "next_cursor" not in rest
    assert client.list(status="failed", namespace="py-list")["batches"] == []


def test_master_key_acts_for_the_user_id(
    stack: Stack, user: User, client: BatchMemoryClient
) -> None:
    with BatchMemoryClient(
        stack.server, master_key=stack.master_key, user_id=user.id, app_id=stack.app_id
    ) as admin:
        batch_id = admin.add(memories(2))["batch_id"]
        assert [b["batch_id"] for b in admin.list()["batches"]] == [batch_id]
    # The batch is the user's own.
    assert client.get(batch_id)["status"] == "completed"
    assert [b["batch_id"] for b in client.list()["batches"]] == [batch_id]


def test_cancel_stops_a_running_batch(client: BatchMemoryClient) -> None:
    batch_id = client.add(held(300), wait=False)["batch_id"]
    cancelled = client.cancel(batch_id)
    assert cancelled["batch_id"] == batch_id
    assert cancelled["status"] == "cancelled" and cancelled["success"] is False
    assert client.get(batch_id)["status"] == "cancelled"


def test_retry_starts_a_new_batch_of_the_items_not_stored(client: BatchMemoryClient) -> None:
    batch = client.add(memories(20, lambda i: {"test_reject": "later"} if i < 2 else {}))
    assert batch["failed"] == 2
    retried = client.retry(batch["batch_id"])
    assert retried["batch_id"] != batch["batch_id"] and retried["total"] == 2
    assert client.get(retried["batch_id"])["retry_of"] == batch["batch_id"]
    # A batch has one retry: asking again answers the same one.
    assert client.retry(batch["batch_id"])["batch_id"] == retried["batch_id"]


def _memory_rows(stack: Stack, batch_id: str) -> int:
    """Memory rows of a batch, counted through Parse Server's REST API with the master key."""
    batch = {"__type": "Pointer", "className": "BatchMemoryRequest", "objectId": batch_id}
    where = {"batch": batch}
    response = httpx.get(
        f"{stack.server}/parse/classes/Memory",
        params={"where": json.dumps(where), "count": "1", "limit": "0"},
        headers={"X-Parse-Application-Id": stack.app_id, "X-Parse-Master-Key": stack.master_key},
    )
    response.raise_for_status()
    return int(response.json()["count"])


def test_delete_removes_the_memories_of_the_batch_only(
    client: BatchMemoryClient, stack: Stack
) -> None:
    kept = client.add(memories(10))["batch_id"]
    batch_id = client.add(memories(25))["batch_id"]
    assert _memory_rows(stack, batch_id) == 25
    started = client.delete(batch_id)
    assert started["batch_id"] == batch_id and started["status"] in ("deleting", "deleted")
    assert started["deleted_memories"] == 25
    final = client.wait(batch_id)
    assert final["status"] == "deleted" and final["deleted_memories"] == 25
    assert (_memory_rows(stack, batch_id), _memory_rows(stack, kept)) == (0, 10)
    # Asked again: the same answer, nothing more removed.
    again = client.delete(batch_id)
    assert (again["status"], again["deleted_memories"]) == ("deleted", 25)
    with pytest.raises(BatchMemoryError) as refused:
        list(client.results(batch_id))
    assert (refused.value.status, refused.value.code) == (410, "deleted")
