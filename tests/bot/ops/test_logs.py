"""Log lines: the context they carry, one JSON object per line, the text format's brackets."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from bot.ops.logs import ContextFilter, JsonFormatter, TextFormatter, log_context


def logger_to(stream: io.StringIO, formatter: logging.Formatter) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.Logger("charbot.test", logging.DEBUG)
    logger.addHandler(handler)
    return logger


def test_json_lines_carry_the_context_and_stay_one_line_with_a_traceback() -> None:
    stream = io.StringIO()
    log = logger_to(stream, JsonFormatter())
    with log_context(request_id="r1", channel=5):
        with log_context(model="tiny", guild=None):  # None adds nothing
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed: %d", 3)
        log.info("outer")
    log.info("outside", extra={"request_id": "r2"})  # a worker thread passes its fields
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "failed: 3" and first["level"] == "ERROR"
    assert (first["request_id"], first["channel"], first["model"]) == ("r1", 5, "tiny")
    assert "guild" not in first
    assert "ValueError: boom" in first["exception"]
    assert first["time"].endswith("Z") and first["logger"] == "charbot.test"
    assert "model" not in second and second["request_id"] == "r1"
    assert third["request_id"] == "r2" and "channel" not in third


def test_the_context_does_not_cross_to_other_threads() -> None:
    stream = io.StringIO()
    log = logger_to(stream, TextFormatter())
    with log_context(request_id="r1", shard=0):
        log.info("here")
        worker = threading.Thread(target=log.info, args=("there",))
        worker.start()
        worker.join()
    here, there = stream.getvalue().splitlines()
    assert here.endswith("charbot.test: here [request_id=r1 shard=0]")
    assert there.endswith("charbot.test: there")


def test_an_unknown_context_field_is_a_bug() -> None:
    with pytest.raises(TypeError, match="prompt"), log_context(prompt="never logged"):
        pass
