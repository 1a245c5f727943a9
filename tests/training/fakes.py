"""Stand-ins for `rasa train`, `python -m bot nlu evaluate` and the Rasa server.

Run as a script by training jobs under test (JobOptions.train_command /
evaluate_command):

    python tests/training/fakes.py trainer [--quality Q] [--crash] [--sleep S] train ...
    python tests/training/fakes.py evaluator MODEL... --holdout GLOB --json-out FILE

A fake model is a JSON file named like a model ({"quality": Q}); the fake
evaluator gives it accuracy = macro-F1 = Q on the real held-out set (its hash is
what the runner checks). `FakeRasa` answers GET /status and PUT /model like
Rasa's HTTP API, with a token, loading only fake models that are not "broken".
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COMMAND = [sys.executable, str(Path(__file__).resolve())]


def trainer_command(
    quality: float = 0.9, *, crash: bool = False, sleep: float = 0.0, epochs: int = 5
) -> list[str]:
    command = [*COMMAND, "trainer", "--quality", str(quality), "--sleep", str(sleep)]
    command += ["--fake-epochs", str(epochs)]
    return command + (["--crash"] if crash else [])


def evaluator_command() -> list[str]:
    return [*COMMAND, "evaluator"]


def write_fake_model(path: Path, quality: float, broken: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"quality": quality, "broken": broken}), encoding="utf-8")
    return path


def fake_scores(quality: float, intents: list[str]) -> dict[str, Any]:
    return {
        "accuracy": quality,
        "macro_f1": quality,
        "per_intent": {intent: quality for intent in intents},
        "support": {intent: 8 for intent in intents},
        "confused_pairs": [
            {"a": "report_noise", "b": "dispute_neighbour", "a_as_b": 2, "b_as_a": 1, "total": 3}
        ],
        "fallback_rate": 1 - quality,
        "examples": 8 * len(intents),
    }


def _trainer(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quality", type=float, default=0.9)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--fake-epochs", type=int, default=5)
    parser.add_argument("--crash", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--fixed-model-name")
    args, _ = parser.parse_known_args(argv)
    print("Training NLU model...", flush=True)
    print("Starting to train component 'DIETClassifier'.", flush=True)
    for epoch in range(1, args.fake_epochs + 1):
        percent = epoch * 100 // args.fake_epochs
        sys.stderr.write(f"\rEpochs: {percent:3d}%|####| {epoch}/{args.fake_epochs} [00:01<00:00]")
        sys.stderr.flush()
        time.sleep(args.sleep / max(args.fake_epochs, 1))
    sys.stderr.write("\n")
    if args.crash:
        print("tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM", flush=True)
        return 1
    target = Path(args.out) / f"{args.fixed_model_name}.tar.gz"
    write_fake_model(target, args.quality)
    print(f"Your Rasa model is trained and saved at '{target}'.", flush=True)
    return 0


def _evaluator(argv: list[str]) -> int:
    from bot.training.evaluation import load_holdout

    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--holdout", required=True)
    parser.add_argument("--json-out", required=True)
    args = parser.parse_args(argv)
    holdout = load_holdout(args.holdout)
    intents = sorted(set(holdout.intents))
    models = {}
    for model in args.models:
        quality = json.loads(Path(model).read_text(encoding="utf-8"))["quality"]
        models[model] = fake_scores(quality, intents)
    Path(args.json_out).write_text(
        json.dumps({"holdout_hash": holdout.hash, "models": models}), encoding="utf-8"
    )
    return 0


class FakeRasa:
    """GET /status and PUT /model of Rasa's HTTP API on 127.0.0.1, in a thread."""

    def __init__(self, serving: Path | None, token: str = "fake-token") -> None:
        self.serving = serving
        self.token = token
        self.puts: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _authorised(self) -> bool:
                query = parse_qs(urlsplit(self.path).query)
                if query.get("token", [None])[0] != fake.token:
                    self._reply(401, {"message": "User is not authenticated."})
                    return False
                return True

            def _reply(self, status: int, body: Any = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorised():
                    return
                if urlsplit(self.path).path == "/status":
                    name = fake.serving.name if fake.serving else None
                    self._reply(200, {"model_file": name, "model_id": "x"})
                else:
                    self._reply(404, {"message": "not found"})

            def do_PUT(self) -> None:  # noqa: N802
                if not self._authorised():
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = Path(body.get("model_file") or "")
                fake.puts.append(str(path))
                try:
                    model = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    model = {"broken": True}
                if model.get("broken"):
                    self._reply(500, {"message": f"An unexpected error occurred. {path}"})
                    return
                fake.serving = path
                self._reply(204)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    raise SystemExit(_trainer(rest) if role == "trainer" else _evaluator(rest))
