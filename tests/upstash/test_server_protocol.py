"""The local server speaks the Upstash REST protocol as Upstash documents it.

Raw HTTP here (httpx, synchronous: the server runs on its own thread), so that the wire
format itself is what is tested. The expected bodies follow the examples of Upstash's REST
API documentation (https://upstash.com/docs/redis/features/restapi).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

from kvstore.upstash_server import STATS_PATH, UpstashServer

if TYPE_CHECKING:
    from collections.abc import Iterator


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Client:
    """Posts to a server with its token, base64 replies by default (as the SDKs ask)."""

    def __init__(self, server: UpstashServer, *, encoding: str | None = "base64") -> None:
        self.server = server
        self.headers = {"Authorization": f"Bearer {server.token}"}
        if encoding:
            self.headers["Upstash-Encoding"] = encoding

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if body is not None:
            kwargs["json"] = body
        return httpx.post(self.server.url + path, headers=headers, **kwargs)

    def ok(self, path: str, body: Any) -> Any:
        response = self.post(path, body)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def client(server: UpstashServer) -> Client:
    return Client(server)


# -- commands ----------------------------------------------------------------------------


def test_single_command_replies_as_documented(server: UpstashServer) -> None:
    plain, encoded = Client(server, encoding=None), Client(server)
    assert plain.ok("/", ["SET", "foo", "bar"]) == {"result": "OK"}
    assert plain.ok("/", ["GET", "foo"]) == {"result": "bar"}
    # "all strings in the response will be base64 encoded, except for the OK response"
    assert encoded.ok("/", ["SET", "foo", "bar"]) == {"result": "OK"}
    assert encoded.ok("/", ["GET", "foo"]) == {"result": "YmFy"}
    assert encoded.ok("/", ["GET", "missing"]) == {"result": None}
    assert encoded.ok("/", ["INCR", "n"]) == {"result": 1}


def test_every_string_but_ok_is_base64_at_any_depth(client: Client) -> None:
    client.ok("/", ["HSET", "h", "f", "v"])
    client.ok("/", ["ZADD", "z", "1.5", "m"])
    client.ok("/", ["XADD", "s", "1-1", "field", "value"])
    assert client.ok("/", ["PING"]) == {"result": b64("PONG")}
    assert client.ok("/", ["TYPE", "h"]) == {"result": b64("hash")}
    assert client.ok("/", ["HGETALL", "h"]) == {"result": [b64("f"), b64("v")]}
    assert client.ok("/", ["ZRANGE", "z", "0", "-1", "WITHSCORES"]) == {
        "result": [b64("m"), b64("1.5")]
    }
    assert client.ok("/", ["XRANGE", "s", "-", "+"]) == {
        "result": [[b64("1-1"), [b64("field"), b64("value")]]]
    }
    client.ok("/", ["SET", "s", "t"])
    assert client.ok("/", ["MGET", "s", "missing"]) == {"result": [b64("t"), None]}


def test_a_failed_single_command_is_a_400_with_redis_error(client: Client) -> None:
    client.ok("/", ["SET", "s", "text"])
    response = client.post("/", ["HGET", "s", "f"])
    assert response.status_code == 400
    assert response.json() == {
        "error": "WRONGTYPE Operation against a key holding the wrong kind of value"
    }


DOC_BATCH = [
    ["SET", "key1", "valuex"],
    ["SET", "key2", "valuez", "EX", 13],  # the documentation's SETEX, in kvstore's commands
    ["INCR", "key1"],
    ["ZADD", "myset", 11, "item1", 22, "item2"],
]
DOC_REPLY = [
    {"result": "OK"},
    {"result": "OK"},
    {"error": "ERR value is not an integer or out of range"},
    {"result": 2},
]


@pytest.mark.parametrize("path", ["/pipeline", "/multi-exec"])
def test_batches_reply_one_entry_per_command(client: Client, path: str) -> None:
    assert client.ok(path, DOC_BATCH) == DOC_REPLY
    # A command failing while the batch runs does not stop the others (as on Redis).
    assert client.ok("/", ["GET", "key2"]) == {"result": b64("valuez")}


def test_a_transaction_refused_as_a_whole_is_one_error_and_runs_nothing(client: Client) -> None:
    response = client.post("/multi-exec", [["SET", "a", "1"], ["GET"], ["SET", "b", "2"]])
    assert response.status_code == 400
    assert response.json() == {"error": "ERR wrong number of arguments for 'get' command"}
    assert client.ok("/", ["EXISTS", "a", "b"]) == {"result": 0}


def test_a_pipeline_runs_around_a_wrong_arity_command(client: Client) -> None:
    reply = client.ok("/pipeline", [["SET", "a", "1"], ["GET"], ["GET", "a"]])
    assert reply == [
        {"result": "OK"},
        {"error": "ERR wrong number of arguments for 'get' command"},
        {"result": b64("1")},
    ]


def test_arguments_keep_their_json_spelling(client: Client) -> None:
    # JSON numbers keep the text they were sent as; booleans become "true"/"false".
    response = client.post(
        "/pipeline",
        content=b'[["SET","f","1.50"],["SET","g",1.50],["SET","h",1e3],["SET","b",true]]',
    )
    assert response.status_code == 200
    replies = client.ok("/pipeline", [["GET", "f"], ["GET", "g"], ["GET", "h"], ["GET", "b"]])
    assert replies == [
        {"result": b64("1.50")},
        {"result": b64("1.50")},
        {"result": b64("1e3")},
        {"result": b64("true")},
    ]


def test_every_reply_carries_a_sync_token(client: Client) -> None:
    tokens = [
        client.post("/", ["SET", "k", str(i)]).headers["Upstash-Sync-Token"] for i in range(3)
    ]
    assert [int(t) for t in tokens] == sorted(int(t) for t in tokens)
    assert len(set(tokens)) == 3


def test_flushall_empties_the_backing_store_only(client: Client) -> None:
    client.ok("/", ["SET", "k", "v"])
    assert client.ok("/", ["FLUSHALL"]) == {"result": "OK"}
    assert client.ok("/", ["DBSIZE"]) == {"result": 0}


@pytest.mark.redis
def test_without_base64_invalid_utf8_becomes_the_replacement_character(
    redis_backed_server: UpstashServer, upstash_redis_url: str
) -> None:
    writer = redis.Redis.from_url(upstash_redis_url)
    writer.set("raw", b"ok\xff")
    writer.close()
    plain = Client(redis_backed_server, encoding=None)
    assert plain.ok("/", ["GET", "raw"]) == {"result": "ok\ufffd"}
    assert Client(redis_backed_server).ok("/", ["GET", "raw"]) == {
        "result": base64.b64encode(b"ok\xff").decode()
    }


# -- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["missing", "wrong-token", "other-scheme"],
)
def test_without_the_token_the_answer_is_401(
    server: UpstashServer, headers: dict[str, str]
) -> None:
    for path in ["/", "/pipeline", "/multi-exec"]:
        response = httpx.post(server.url + path, json=[["SET", "k", "v"]], headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "Unauthorized"}
    assert httpx.get(server.url + STATS_PATH, headers=headers).status_code == 401
    assert server.stats.usage().total_requests == 0
    assert server.stats.snapshot()["rejected"] == {"401": 4}


def test_the_token_may_come_as_a_query_parameter_or_lower_case_scheme(
    server: UpstashServer,
) -> None:
    url = server.url + "/?_token=" + server.token
    assert httpx.post(url, json=["PING"]).json() == {"result": "PONG"}
    headers = {"authorization": f"bearer {server.token}"}
    assert httpx.post(server.url, json=["PING"], headers=headers).status_code == 200


@pytest.fixture(scope="module")
def small_server() -> Iterator[UpstashServer]:
    with UpstashServer(max_request_size=64) as server:
        yield server


def test_an_oversized_body_is_a_413_and_runs_nothing(small_server: UpstashServer) -> None:
    client = Client(small_server)
    response = client.post("/", ["SET", "k", "x" * 100])
    assert response.status_code == 413
    assert "max request size exceeded" in response.json()["error"]
    assert client.ok("/", ["EXISTS", "k"]) == {"result": 0}


def test_an_oversized_body_without_content_length_is_refused_while_streaming(
    small_server: UpstashServer,
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'["SET", "k", "'
        for _ in range(10):
            yield b"x" * 20
        yield b'"]'

    response = Client(small_server).post("/", content=chunks())
    assert response.status_code == 413


def test_a_body_at_the_limit_is_accepted(small_server: UpstashServer) -> None:
    body = b'["SET","k","' + b"x" * (64 - 14) + b'"]'
    assert len(body) == 64
    assert Client(small_server).post("/", content=body).json() == {"result": "OK"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/", b"not json"),
        ("/", b'{"command": "GET"}'),
        ("/", b"[]"),
        ("/", b'[1, "k"]'),
        ("/", b'["SET", "k", null]'),
        ("/", b'["SET", "k", {"a": 1}]'),
        ("/", b'["GET", NaN]'),
        ("/pipeline", b"[]"),
        ("/pipeline", b'["GET", "k"]'),
        ("/multi-exec", b"[[]]"),
    ],
)
def test_malformed_requests_are_a_400_with_a_json_error(
    client: Client, path: str, body: bytes
) -> None:
    response = client.post(path, content=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("ERR")
    assert client.server.stats.usage().total_requests == 0


@pytest.mark.parametrize("command", ["SELECT", "MULTI", "WATCH", "SUBSCRIBE", "BLPOP", "CONFIG"])
def test_connection_and_blocking_commands_are_refused(client: Client, command: str) -> None:
    response = client.post("/pipeline", [["SET", "k", "v"], [command, "x", "0"]])
    assert response.status_code == 400
    assert response.json() == {"error": f"ERR Command is not available: '{command.lower()}'"}
    assert client.ok("/", ["EXISTS", "k"]) == {"result": 0}


def test_other_methods_and_paths_answer_json(server: UpstashServer) -> None:
    response = httpx.get(server.url + "/pipeline")
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed"}
    response = httpx.post(server.url + "/nowhere")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found"}


# -- stats -------------------------------------------------------------------------------


def test_stats_count_requests_and_commands_per_endpoint(client: Client) -> None:
    client.ok("/", ["SET", "k", "v"])
    client.ok("/pipeline", [["GET", "k"], ["GET", "k"], ["HGET", "k", "f"]])
    client.ok("/multi-exec", [["INCR", "n"], ["INCR", "n"]])
    client.post("/", ["GET", "k"], headers={"Authorization": "Bearer wrong"})
    response = httpx.get(client.server.url + STATS_PATH, headers=client.headers)
    assert response.json() == {
        "requests": {"/": 1, "/pipeline": 1, "/multi-exec": 1},
        "commands": {"/": 1, "/pipeline": 3, "/multi-exec": 2},
        "by_command": {"GET": 2, "HGET": 1, "INCR": 2, "SET": 1},
        "total_requests": 3,
        "total_commands": 6,
        "rejected": {"401": 1},
    }


def test_stats_measure_a_block(client: Client) -> None:
    client.ok("/", ["SET", "k", "v"])
    with client.server.stats.measure() as usage:
        client.ok("/pipeline", [["GET", "k"], ["SET", "k", "w"]])
    assert usage.total_requests == 1
    assert usage.total_commands == 2
    assert usage.by_command == {"GET": 1, "SET": 1}
