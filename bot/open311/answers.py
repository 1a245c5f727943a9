"""The answer forms of Open311: the specification's error list and JSON text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


def error(code: int, description: str) -> dict[str, Any]:
    """One entry of the specification's error list."""
    return {"code": code, "description": description}


class Open311Error(Exception):
    """An answer of the specification's error form: HTTP `status`, body `errors`."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e["description"]) for e in errors))
        self.status = status
        self.errors = errors

    @classmethod
    def of(cls, status: int, description: str) -> Open311Error:
        return cls(status, [error(status, description)])


@dataclass(frozen=True)
class Outcome:
    """What to answer: HTTP status and JSON body (a list, as every answer is)."""

    status: int
    body: list[dict[str, Any]]


def dumps(body: Any) -> str:
    """JSON text of an answer: UTF-8 Chinese as is, `<`, `>` and `&` escaped so
    that text sent by anyone can never become markup, even when sniffed as HTML."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
