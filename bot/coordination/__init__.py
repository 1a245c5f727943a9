"""State that every process of a deployment must agree on.

One interface (`SharedState`), two engines: `InProcessState` (the default: one
process, `make run`) and `RedisState` (when `REDIS_URL` is set: several Rasa
servers, web apps and action servers, on one machine or several). Its users:

* WeChat exchanges and MsgId de-duplication (bot.channels.wechat_exchanges);
* login throttling (bot.accounts.LoginThrottle);
* the admins' upload previews (bot.coordination.pending_uploads);
* the WeChat access token, refreshed by one process under a lock
  (bot.channels.wechat_api); without Redis it is kept in the application's
  database instead (`get_deployment_state`, bot.coordination.database_engine),
  since `make run`'s processes must share it too;
* the single-flight training lock (bot.training.jobs: a file lock on one machine,
  plus the shared lock `training` held by the runner across machines).

Deferred notices need nothing here: they are rows of the database, claimed with
one conditional UPDATE, so two processes can never both take one.
"""

from __future__ import annotations

from bot.coordination.base import SharedState, SharedStateUnavailable
from bot.coordination.factory import (
    get_deployment_state,
    get_shared_state,
    shared_state_for_url,
)
from bot.coordination.memory import InProcessState

__all__ = [
    "InProcessState",
    "SharedState",
    "SharedStateUnavailable",
    "get_deployment_state",
    "get_shared_state",
    "shared_state_for_url",
]
