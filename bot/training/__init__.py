"""Retrain and deploy the assistant's model safely (issue 6, part 5).

- registry: model files in `models/` with a JSON sidecar each (time, data hash,
  scores, who trained and deployed it) and the deployment history
  (`var/models/deployments.json`); "current" is what Rasa serves.
- evaluation: scores a model on the held-out messages (tests/data/holdout_*.yml,
  never trained on): accuracy, macro-F1, per-intent F1, most confused pairs.
  Runs in a subprocess (`python -m bot nlu evaluate`): TensorFlow stays out of
  the web process.
- guard: a new model is deployed only when it is not worse than the current one
  on the same held-out set, unless an admin overrides with a written reason.
- jobs: one training at a time across processes (a file lock), run by a child
  process (`python -m bot nlu run-job`) that writes its progress to a JSON file
  the page and the CLI poll.
- deploy: hot-swaps a model into the running Rasa server (`PUT /model`) and
  records it; rollback deploys the previous model again.
"""
