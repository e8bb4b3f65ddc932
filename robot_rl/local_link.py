"""The in-process run's wire between one `Actor` and one `Learner`: the same three channels as
the ROS topics (transitions actor -> learner; acks and weights learner -> actor), delivered at
once on the caller's thread. No threads, nothing to stop.

Each transition the actor sends is taken in, and the learner does the updates it owes, before
the actor's next step, so the in-process run keeps the in-process loop's rhythm: one env step,
then `updates_per_step` updates. The actor acts with the learner's own agent object, so there
are no weights to carry (the channel is kept for an actor with an agent of its own).

A full disk: the learner holds the episode it could not write; `send` waits (logging, retrying
every LearnerConfig.disk_retry_s) until it is written, so the actor never runs ahead of what is
on disk, as `robot-rl train` always did.
"""
from __future__ import annotations

import time
from typing import Any


class LocalLink:
    def __init__(self) -> None:
        self.actor: Any = None
        self.learner: Any = None

    def connect(self, actor: Any, learner: Any) -> None:
        self.actor, self.learner = actor, learner

    # actor -> learner
    def send(self, data: bytes) -> None:
        learner = self.learner
        learner.receive(data)
        learner.ingest_queued()
        while learner.blocked or learner.state_dirty:
            if learner.stop_event.is_set():
                return
            time.sleep(learner.opts.disk_retry_s)
            learner.retry_disk()
        learner.train_some(max_seconds=None)

    # learner -> actor
    def publish_ack(self, data: bytes) -> None:
        if self.actor is not None:
            self.actor.receive_ack(data)

    def publish_weights(self, data: bytes) -> None:
        if self.actor is not None and self.actor.agent is not self.learner.agent:
            self.actor.receive_weights(data)
