"""The answer forms of Open311: one answer, rendered as JSON or as XML.

A resource returns an `Answer` (its body and the shape of its XML); the view
renders it in the format the client asked for (`.json` or `.xml`). XML is built
with the standard library's ElementTree, never by pasting strings, with the
specification's element names: a list answer is a root holding one element per
entry (`<services><service>…`), an object answer is the root itself
(`<service_definition>`, `<discovery>`), a field is an element of the same name
as in JSON, and a list inside an entry holds one element per value
(`<attributes><attribute>…`, `<formats><format>…`).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

FORMATS = {"json": "application/json", "xml": "text/xml"}


@dataclass(frozen=True)
class Shape:
    """XML element names of an answer: the root, and the element of each entry
    (None when the body is one object, which is then the root)."""

    root: str
    item: str | None


SERVICES = Shape("services", "service")
SERVICE_DEFINITION = Shape("service_definition", None)
REQUESTS = Shape("service_requests", "request")
UPDATES = Shape("service_request_updates", "request_update")
DISCOVERY = Shape("discovery", None)
ERRORS = Shape("errors", "error")

# Lists inside an entry: the element name of each of their values.
LIST_ITEMS = {
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}


def error(code: int, description: str) -> dict[str, Any]:
    """One entry of the specification's error list."""
    return {"code": code, "description": description}


@dataclass(frozen=True)
class Answer:
    """What to answer: the body (a list of entries, or one object), the shape of
    its XML and the HTTP status."""

    body: list[dict[str, Any]] | dict[str, Any]
    shape: Shape
    status: int = 200


class Open311Error(Exception):
    """An answer of the specification's error form: HTTP `status`, body `errors`."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e["description"]) for e in errors))
        self.status = status
        self.errors = errors

    @classmethod
    def of(cls, status: int, description: str) -> Open311Error:
        return cls(status, [error(status, description)])

    def answer(self) -> Answer:
        return Answer(self.errors, ERRORS, self.status)


def errors(status: int, description: str) -> Answer:
    """The error list with one error, as an answer."""
    return Answer([error(status, description)], ERRORS, status)


# -- JSON ---------------------------------------------------------------------------


def dumps(body: Any) -> str:
    """JSON text of an answer: UTF-8 Chinese as is, `<`, `>` and `&` escaped so
    that text sent by anyone can never become markup, even when sniffed as HTML."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- XML ----------------------------------------------------------------------------

# Characters XML 1.0 cannot carry at all (even escaped): C0 controls other than
# tab/newline/return, lone surrogates, U+FFFE and U+FFFF. Text sent by anyone
# (a description) may hold them; they become U+FFFD so the document stays valid.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return _NOT_XML.sub("\ufffd", str(value))


def _fill(element: ET.Element, name: str, value: Any) -> None:
    """`value` as the content of `element` (named `name`, for nested lists)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _fill(ET.SubElement(element, str(key)), str(key), inner)
    elif isinstance(value, (list, tuple)):
        item = LIST_ITEMS.get(name, "item")
        for inner in value:
            _fill(ET.SubElement(element, item), item, inner)
    else:
        element.text = _text(value)


def to_xml(answer: Answer) -> bytes:
    """The answer as a UTF-8 XML document (a `None` field is an empty element)."""
    root = ET.Element(answer.shape.root)
    if answer.shape.item is None or not isinstance(answer.body, list):
        _fill(root, answer.shape.root, answer.body)
    else:
        for entry in answer.body:
            _fill(ET.SubElement(root, answer.shape.item), answer.shape.item, entry)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def render(answer: Answer, fmt: str) -> tuple[bytes, str]:
    """(body bytes, content type) of the answer in format "json" or "xml"."""
    if fmt == "xml":
        return to_xml(answer), FORMATS["xml"]
    return dumps(answer.body).encode("utf-8"), FORMATS["json"]
